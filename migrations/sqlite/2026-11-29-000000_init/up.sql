-- Times are Unix seconds (BIGINT). Secrets are sealed (AEAD) before they get here.

CREATE TABLE users (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    is_admin BOOLEAN NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    last_login_at BIGINT,
    -- NULL while two-factor authentication is off.
    totp_secret_sealed TEXT,
    totp_enabled_at BIGINT,
    -- The last TOTP time step accepted for this user; only a later one is accepted next.
    totp_last_step BIGINT
);

-- An enrolment that has not been confirmed with a code yet.
CREATE TABLE mfa_enrolments (
    user_id BIGINT PRIMARY KEY NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    secret_sealed TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE recovery_codes (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    -- keyed hash "KEYID:HEX"; the code itself is never stored
    code_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX recovery_codes_user ON recovery_codes (user_id);

-- Server-side session state; the cookie holds only the (encrypted) key, and
-- the table holds only its SHA-256, so a copy of the table signs nobody in.
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);

-- Failure counters for throttling, one per (rule, key).
CREATE TABLE throttles (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    failures INTEGER NOT NULL,
    last_failure BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);

-- The one-time link that creates the first administrator.
CREATE TABLE setup_tokens (
    token_hash TEXT PRIMARY KEY NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE security_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at BIGINT NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE SET NULL,
    username TEXT,
    kind TEXT NOT NULL,
    client_address TEXT,
    user_agent TEXT,
    detail TEXT
);
CREATE INDEX security_events_user ON security_events (user_id, created_at);
