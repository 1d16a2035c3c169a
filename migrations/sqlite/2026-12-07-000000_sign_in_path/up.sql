-- The sign-in path writes less (docs/PERFORMANCE.md, "Issue 14's
-- regression, fixed").
--
-- "Previous sign-in" is the user's newest login_succeeded event. It was
-- searched for in the security log inside every sign-in's commit; the
-- user's row now names it, set by the same UPDATE that records the login.
ALTER TABLE users ADD COLUMN last_sign_in_event BIGINT;
UPDATE users SET last_sign_in_event = (
    SELECT MAX(e.id) FROM security_events e
    WHERE e.user_id = users.id AND e.kind = 'login_succeeded'
);
-- Only remembered browsers have a remember token: the index leaves out the
-- rest, so making a browser known no longer writes to it.
DROP INDEX known_browsers_remember;
CREATE UNIQUE INDEX known_browsers_remember ON known_browsers (remember_hash) WHERE remember_hash IS NOT NULL;
