DROP TABLE outbox;
ALTER TABLE users DROP COLUMN notify_new_browser;
ALTER TABLE users DROP COLUMN email_verified_at;
ALTER TABLE users DROP COLUMN email;
