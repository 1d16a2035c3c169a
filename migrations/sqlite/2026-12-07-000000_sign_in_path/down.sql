DROP INDEX known_browsers_remember;
CREATE UNIQUE INDEX known_browsers_remember ON known_browsers (remember_hash);
ALTER TABLE users DROP COLUMN last_sign_in_event;
