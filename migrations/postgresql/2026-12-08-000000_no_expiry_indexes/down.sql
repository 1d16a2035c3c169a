CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX pending_sign_ins_expiry ON pending_sign_ins (expires_at);
