//! Storage: the connection pool, migrations, and one module of queries per
//! table group.
//!
//! The backend is chosen from the URL scheme here, explicitly; anything not
//! recognised is refused with a message instead of being taken for a file
//! name. Only SQLite is built in today; PostgreSQL gets its own migrations
//! folder (`migrations/postgresql`) when it lands.

pub mod events;
pub mod mfa;
pub mod sessions;
pub mod setup;
pub mod throttles;
pub mod users;

use std::path::{Path, PathBuf};
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::{ConnectionManager, CustomizeConnection, Pool, PooledConnection};
use diesel::sqlite::SqliteConnection;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

pub type Conn = SqliteConnection;
type SqlitePool = Pool<ConnectionManager<SqliteConnection>>;

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");

/// How long a writer waits for SQLite's lock before giving up with "busy".
const BUSY_TIMEOUT_MS: u32 = 5_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the database URL is empty; use sqlite://PATH, e.g. sqlite://latchkey.db")]
    Empty,
    #[error("`{0}` has no file path; use sqlite://PATH, e.g. sqlite://latchkey.db")]
    NoPath(String),
    #[error("`{0}`: query parameters are not supported in a sqlite:// URL")]
    Query(String),
    #[error("PostgreSQL is not supported by this build yet; use sqlite://PATH")]
    PostgresNotYet,
    #[error(
        "unsupported database URL `{0}`: use sqlite://PATH (e.g. sqlite://latchkey.db or sqlite:///var/lib/latchkey/latchkey.db)"
    )]
    Unknown(String),
}

impl DatabaseUrl {
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(UrlError::Empty);
        }
        if let Some(path) = url.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err(UrlError::NoPath(url.to_string()));
            }
            if path.contains('?') {
                return Err(UrlError::Query(url.to_string()));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Err(UrlError::PostgresNotYet);
        }
        // Never print the URL back when it might carry a password.
        let shown = if url.contains('@') {
            "<redacted>".to_string()
        } else {
            url.to_string()
        };
        Err(UrlError::Unknown(shown))
    }

    /// The folder the database lives in, where the key file goes by default.
    pub fn directory(&self) -> PathBuf {
        match self {
            Self::Sqlite(p) => p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error(transparent)]
    Query(#[from] diesel::result::Error),
    #[error("no database connection available: {0}")]
    Pool(#[from] diesel::r2d2::PoolError),
    #[error("the blocking task was cancelled")]
    Cancelled,
}

impl DbError {
    /// Busy or unreachable storage: worth a 503 and a retry, not a bug.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Pool(_) | Self::Cancelled => true,
            Self::Query(diesel::result::Error::DatabaseError(_, info)) => {
                let m = info.message();
                m.contains("locked") || m.contains("busy") || m.contains("readonly") || m.contains("disk")
            }
            Self::Query(_) => false,
        }
    }
}

#[derive(Debug)]
struct SqlitePragmas;

impl CustomizeConnection<SqliteConnection, diesel::r2d2::Error> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut SqliteConnection) -> Result<(), diesel::r2d2::Error> {
        conn.batch_execute(&format!(
            "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;"
        ))
        .map_err(diesel::r2d2::Error::QueryError)
    }
}

/// A handle on the database, cheap to clone.
#[derive(Clone)]
pub struct Db {
    pool: SqlitePool,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Db")
    }
}

impl Db {
    /// Open (creating the SQLite file if needed) and bring the schema up to date.
    pub fn open(url: &DatabaseUrl) -> anyhow::Result<Self> {
        let DatabaseUrl::Sqlite(path) = url;
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if !dir.is_dir() {
                anyhow::bail!("the folder {} for the database does not exist", dir.display());
            }
        }
        let manager = ConnectionManager::<SqliteConnection>::new(path.to_string_lossy());
        let pool = Pool::builder()
            .max_size(8)
            .connection_timeout(Duration::from_secs(10))
            .connection_customizer(Box::new(SqlitePragmas))
            .build(manager)
            .map_err(|e| anyhow::anyhow!("cannot open SQLite database {}: {e}", path.display()))?;
        let db = Self { pool };
        let mut conn = db.conn()?;
        // WAL lets readers work while one writer writes; it is a property of
        // the file, so setting it once here is enough.
        conn.batch_execute("PRAGMA journal_mode = WAL;")?;
        conn.run_pending_migrations(SQLITE_MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
        Ok(db)
    }

    pub fn conn(&self) -> Result<PooledConnection<ConnectionManager<Conn>>, DbError> {
        Ok(self.pool.get()?)
    }

    /// Run `f` with a connection on the blocking thread pool (never on an
    /// async worker: SQLite calls block).
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut Conn) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let pool = self.pool.clone();
        actix_web::web::block(move || {
            let mut conn = pool.get()?;
            f(&mut conn)
        })
        .await
        .map_err(|_| DbError::Cancelled)?
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.run(|c| Ok(c.batch_execute("SELECT 1")?)).await.is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_parsing() {
        assert_eq!(
            DatabaseUrl::parse("sqlite://latchkey.db"),
            Ok(DatabaseUrl::Sqlite("latchkey.db".into()))
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite:///var/x.db"),
            Ok(DatabaseUrl::Sqlite("/var/x.db".into()))
        );
        assert_eq!(DatabaseUrl::parse(""), Err(UrlError::Empty));
        assert_eq!(
            DatabaseUrl::parse("sqlite://"),
            Err(UrlError::NoPath("sqlite://".into()))
        );
        assert!(matches!(
            DatabaseUrl::parse("sqlite:latchkey.db"),
            Err(UrlError::Unknown(_))
        ));
        assert!(matches!(DatabaseUrl::parse("latchkey.db"), Err(UrlError::Unknown(_))));
        assert!(matches!(
            DatabaseUrl::parse("sqlite://x.db?mode=ro"),
            Err(UrlError::Query(_))
        ));
        assert_eq!(DatabaseUrl::parse("postgres://u:p@h/db"), Err(UrlError::PostgresNotYet));
        assert_eq!(
            DatabaseUrl::parse("mysql://u:pw@h/db"),
            Err(UrlError::Unknown("<redacted>".into()))
        );
    }

    #[test]
    fn key_file_directory() {
        assert_eq!(
            DatabaseUrl::Sqlite("latchkey.db".into()).directory(),
            PathBuf::from(".")
        );
        assert_eq!(
            DatabaseUrl::Sqlite("/var/lib/l/x.db".into()).directory(),
            PathBuf::from("/var/lib/l")
        );
    }
}
