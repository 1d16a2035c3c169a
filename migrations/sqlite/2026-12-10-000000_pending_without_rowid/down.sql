CREATE TABLE pending_sign_ins_with_rowid (
    id_hash TEXT PRIMARY KEY NOT NULL,
    user_id BIGINT REFERENCES users(id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    protected BOOLEAN NOT NULL DEFAULT 0,
    client_address TEXT,
    user_agent TEXT
);
INSERT INTO pending_sign_ins_with_rowid
    SELECT id_hash, user_id, created_at, expires_at, attempts, protected, client_address, user_agent
    FROM pending_sign_ins;
DROP TABLE pending_sign_ins;
ALTER TABLE pending_sign_ins_with_rowid RENAME TO pending_sign_ins;
