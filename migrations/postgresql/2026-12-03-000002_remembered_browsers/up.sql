-- Remembered browsers (issue 16): a known browser on which the user ticked
-- "Remember this browser" at the code prompt skips the second factor for a
-- number of days. Its own token (a second cookie, with the time left as
-- its Max-Age) is stored only as a keyed hash, and is bound to the 2FA
-- enrolment it was issued under: users.mfa_epoch moves on whenever 2FA
-- turns on or off, and a remembered browser of an older epoch is ignored.
ALTER TABLE known_browsers ADD COLUMN remember_hash TEXT;
ALTER TABLE known_browsers ADD COLUMN remembered_at BIGINT;
ALTER TABLE known_browsers ADD COLUMN remembered_epoch BIGINT;
CREATE UNIQUE INDEX known_browsers_remember ON known_browsers (remember_hash);
ALTER TABLE users ADD COLUMN mfa_epoch BIGINT NOT NULL DEFAULT 0;
