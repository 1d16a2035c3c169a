ALTER TABLE users DROP COLUMN recovery_codes_generation;
ALTER TABLE users DROP COLUMN session_epoch;
