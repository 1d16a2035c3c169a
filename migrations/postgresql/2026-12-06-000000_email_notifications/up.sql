-- Email notifications (issue 17).
--
-- A user may have one address; only a verified one gets notifications
-- (the verification message itself goes to the unverified address).
ALTER TABLE users ADD COLUMN email TEXT;
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
-- "Email me about sign-ins from new browsers" (the other notices are
-- always sent).
ALTER TABLE users ADD COLUMN notify_new_browser BOOLEAN NOT NULL DEFAULT TRUE;

-- The outbox: a message is written here in the same commit as the event
-- that causes it, and sent by the servers' mail worker. A worker claims a
-- row by moving claimed_until into the future (one conditional UPDATE; on
-- PostgreSQL the candidates are read FOR UPDATE SKIP LOCKED), so each
-- message goes out once while its sender lives, and again after the claim
-- lapses if it died mid-send (at-least-once; the Message-ID, made of ref,
-- lets a reader recognise a duplicate).
--
-- Nothing secret is stored: the "This wasn't me" and verification links
-- are a keyed MAC of ref, made when the message is sent; link_used_at makes
-- them single use. The bodies are rendered at send time from these columns.
CREATE TABLE outbox (
    id BIGSERIAL PRIMARY KEY,
    ref TEXT NOT NULL UNIQUE,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    to_address TEXT NOT NULL,
    detail TEXT,
    client_address TEXT,
    user_agent TEXT,
    created_at BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    claimed_until BIGINT,
    sent_at BIGINT,
    failed_at BIGINT,
    last_error TEXT,
    link_used_at BIGINT
);
CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE sent_at IS NULL AND failed_at IS NULL;
CREATE INDEX outbox_user_kind ON outbox (user_id, kind, created_at);
