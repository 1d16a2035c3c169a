//! Storage: the connection pool, migrations, and one module of queries per
//! table group.
//!
//! The backend is chosen from the URL scheme here, explicitly — `sqlite://`
//! or `postgres://` — and anything else is refused with a message instead of
//! being taken for a file name. (diesel's `MultiConnection::establish` tries
//! each backend in turn and would create an SQLite file named after a
//! mistyped PostgreSQL URL; our pool manager never calls it.) Each backend
//! has its own migrations folder; one `schema.rs` serves both.
//!
//! Queries are written once against [`Conn`]. On SQLite the server's writer
//! runs every call inside a `BEGIN IMMEDIATE` transaction (`Lane`), so the
//! write lock is held from the start; elsewhere (the CLI's one connection)
//! every transaction that writes starts with a write statement, which takes
//! it at once as well. On PostgreSQL the first statement locks the row it
//! checks (a conditional UPDATE or `SELECT … FOR UPDATE`).
//!
//! Lookups by a key read with `.get_result`, not `.first`: `.first` adds
//! `LIMIT ?`, and SQLite re-compiles a statement whose LIMIT parameter is
//! bound again — on every run, with the statement cache doing nothing.
//!
//! Hot paths: the statements that run on every second step, sign-in or
//! signed-in page run on the backend's own connection (`on_backend!`), not
//! through `Conn`. diesel's multi-backend connection writes a query's SQL
//! text out again on every run — twice: once to ask whether it may be
//! cached, once to bind its values — even for a statement it has kept
//! prepared; the backend's own connection finds a prepared statement by
//! the query's type and writes no SQL. That was a fifth of the SQLite
//! readers' time in scenario (b) (docs/PERFORMANCE.md). The rest of the
//! queries go through `Conn`, which is simpler to write.

pub mod browsers;
pub mod ceremonies;
pub mod credentials;
pub mod events;
pub mod fixed;
pub mod outbox;
pub mod pending;
pub mod recovery;
pub mod rekey;
pub mod server_keys;
pub mod sessions;
pub mod settings;
pub mod setup;
pub mod stats;
pub mod throttles;
pub mod users;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::pg::PgConnection;
use diesel::r2d2::{ManageConnection, Pool};
use diesel::sqlite::SqliteConnection;
use diesel::{Connection, RunQueryDsl};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};

/// A connection to whichever backend the URL named.
#[derive(diesel::MultiConnection)]
pub enum Conn {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// Run the same (generic) diesel code on the concrete connection, for the
/// few statements the multi-backend layer cannot express (upserts).
#[macro_export]
macro_rules! on_backend {
    ($conn:expr, |$c:ident| $body:expr) => {
        match $conn {
            $crate::db::Conn::Sqlite($c) => $body,
            $crate::db::Conn::Postgres($c) => $body,
        }
    };
}

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations/postgresql");

/// How long a call waits for a free connection before the request gets a 503.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a writer waits for SQLite's lock before giving up with "busy".
const BUSY_TIMEOUT_MS: u32 = 5_000;
/// Key of the PostgreSQL advisory lock held while migrating ("latchkey" in ASCII).
const MIGRATION_LOCK: i64 = 0x6c61_7463_686b_6579;

#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    Sqlite(PathBuf),
    Postgres(String),
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "Sqlite({p:?})"),
            // The URL may carry a password.
            Self::Postgres(_) => f.write_str("Postgres(<redacted>)"),
        }
    }
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("the database URL is empty; use sqlite://PATH or postgres://USER@HOST/DB")]
    Empty,
    #[error("`{0}` has no file path; use sqlite://PATH, e.g. sqlite://latchkey.db")]
    NoPath(String),
    #[error("`{0}`: query parameters are not supported in a sqlite:// URL")]
    Query(String),
    #[error("the PostgreSQL URL has no host or database; use postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE")]
    PostgresIncomplete,
    #[error(
        "unsupported database URL `{0}`: use sqlite://PATH (e.g. sqlite://latchkey.db) or postgres://USER@HOST/DATABASE"
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
        if let Some(rest) = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
        {
            // Enough to catch a truncated URL here; libpq checks the rest.
            let (authority, database) = rest.split_once('/').unwrap_or((rest, ""));
            let host = authority.rsplit('@').next().unwrap_or("");
            let database = database.split('?').next().unwrap_or("");
            if host.is_empty() || database.is_empty() {
                return Err(UrlError::PostgresIncomplete);
            }
            return Ok(Self::Postgres(url.to_string()));
        }
        // Never print the URL back when it might carry a password.
        let shown = if url.contains('@') {
            "<redacted>".to_string()
        } else {
            url.to_string()
        };
        Err(UrlError::Unknown(shown))
    }

    /// For the start-up log: which database, never a password. SQLite: the
    /// file's absolute path; PostgreSQL: user, host, port and database (and
    /// `sslmode`), without the password or any other parameter.
    pub fn shown(&self) -> String {
        match self {
            Self::Sqlite(p) => {
                let path = std::path::absolute(p).unwrap_or_else(|_| p.clone());
                format!("SQLite file {}", path.display())
            }
            Self::Postgres(raw) => {
                // Split as `parse` does, not as a general URL parser would:
                // everything before the last `@` is user information, of
                // which only the part before the first `:` (the user) is
                // shown; of the query, only `sslmode`. (`postgres://u:2024?x@h/db`
                // has the password `2024?x`, which a URL parser reads as a
                // port and a query.)
                let (scheme, rest) = raw.split_once("://").unwrap_or(("postgres", raw));
                let (user, host) = match rest.rfind('@') {
                    Some(at) => {
                        let user = rest[..at].split(':').next().unwrap_or("");
                        (format!("{user}@"), &rest[at + 1..])
                    }
                    None => (String::new(), rest),
                };
                let (place, query) = host.split_once('?').unwrap_or((host, ""));
                let ssl = query
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("sslmode="))
                    .map(|v| format!("?sslmode={v}"))
                    .unwrap_or_default();
                format!("PostgreSQL {scheme}://{user}{place}{ssl}")
            }
        }
    }

    /// The folder the database lives in, where the key file goes by default
    /// (the working directory for PostgreSQL).
    pub fn directory(&self) -> PathBuf {
        match self {
            Self::Sqlite(p) => p
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            Self::Postgres(_) => PathBuf::from("."),
        }
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Self::Sqlite(_) => "sqlite",
            Self::Postgres(_) => "postgres",
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
    #[error("no database connection became free in time")]
    Busy,
    /// The write transaction of the call's group did not begin or commit.
    #[error("the database did not store this: {0}")]
    Group(String),
}

impl DbError {
    /// Busy or unreachable storage: worth a 503 and a retry, not a bug.
    pub fn is_transient(&self) -> bool {
        use diesel::result::{DatabaseErrorKind as K, Error as E};
        match self {
            Self::Pool(_) | Self::Cancelled | Self::Busy | Self::Group(_) => true,
            Self::Query(E::DatabaseError(K::ClosedConnection | K::SerializationFailure, _)) => true,
            Self::Query(E::DatabaseError(_, info)) => {
                let m = info.message();
                [
                    "locked",
                    "busy",
                    "readonly",
                    "read-only",
                    "disk",
                    "connection",
                    "terminating",
                    "deadlock",
                ]
                .iter()
                .any(|w| m.contains(w))
            }
            Self::Query(_) => false,
        }
    }
}

/// SQLite's process-wide settings, set by `main` before anything else runs
/// (`sqlite3_config` is not thread-safe, and is refused once the library is
/// initialised; the defaults then stay, which are correct too, only
/// slower). Library code and tests never call it and run in SQLite's
/// default, serialised mode.
/// - multi-thread mode: no mutex around every call on a connection. Each
///   connection is used by one thread at a time — a diesel connection is
///   `Send` but not `Sync`, each lane's thread owns its connection while it
///   runs a call, the CLI's one connection is behind a mutex — which is
///   what this mode asks;
/// - no memory statistics: they take a global mutex on every allocation,
///   and nothing here reads them.
///
/// Written by hand: diesel has no setting for either. Both were a few per
/// cent of the writer's time in scenario (b) (docs/PERFORMANCE.md).
/// Returns whether SQLite took both.
pub fn configure_sqlite() -> bool {
    // SAFETY: called once, from `main`, while the process has one thread
    // and has made no other SQLite call, with the argument types these
    // options take; too late, it returns SQLITE_MISUSE and changes nothing.
    unsafe {
        let threads = libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MULTITHREAD);
        let stats = libsqlite3_sys::sqlite3_config(libsqlite3_sys::SQLITE_CONFIG_MEMSTATUS, 0 as std::ffi::c_int);
        threads == libsqlite3_sys::SQLITE_OK && stats == libsqlite3_sys::SQLITE_OK
    }
}

/// Prepares OpenSSL, which libpq uses for `sslmode=prefer` (its default,
/// and TLS is what a PostgreSQL with `ssl = on` then speaks), so that it
/// never frees its global state at process exit. Left to libpq, OpenSSL
/// registers an `atexit` handler that frees that state while other threads
/// may still be closing their connections (the lanes' threads end when the
/// last `Db` is dropped, which need not happen before `main` returns): a
/// double free or a SIGSEGV at exit, seen once in CI at the end of the
/// PostgreSQL pass, and reproduced by a process that returns while its
/// threads connect and disconnect (docs/RELIABILITY.md). `openssl_sys::init`
/// initialises OpenSSL with `OPENSSL_INIT_NO_ATEXIT`; OpenSSL keeps the
/// options of its first initialisation, so this must run before libpq's:
/// every PostgreSQL connection this crate makes goes through `Manager`,
/// which calls it, and code that makes its own (the tests) calls it first.
/// Cheap after the first call (a `Once`).
pub fn prepare_postgres_client() {
    openssl_sys::init();
}

/// Makes connections of the backend the URL named, and nothing else.
pub struct Manager {
    url: DatabaseUrl,
    /// SQLite connections for `Db::read`: `PRAGMA query_only`, so a write
    /// sent down the read path fails loudly instead of racing the writer.
    read_only: bool,
}

impl ManageConnection for Manager {
    type Connection = Conn;
    type Error = diesel::r2d2::Error;

    fn connect(&self) -> Result<Conn, Self::Error> {
        match &self.url {
            DatabaseUrl::Sqlite(path) => {
                let mut c = SqliteConnection::establish(&path.to_string_lossy())
                    .map_err(diesel::r2d2::Error::ConnectionError)?;
                // `temp_store = MEMORY`: the savepoints' sub-journals (a
                // group's calls, `Lane`) stay in memory instead of spilling
                // to a temporary file.
                c.batch_execute(&format!(
                    "PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; \
                     PRAGMA temp_store = MEMORY;"
                ))
                .map_err(diesel::r2d2::Error::QueryError)?;
                if self.read_only {
                    c.batch_execute("PRAGMA query_only = ON;")
                        .map_err(diesel::r2d2::Error::QueryError)?;
                }
                Ok(Conn::Sqlite(c))
            }
            DatabaseUrl::Postgres(url) => {
                prepare_postgres_client();
                PgConnection::establish(url)
                    .map(Conn::Postgres)
                    .map_err(diesel::r2d2::Error::ConnectionError)
            }
        }
    }

    fn is_valid(&self, conn: &mut Conn) -> Result<(), Self::Error> {
        conn.batch_execute("SELECT 1").map_err(diesel::r2d2::Error::QueryError)
    }

    /// A connection given back by a call that panicked, or left inside a
    /// transaction, is closed rather than handed to the next call.
    fn has_broken(&self, conn: &mut Conn) -> bool {
        std::thread::panicking() || diesel::r2d2::R2D2Connection::is_broken(conn)
    }
}

/// A handle on the database, cheap to clone.
#[derive(Clone)]
pub struct Db {
    inner: Inner,
    backend: &'static str,
}

#[derive(Clone)]
enum Inner {
    Pooled {
        /// Every call that may write (and, on PostgreSQL, every call).
        pool: Pool<Manager>,
        /// SQLite only: the writer's thread (on `pool`) and the readers'
        /// threads (on connections of their own).
        lanes: Option<Lanes>,
    },
    /// One connection, used on the calling thread (the command line).
    Single(Arc<Mutex<Conn>>),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({})", self.backend)
    }
}

impl Db {
    /// Connect (creating the SQLite file if needed) and bring the schema up
    /// to date. On PostgreSQL the migrations run under an advisory lock, so
    /// instances starting together take turns.
    pub fn open(url: &DatabaseUrl) -> anyhow::Result<Self> {
        Self::check_folder(url)?;
        // Connect once by hand first: the pool would retry for its whole
        // timeout and then report only "timed out".
        let mut conn = Manager {
            url: url.clone(),
            read_only: false,
        }
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open the {} database: {e}", url.backend()))?;
        migrate(&mut conn)?;
        // SQLite lets one connection write at a time, and a writer that finds
        // the lock taken sleeps in its busy handler (1 ms, 2 ms, 5 ms…) while
        // the lock soon sits idle: with 8 connections that could all write,
        // the second-factor step collided constantly (2,500 codes/s, p99
        // 85 ms). So this process writes through ONE connection, on one
        // thread that takes the calls in turn (`Lane`), and reads through two
        // others beside it (WAL readers never wait for the writer). The busy
        // handler is left for other processes on the same file (the CLI).
        // PostgreSQL locks rows, not the database: one pool for all calls.
        // docs/PERFORMANCE.md has the numbers.
        let (pool, lanes) = match url {
            DatabaseUrl::Sqlite(_) => {
                let writer = Self::pool(url, 1, false)?;
                let lanes = Lanes {
                    writer: Lane::start(writer.clone(), "writer", true)?,
                    readers: Lane::start(Self::pool(url, 2, true)?, "reader", false)?,
                };
                (writer, Some(lanes))
            }
            DatabaseUrl::Postgres(_) => (Self::pool(url, 10, false)?, None),
        };
        Ok(Self {
            inner: Inner::Pooled { pool, lanes },
            backend: url.backend(),
        })
    }

    /// One connection, with the schema brought up to date, and nothing else,
    /// used on the calling thread: for the command line. A pool keeps
    /// connecting on threads of its own (to keep an idle connection ready);
    /// a process that exits while such a thread is inside libpq's TLS set-up
    /// crashes in OpenSSL's exit clean-up. One connection made and used on
    /// the calling thread has no such thread.
    pub fn open_single(url: &DatabaseUrl) -> anyhow::Result<Self> {
        Ok(Self {
            inner: Inner::Single(Arc::new(Mutex::new(Self::connect(url)?))),
            backend: url.backend(),
        })
    }

    /// One plain connection, with the schema brought up to date (tools that
    /// seed a database before a server starts).
    pub fn connect(url: &DatabaseUrl) -> anyhow::Result<Conn> {
        Self::check_folder(url)?;
        let mut conn = Manager {
            url: url.clone(),
            read_only: false,
        }
        .connect()
        .map_err(|e| anyhow::anyhow!("cannot open the {} database: {e}", url.backend()))?;
        migrate(&mut conn)?;
        Ok(conn)
    }

    /// For SQLite: the folder must exist, and the file is created readable
    /// by its owner only (it holds password hashes, the security log and
    /// session state). SQLite gives its `-wal` and `-shm` files the mode of
    /// the database file. A file that others can already read is used, with
    /// a warning that says how to fix it.
    fn check_folder(url: &DatabaseUrl) -> anyhow::Result<()> {
        let DatabaseUrl::Sqlite(path) = url else {
            return Ok(());
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
            && !dir.is_dir()
        {
            anyhow::bail!("the folder {} for the database does not exist", dir.display());
        }
        let mut create = std::fs::OpenOptions::new();
        create.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            create.mode(0o600);
        }
        match create.open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => warn_if_readable_by_others(path),
            Err(e) => anyhow::bail!("cannot create the database file {}: {e}", path.display()),
        }
        Ok(())
    }

    fn pool(url: &DatabaseUrl, size: u32, read_only: bool) -> anyhow::Result<Pool<Manager>> {
        Pool::builder()
            .max_size(size)
            // Checking a connection out ran `SELECT 1` first, once per
            // database call. A PostgreSQL connection can break (a restart),
            // so it keeps the check; an SQLite connection is a file handle
            // that cannot, and skips it.
            .test_on_check_out(matches!(url, DatabaseUrl::Postgres(_)))
            // No connections kept ready in the background: r2d2 opens them
            // on its own threads, and a process that exits while one of
            // them is inside libpq crashes in OpenSSL's exit clean-up.
            // Connections are opened when a call needs one, and kept.
            .min_idle(if matches!(url, DatabaseUrl::Postgres(_)) {
                Some(0)
            } else {
                Some(1)
            })
            // Long enough for a busy moment, short enough that an outage answers
            // with a 503 page rather than a hung request.
            .connection_timeout(CONNECTION_TIMEOUT)
            .build(Manager {
                url: url.clone(),
                read_only,
            })
            .map_err(|e| anyhow::anyhow!("cannot open the {} database: {e}", url.backend()))
    }

    pub fn backend(&self) -> &'static str {
        self.backend
    }

    /// The most connections the pools open: how many calls can run at once.
    pub fn max_connections(&self) -> u32 {
        match &self.inner {
            Inner::Pooled { pool, lanes } => pool.max_size() + lanes.as_ref().map_or(0, |l| l.readers.threads),
            Inner::Single(_) => 1,
        }
    }

    /// Run `f` with a connection, never on an async worker (database calls
    /// block): on SQLite on the writer's thread, on PostgreSQL on the
    /// blocking pool; with a single connection, right here.
    pub async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut Conn) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        match &self.inner {
            Inner::Pooled { lanes: Some(lanes), .. } => lanes.writer.run(f).await,
            Inner::Pooled { pool, lanes: None } => Self::on(pool.clone(), f).await,
            Inner::Single(conn) => Self::here(conn, f),
        }
    }

    /// Like `run`, for `f` that only reads: on SQLite it runs beside the
    /// writer, on a connection that refuses writes (`PRAGMA query_only`).
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut Conn) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        match &self.inner {
            Inner::Pooled { lanes: Some(lanes), .. } => lanes.readers.run(f).await,
            Inner::Pooled { pool, lanes: None } => Self::on(pool.clone(), f).await,
            Inner::Single(conn) => Self::here(conn, f),
        }
    }

    fn here<T, F>(conn: &Mutex<Conn>, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut Conn) -> Result<T, DbError>,
    {
        let mut c = conn.lock().map_err(|_| DbError::Cancelled)?;
        f(&mut c)
    }

    async fn on<T, F>(pool: Pool<Manager>, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut Conn) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let queued = Instant::now();
        actix_web::web::block(move || {
            let conn = pool.get();
            match &conn {
                Ok(_) => crate::metrics::db_waited("pool", queued.elapsed()),
                Err(_) => crate::metrics::db_busy("pool"),
            }
            let mut conn = conn?;
            f(&mut conn)
        })
        .await
        .map_err(|_| DbError::Cancelled)?
    }

    /// Whether the database answers a trivial query.
    pub async fn ping(&self) -> bool {
        self.read(|c| Ok(c.batch_execute("SELECT 1")?)).await.is_ok()
    }
}

/// SQLite connections used by threads of their own, one per connection,
/// that run the calls sent to them in order: the one writer (`Db::run`) and
/// the readers (`Db::read`). Calls queued behind the write lock cost
/// nothing: the writer goes from one to the next without sleeping, where
/// blocking-pool threads waiting for the connection each slept and were
/// woken in turn (a fifth of the server's CPU under load went to those
/// switches; docs/PERFORMANCE.md). A call that waited longer than the pool's
/// connection timeout is answered "busy" without running, as the pool would
/// have: while another process holds the lock, requests get a 503 within
/// seconds instead of queueing without end.
///
/// The writer commits in groups: the calls that queued while it was busy
/// run one after the other in one `BEGIN IMMEDIATE` transaction, and none
/// is answered before the group's COMMIT. A call's own `c.transaction` is
/// a savepoint there, so a call that fails rolls back its own writes and
/// nothing else; a call without one writes statement by statement, as it
/// did in autocommit. Each call sees the writes of the ones before it, as
/// if they had committed one by one, but the pages they share (the tail of
/// the security log, the index pages near it) go to the WAL once per group
/// instead of once per call — under load the writer's time went mostly to
/// writing the same pages again (docs/PERFORMANCE.md, "Issue 14's
/// regression, fixed"). An idle server's group is one call: no waiting for
/// company, so a lone request is as fast as before.
#[derive(Clone)]
struct Lane {
    jobs: mpsc::Sender<(Instant, LaneJob)>,
    threads: u32,
}

#[derive(Clone)]
struct Lanes {
    writer: Lane,
    readers: Lane,
}

/// A call: it runs on the connection (or gets why there is none) and
/// returns how to answer, which the lane does once its group has committed
/// (`None`) or failed (`Some`).
type LaneJob = Box<dyn FnOnce(Result<&mut Conn, DbError>) -> Answer + Send>;
type Answer = Box<dyn FnOnce(Option<DbError>) + Send>;

/// The most calls committed together.
const GROUP_MAX: usize = 64;

impl Lane {
    /// One thread per connection of `pool`; they end when the last `Db` is
    /// dropped (the queue disconnects).
    /// `grouped`: the writer, which commits in groups (above).
    fn start(pool: Pool<Manager>, name: &'static str, grouped: bool) -> anyhow::Result<Self> {
        let (jobs, queue) = mpsc::channel::<(Instant, LaneJob)>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..pool.max_size() {
            let (pool, queue) = (pool.clone(), queue.clone());
            std::thread::Builder::new()
                .name(format!("latchkey-db-{name}-{i}"))
                .spawn(move || {
                    loop {
                        let mut group = Vec::new();
                        {
                            let Ok(q) = queue.lock() else { return };
                            let Ok(first) = q.recv() else { return };
                            group.push(first);
                            while grouped && group.len() < GROUP_MAX {
                                match q.try_recv() {
                                    Ok(next) => group.push(next),
                                    Err(_) => break,
                                }
                            }
                        }
                        // A call that waited too long is answered "busy"
                        // without running, as the pool would have.
                        let (late, group): (Vec<_>, Vec<_>) = group
                            .into_iter()
                            .partition(|(queued, _)| queued.elapsed() > CONNECTION_TIMEOUT);
                        for (_, job) in late {
                            crate::metrics::db_busy(name);
                            answer_alone(job, Err(DbError::Busy));
                        }
                        if group.is_empty() {
                            continue;
                        }
                        let mut conn = match pool.get() {
                            Ok(c) => c,
                            Err(_) => {
                                // Each call tries again and is told why not.
                                for (_, job) in group {
                                    match pool.get() {
                                        Ok(mut c) => answer_alone(job, Ok(&mut c)),
                                        Err(e) => answer_alone(job, Err(DbError::from(e))),
                                    }
                                }
                                continue;
                            }
                        };
                        for (queued, _) in &group {
                            crate::metrics::db_waited(name, queued.elapsed());
                        }
                        if grouped {
                            run_group(&mut conn, group);
                        } else {
                            for (_, job) in group {
                                answer_alone(job, Ok(&mut conn));
                            }
                        }
                    }
                })?;
        }
        Ok(Self {
            jobs,
            threads: pool.max_size(),
        })
    }

    async fn run<T, F>(&self, f: F) -> Result<T, DbError>
    where
        F: FnOnce(&mut Conn) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: LaneJob = Box::new(move |conn| {
            let result = conn.and_then(f);
            Box::new(move |failed| {
                let _ = reply.send(match failed {
                    Some(e) => Err(e),
                    None => result,
                });
            })
        });
        self.jobs.send((Instant::now(), job)).map_err(|_| DbError::Cancelled)?;
        answer.await.map_err(|_| DbError::Cancelled)?
    }
}

/// Run one call and answer it at once. A call that panics ends its request
/// with an error (its answer is dropped); the thread goes on.
fn answer_alone(job: LaneJob, conn: Result<&mut Conn, DbError>) {
    if let Ok(answer) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn))) {
        answer(None);
    }
}

/// Run a group of calls in one write transaction (see `Lane`), then answer
/// them all: with their own results once the COMMIT succeeded, or with the
/// reason it did not. A call that panics ends the whole group: the
/// connection, still inside the transaction, is closed (the pool sees it
/// broken), which rolls everything back, and every call is answered with
/// an error — none of them is stored.
fn run_group(conn: &mut Conn, group: Vec<(Instant, LaneJob)>) {
    use diesel::connection::{AnsiTransactionManager, TransactionManager};
    let Conn::Sqlite(sqlite) = conn else {
        // Lanes are for SQLite only.
        for (_, job) in group {
            answer_alone(job, Err(DbError::Cancelled));
        }
        return;
    };
    if let Err(e) = AnsiTransactionManager::begin_transaction_sql(sqlite, "BEGIN IMMEDIATE") {
        let reason = e.to_string();
        for (_, job) in group {
            answer_alone(job, Err(DbError::Group(reason.clone())));
        }
        return;
    }
    let mut answers = Vec::with_capacity(group.len());
    let mut jobs = group.into_iter();
    for (_, job) in jobs.by_ref() {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Ok(&mut *conn)))) {
            Ok(answer) => answers.push(answer),
            Err(_) => {
                // Those that ran are not stored; those that did not, fail.
                for (_, job) in jobs {
                    answers.push(job(Err(DbError::Cancelled)));
                }
                for answer in answers {
                    answer(Some(DbError::Cancelled));
                }
                return;
            }
        }
    }
    // (The connection is the SQLite one checked above; this thread has no
    // `catch_unwind` around it, so no panic here either way.)
    let failed = match conn {
        Conn::Sqlite(sqlite) => {
            match <AnsiTransactionManager as TransactionManager<SqliteConnection>>::commit_transaction(sqlite) {
                Ok(()) => None,
                Err(e) => {
                    let _ =
                        <AnsiTransactionManager as TransactionManager<SqliteConnection>>::rollback_transaction(sqlite);
                    Some(e.to_string())
                }
            }
        }
        Conn::Postgres(_) => Some("not the SQLite writer's connection".into()),
    };
    for answer in answers {
        answer(failed.clone().map(DbError::Group));
    }
}

/// Warn about a database file (or its `-wal`/`-shm`) that users other than
/// its owner can read.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let file = PathBuf::from(format!("{}{suffix}", path.display()));
            if let Ok(meta) = std::fs::metadata(&file) {
                let mode = meta.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    tracing::warn!(
                        "the database file {} can be read by other users (mode {mode:o}); it holds password hashes \
                         and the security log: run `chmod 600 {}`",
                        file.display(),
                        file.display()
                    );
                }
            }
        }
    }
}

/// Switch the file to WAL once. Changing the journal mode needs the file to
/// itself, and SQLite answers "locked" at once (without waiting out the busy
/// timeout) while another server starting on the same file is migrating it;
/// so look first, and retry for a while.
fn set_wal(c: &mut SqliteConnection) -> anyhow::Result<()> {
    #[derive(diesel::QueryableByName)]
    struct Mode {
        #[diesel(sql_type = diesel::sql_types::Text)]
        journal_mode: String,
    }
    let deadline = std::time::Instant::now() + Duration::from_millis(u64::from(BUSY_TIMEOUT_MS));
    loop {
        let current: Result<Vec<Mode>, _> = diesel::sql_query("PRAGMA journal_mode").load(c);
        if current
            .as_ref()
            .is_ok_and(|m| m.first().is_some_and(|m| m.journal_mode.eq_ignore_ascii_case("wal")))
        {
            return Ok(());
        }
        match c.batch_execute("PRAGMA journal_mode = WAL;") {
            Ok(()) => return Ok(()),
            Err(e) if std::time::Instant::now() < deadline && e.to_string().contains("locked") => {
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => return Err(anyhow::anyhow!("cannot switch the SQLite file to WAL mode: {e}")),
        }
    }
}

fn migrate(conn: &mut Conn) -> anyhow::Result<()> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| anyhow::anyhow!("database migration failed: {e}");
    match conn {
        Conn::Sqlite(c) => {
            // WAL lets readers work while one writer writes; it is a property
            // of the file, so setting it here once is enough.
            set_wal(c)?;
            // Hold SQLite's write lock for the whole run, so servers starting
            // together on one file migrate one after the other.
            c.immediate_transaction(|c| {
                c.run_pending_migrations(SQLITE_MIGRATIONS)
                    .map(|_| ())
                    .map_err(diesel::result::Error::QueryBuilderError)
            })
            .map_err(|e| anyhow::anyhow!("database migration failed: {e}"))?;
        }
        Conn::Postgres(c) => {
            // diesel_migrations takes no lock of its own.
            diesel::sql_query(format!("SELECT pg_advisory_lock({MIGRATION_LOCK})")).execute(c)?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|_| ())
                .map_err(failed);
            diesel::sql_query(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})")).execute(c)?;
            result?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_never_has_a_password() {
        let shown = |u: &str| DatabaseUrl::parse(u).unwrap().shown();
        assert_eq!(
            shown("postgres://latchkey:s3cret@db.example:5433/latchkey?sslmode=require&password=other"),
            "PostgreSQL postgres://latchkey@db.example:5433/latchkey?sslmode=require"
        );
        assert_eq!(shown("postgresql://h/db"), "PostgreSQL postgresql://h/db");
        assert_eq!(
            shown("postgres://app:2024?x@db/latchkey"),
            "PostgreSQL postgres://app@db/latchkey"
        );
        assert_eq!(
            shown("postgres://app:p@ss/w:rd@db:5432/latchkey?password=x&sslmode=verify-full"),
            "PostgreSQL postgres://app@db:5432/latchkey?sslmode=verify-full"
        );
        let sqlite = shown("sqlite://x.db");
        assert!(
            sqlite.starts_with("SQLite file /") && sqlite.ends_with("/x.db"),
            "{sqlite}"
        );
        assert_eq!(shown("sqlite:///var/lib/x.db"), "SQLite file /var/lib/x.db");
    }

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
        assert_eq!(
            DatabaseUrl::parse("postgres://u:p@h/db"),
            Ok(DatabaseUrl::Postgres("postgres://u:p@h/db".into()))
        );
        assert!(DatabaseUrl::parse("postgresql://h:5432/db?sslmode=require").is_ok());
        assert_eq!(
            DatabaseUrl::parse("postgres://u:p@h"),
            Err(UrlError::PostgresIncomplete)
        );
        assert_eq!(DatabaseUrl::parse("postgres:///db"), Err(UrlError::PostgresIncomplete));
        assert!(!format!("{:?}", DatabaseUrl::parse("postgres://u:secret@h/db").unwrap()).contains("secret"));
        assert_eq!(
            DatabaseUrl::parse("mysql://u:pw@h/db"),
            Err(UrlError::Unknown("<redacted>".into()))
        );
    }

    #[derive(diesel::QueryableByName)]
    struct N {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        n: i64,
    }

    /// The sum of the lane tests' table `t`.
    fn total(c: &mut Conn) -> Result<i64, DbError> {
        let q = diesel::sql_query("SELECT COALESCE(SUM(n), 0) AS n FROM t");
        Ok(crate::on_backend!(c, |c| q.get_result::<N>(c))?.n)
    }

    /// The SQLite lanes: writes on the writer's thread, reads beside it on
    /// connections that refuse to write, calls serialised, a panicking call
    /// answered with an error while the thread lives on.
    #[test]
    fn sqlite_lanes() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&DatabaseUrl::Sqlite(dir.path().join("l.db"))).unwrap();
        actix_web::rt::System::new().block_on(async {
            db.run(|c| Ok(c.batch_execute("CREATE TABLE t (n INTEGER NOT NULL)")?))
                .await
                .unwrap();
            // 40 read-modify-write transactions at once: none is lost.
            let adds: Vec<_> = (0..40)
                .map(|_| {
                    let db = db.clone();
                    actix_web::rt::spawn(async move {
                        db.run(|c| {
                            c.transaction(|c| {
                                let before = total(c)?;
                                c.batch_execute("INSERT INTO t (n) VALUES (1)")?;
                                assert_eq!(total(c)?, before + 1);
                                Ok(())
                            })
                        })
                        .await
                    })
                })
                .collect();
            for add in adds {
                add.await.unwrap().unwrap();
            }
            assert_eq!(db.read(total).await.unwrap(), 40);
            // The read path cannot write.
            let write = db.read(|c| Ok(c.batch_execute("INSERT INTO t (n) VALUES (1)")?)).await;
            assert!(matches!(write, Err(DbError::Query(_))), "{write:?}");
            assert_eq!(db.run(total).await.unwrap(), 40);
            // A call that panics fails alone.
            let boom = db
                .run(|c| -> Result<(), DbError> {
                    c.transaction(|c| {
                        c.batch_execute("INSERT INTO t (n) VALUES (1)")?;
                        panic!("boom")
                    })
                })
                .await;
            assert!(matches!(boom, Err(DbError::Cancelled)));
            assert_eq!(db.run(total).await.unwrap(), 40);
            assert_eq!(db.read(total).await.unwrap(), 40);
        });
    }

    /// The writer's groups (`Lane`): calls queued while it is busy commit
    /// together; one that fails in its own transaction rolls back only its
    /// own writes; one that panics takes its group with it — nothing of the
    /// group is stored and every call in it is told so — and the lane goes
    /// on.
    #[test]
    fn sqlite_writer_groups() {
        fn add(n: i64) -> impl FnOnce(&mut Conn) -> Result<(), DbError> + Send + 'static {
            move |c| Ok(c.batch_execute(&format!("INSERT INTO t (n) VALUES ({n})"))?)
        }
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&DatabaseUrl::Sqlite(dir.path().join("g.db"))).unwrap();
        actix_web::rt::System::new().block_on(async {
            db.run(|c| Ok(c.batch_execute("CREATE TABLE t (n INTEGER NOT NULL)")?))
                .await
                .unwrap();
            // Hold the writer until `calls` have all queued behind it: they
            // then run as one group. The hold ends when the test says so, not
            // after some time, so a slow machine changes nothing.
            type Call = Box<dyn FnOnce(&mut Conn) -> Result<(), DbError> + Send>;
            async fn behind_a_busy_writer(db: &Db, calls: Vec<Call>) -> Vec<Result<(), DbError>> {
                use std::future::Future;
                use std::task::Poll;
                // Poll once: `Lane::run` queues its call on the first poll.
                async fn queue<F: Future + ?Sized>(mut f: std::pin::Pin<&mut F>) {
                    std::future::poll_fn(|cx| {
                        let _ = f.as_mut().poll(cx);
                        Poll::Ready(())
                    })
                    .await
                }
                let (started, wait) = std::sync::mpsc::channel();
                let (release, held) = std::sync::mpsc::channel::<()>();
                let mut hold = std::pin::pin!(db.run(move |_| {
                    let _ = started.send(());
                    // Until `release` is sent or dropped.
                    let _ = held.recv();
                    Ok(())
                }));
                queue(hold.as_mut()).await;
                // The writer has taken the hold, alone: the calls queue next.
                wait.recv().unwrap();
                let mut pending: Vec<_> = calls.into_iter().map(|f| Box::pin(db.run(f))).collect();
                for call in &mut pending {
                    queue(call.as_mut()).await;
                }
                release.send(()).unwrap();
                hold.await.unwrap();
                let mut out = Vec::new();
                for call in pending {
                    out.push(call.await);
                }
                out
            }
            let failing = |c: &mut Conn| -> Result<(), DbError> {
                c.transaction(|c| {
                    c.batch_execute("INSERT INTO t (n) VALUES (100)")?;
                    Err(DbError::Query(diesel::result::Error::RollbackTransaction))
                })
            };
            let got = behind_a_busy_writer(&db, vec![Box::new(add(1)), Box::new(failing), Box::new(add(2))]).await;
            assert!(got[0].is_ok() && got[2].is_ok(), "{got:?}");
            assert!(matches!(got[1], Err(DbError::Query(_))), "{got:?}");
            assert_eq!(db.read(total).await.unwrap(), 3);
            // A panic: the calls before and after it in its group fail too,
            // and none of their writes is stored.
            let boom = |c: &mut Conn| -> Result<(), DbError> {
                c.batch_execute("INSERT INTO t (n) VALUES (20)")?;
                panic!("boom")
            };
            let got = behind_a_busy_writer(&db, vec![Box::new(add(10)), Box::new(boom), Box::new(add(40))]).await;
            assert!(got.iter().all(|r| matches!(r, Err(DbError::Cancelled))), "{got:?}");
            assert_eq!(db.read(total).await.unwrap(), 3);
            // The lane goes on.
            db.run(add(5)).await.unwrap();
            assert_eq!(db.read(total).await.unwrap(), 8);
        });
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
