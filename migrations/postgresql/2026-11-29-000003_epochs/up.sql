-- Bumped whenever all of a user's sessions are revoked; a session carries
-- the value it was signed in under and dies when they differ, so a session
-- created concurrently with a revocation cannot outlive it.
ALTER TABLE users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
-- Bumped whenever a new set of recovery codes is stored, so a regeneration
-- requested from an out-of-date page (a double click) changes nothing.
ALTER TABLE users ADD COLUMN recovery_codes_generation BIGINT NOT NULL DEFAULT 0;
