DROP INDEX security_events_time;
DROP TABLE settings;
ALTER TABLE users DROP COLUMN must_change_password;
