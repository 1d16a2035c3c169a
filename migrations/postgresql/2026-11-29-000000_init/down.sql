DROP TABLE security_events;
DROP TABLE setup_tokens;
DROP TABLE throttles;
DROP TABLE sessions;
DROP TABLE recovery_codes;
DROP TABLE mfa_enrolments;
DROP TABLE users;
