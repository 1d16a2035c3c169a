DROP INDEX throttles_account;
ALTER TABLE throttles DROP COLUMN account;
DROP TABLE rate_buckets;
DROP TABLE pending_sign_ins;
DROP TABLE known_browsers;
DROP TABLE credentials;
