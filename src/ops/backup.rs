//! `latchkey backup PATH`: a consistent copy of the SQLite database while
//! servers keep using it.
//!
//! `VACUUM INTO` writes the database as one read transaction sees it, so
//! the copy is a single moment of the database even while servers write
//! (WAL lets the read run beside them); it is compact, and needs no `-wal`
//! file to be complete. It is written under a temporary name beside PATH,
//! checked, synced, and renamed to PATH, so PATH is either absent or a
//! whole backup. PostgreSQL is backed up with its own tools (`pg_dump`;
//! README, "Backups"). The key file is not in the database and must be
//! backed up separately: without it the copy's 2FA secrets cannot be read.

use std::path::Path;

use diesel::connection::SimpleConnection;
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};

use crate::db::DatabaseUrl;

/// How long the backup waits for a lock held by a writer (a server or
/// another command), as the servers do.
const BUSY_TIMEOUT_MS: u32 = 5_000;

/// What was backed up.
#[derive(Debug)]
pub struct Backup {
    pub bytes: u64,
}

pub fn backup(url: &DatabaseUrl, target: &Path) -> anyhow::Result<Backup> {
    let source = match url {
        DatabaseUrl::Sqlite(p) => p,
        DatabaseUrl::Postgres(_) => anyhow::bail!(
            "`latchkey backup` copies an SQLite database; back up PostgreSQL with pg_dump \
             (e.g. `pg_dump --format=custom --file=latchkey.dump \"$DATABASE_URL\"`, README \"Backups\")"
        ),
    };
    // Never create an empty database where a real one was expected.
    if !source.is_file() {
        anyhow::bail!("no database file at {}", source.display());
    }
    if target.exists() {
        anyhow::bail!("{} already exists; give a new file name", target.display());
    }
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => std::path::PathBuf::from("."),
    };
    if !dir.is_dir() {
        anyhow::bail!("the folder {} does not exist", dir.display());
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = dir.join(format!(
        ".{name}.{}.partial",
        crate::core::keys::hex(&crate::core::random_bytes::<8>())
    ));
    let result = (|| {
        // Created empty and private first (the copy holds password hashes
        // and the security log); VACUUM INTO fills an empty file.
        let mut create = std::fs::OpenOptions::new();
        create.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            create.mode(0o600);
        }
        create.open(&partial)?;
        let mut c = SqliteConnection::establish(&source.to_string_lossy())?;
        c.batch_execute(&format!("PRAGMA busy_timeout = {BUSY_TIMEOUT_MS};"))?;
        diesel::sql_query("VACUUM INTO ?")
            .bind::<diesel::sql_types::Text, _>(partial.to_string_lossy().as_ref())
            .execute(&mut c)?;
        drop(c);
        check(&partial)?;
        std::fs::File::open(&partial)?.sync_all()?;
        std::fs::rename(&partial, target)?;
        #[cfg(unix)]
        if let Ok(d) = std::fs::File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok::<_, anyhow::Error>(Backup {
            bytes: std::fs::metadata(target)?.len(),
        })
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// The copy opens and passes SQLite's integrity check.
fn check(path: &Path) -> anyhow::Result<()> {
    #[derive(diesel::QueryableByName)]
    struct Verdict {
        #[diesel(sql_type = diesel::sql_types::Text)]
        integrity_check: String,
    }
    let mut c = SqliteConnection::establish(&path.to_string_lossy())?;
    let verdict: Vec<Verdict> = diesel::sql_query("PRAGMA integrity_check").load(&mut c)?;
    match verdict.first() {
        Some(v) if v.integrity_check == "ok" => Ok(()),
        Some(v) => anyhow::bail!("the copy failed SQLite's integrity check: {}", v.integrity_check),
        None => anyhow::bail!("the copy failed SQLite's integrity check"),
    }
}
