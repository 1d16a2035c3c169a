-- Security keys and passkeys (issue 15).

-- The WebAuthn user handle: random (a UUID), never the username or the id;
-- made when the user registers their first key.
ALTER TABLE users ADD COLUMN webauthn_handle TEXT;
CREATE UNIQUE INDEX users_webauthn_handle ON users (webauthn_handle);

-- The server's half of a ceremony between its two requests: single use
-- (taken by a DELETE), five minutes, bound to what started it (`owner`: a
-- session's public id, a pending sign-in, or a signed-out browser's nonce).
CREATE TABLE webauthn_ceremonies (
    id_hash TEXT PRIMARY KEY NOT NULL,
    purpose TEXT NOT NULL,
    owner TEXT NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    name TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX webauthn_ceremonies_expiry ON webauthn_ceremonies (expires_at);
