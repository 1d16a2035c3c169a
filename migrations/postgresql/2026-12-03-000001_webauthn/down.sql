DROP TABLE webauthn_ceremonies;
DROP INDEX users_webauthn_handle;
ALTER TABLE users DROP COLUMN webauthn_handle;
