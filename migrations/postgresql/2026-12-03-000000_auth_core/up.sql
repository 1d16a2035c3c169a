-- The authentication core (issues 13 and 14).

-- A user's second-factor credentials, one row each: TOTP now, WebAuthn next.
-- "2FA is on" means at least one confirmed row. A row with confirmed_at NULL
-- is a pending enrolment, owned by the session that started it.
CREATE TABLE credentials (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    -- TOTP: the sealed secret (AEAD, bound to the user id).
    secret_sealed TEXT,
    -- WebAuthn: the credential as the library serialises it, and its id.
    public_data TEXT,
    external_id TEXT UNIQUE,
    created_at BIGINT NOT NULL,
    confirmed_at BIGINT,
    last_used_at BIGINT,
    -- TOTP: the last accepted time step; only a later one is accepted next.
    last_step BIGINT,
    -- Pending enrolments: the owning session's public id, and wrong codes so far.
    pending_owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX credentials_user ON credentials (user_id);

-- Every existing TOTP enrolment moves over with its last accepted step, so
-- nobody re-enrols and a used code stays used. (The users.totp_* columns
-- stay, unused, for one release: see README, "Upgrading".)
INSERT INTO credentials (user_id, kind, name, secret_sealed, created_at, confirmed_at, last_step)
SELECT id, 'totp', 'Authenticator app', totp_secret_sealed, COALESCE(totp_enabled_at, created_at),
       COALESCE(totp_enabled_at, created_at), totp_last_step
FROM users WHERE totp_secret_sealed IS NOT NULL;
-- Unconfirmed enrolments are at most ten minutes old: they are not carried over.
DELETE FROM mfa_enrolments;

-- Browsers that have signed in to an account: a random token in a cookie,
-- stored here only as a keyed hash. Their password attempts have a counter
-- of their own (nobody else's failures lock them out).
CREATE TABLE known_browsers (
    id BIGSERIAL PRIMARY KEY,
    user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    user_agent TEXT,
    client_address TEXT
);
CREATE INDEX known_browsers_user ON known_browsers (user_id);

-- Sign-ins waiting for their second step. The session holds a random id;
-- this table its SHA-256. Wrong codes are counted here, atomically.
-- user_id is NULL for a protected sign-in whose password was not right.
CREATE TABLE pending_sign_ins (
    id_hash TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    protected BOOLEAN NOT NULL DEFAULT FALSE,
    client_address TEXT,
    user_agent TEXT
);
CREATE INDEX pending_sign_ins_expiry ON pending_sign_ins (expires_at);

-- Token buckets for rate limits (core::throttle::Bucket).
CREATE TABLE rate_buckets (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    account TEXT,
    tokens INTEGER NOT NULL,
    refilled_at BIGINT NOT NULL,
    PRIMARY KEY (scope, key)
);
CREATE INDEX rate_buckets_account ON rate_buckets (account);

-- Failure counters now name the account they protect, so an administrator's
-- Unlock finds every one. The old counters used other keys: they go.
DELETE FROM throttles;
ALTER TABLE throttles ADD COLUMN account TEXT;
CREATE INDEX throttles_account ON throttles (account);
