-- Pending sign-ins stored in their key's B-tree (WITHOUT ROWID). A second
-- step that succeeds deletes its pending sign-in, found by its id's hash:
-- as an ordinary table that is a page of the key's index and a page of the
-- table, both at random places; stored by key, one page. Rows are added at
-- random places of that B-tree too, but only by the password step, which
-- bcrypt bounds (docs/PERFORMANCE.md, "Issue 14: the writer's work per
-- code"). SQLite only: PostgreSQL has no such choice (its migration of the
-- same name changes nothing).
CREATE TABLE pending_sign_ins_by_key (
    id_hash TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    protected BOOLEAN NOT NULL DEFAULT 0,
    client_address TEXT,
    user_agent TEXT
) WITHOUT ROWID;
INSERT INTO pending_sign_ins_by_key
    SELECT id_hash, user_id, created_at, expires_at, attempts, protected, client_address, user_agent
    FROM pending_sign_ins;
DROP TABLE pending_sign_ins;
ALTER TABLE pending_sign_ins_by_key RENAME TO pending_sign_ins;
