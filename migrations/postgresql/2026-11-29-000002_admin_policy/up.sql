-- Accounts made by an administrator start with a temporary password that
-- must be changed at first sign-in.
ALTER TABLE users ADD COLUMN must_change_password BOOLEAN NOT NULL DEFAULT FALSE;

-- Site-wide settings (the 2FA policy), one row per name.
CREATE TABLE settings (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX security_events_time ON security_events (created_at);
