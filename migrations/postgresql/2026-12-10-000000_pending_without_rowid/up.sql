-- SQLite only (its migration of the same name stores pending sign-ins by
-- key); PostgreSQL has no rowid. Kept so both backends list the same
-- migrations.
SELECT 1;
