-- A fingerprint of each server key that has written to this database, so an
-- instance started with a different key file refuses to start instead of
-- silently failing every 2FA check.
CREATE TABLE server_keys (
    key_id TEXT PRIMARY KEY NOT NULL,
    fingerprint TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
