ALTER TABLE users DROP COLUMN mfa_epoch;
DROP INDEX known_browsers_remember;
ALTER TABLE known_browsers DROP COLUMN remembered_epoch;
ALTER TABLE known_browsers DROP COLUMN remembered_at;
ALTER TABLE known_browsers DROP COLUMN remember_hash;
