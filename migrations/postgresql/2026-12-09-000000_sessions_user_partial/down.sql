DROP INDEX sessions_user;
CREATE INDEX sessions_user ON sessions (user_id);
