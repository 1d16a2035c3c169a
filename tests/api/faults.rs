//! Storage faults: while the database is locked or unreachable, requests get
//! a clear 503 page; nothing committed is lost; the server recovers by
//! itself when the fault goes away.

use diesel::connection::SimpleConnection;
use diesel::{Connection, RunQueryDsl};
use reqwest::StatusCode;

use crate::helpers::*;

/// Start a fault; the returned value ends it when dropped or `end` is called.
enum Fault {
    /// Another process holds SQLite's write lock.
    SqliteLocked(diesel::SqliteConnection),
    /// PostgreSQL refuses connections to the database and has dropped ours.
    PostgresGone { admin: diesel::PgConnection, name: String },
}

impl Fault {
    fn start(app: &TestApp) -> Self {
        match (&app.db_path, &app.pg) {
            (Some(path), _) => {
                let mut c = diesel::SqliteConnection::establish(&path.to_string_lossy()).unwrap();
                c.batch_execute("BEGIN EXCLUSIVE").unwrap();
                Fault::SqliteLocked(c)
            }
            (None, Some(pg)) => {
                let mut admin = pg_connect(&pg.admin_url);
                diesel::sql_query(format!("ALTER DATABASE {} ALLOW_CONNECTIONS false", pg.name))
                    .execute(&mut admin)
                    .unwrap();
                diesel::sql_query(format!(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}'",
                    pg.name
                ))
                .execute(&mut admin)
                .unwrap();
                Fault::PostgresGone {
                    admin,
                    name: pg.name.clone(),
                }
            }
            _ => unreachable!(),
        }
    }

    fn end(self) {
        match self {
            Fault::SqliteLocked(mut c) => c.batch_execute("COMMIT").unwrap(),
            Fault::PostgresGone { mut admin, name } => {
                diesel::sql_query(format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true"))
                    .execute(&mut admin)
                    .unwrap();
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unavailable_database_gives_503_and_the_server_recovers() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let other = app.client();
    let _ = other.csrf().await;

    let fault = Fault::start(&app);
    // Writing (a sign-in) cannot succeed now: a clear 503 page, not a 500.
    let p = other.login("alice", PASSWORD).await;
    assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE, "{}", p.body);
    assert!(p.body.contains("Temporarily unavailable") && p.body.contains("role=\"alert\""));
    assert!(
        !p.body.contains("database is locked") && !p.body.contains("terminating"),
        "no internals shown"
    );
    let health = reqwest::get(format!("{}/healthz", app.base)).await.unwrap();
    if app.pg.is_none() {
        // SQLite's write lock held elsewhere: the server can still read (the
        // health check runs beside the waiting writer), and says so.
        assert_eq!(health.status(), StatusCode::OK);
    } else {
        assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
        // Even loading the session fails: still our page.
        let p = c.get("/").await;
        assert_eq!(p.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(p.body.contains("Temporarily unavailable"));
    }
    fault.end();

    // Recovered without a restart; nothing committed was lost.
    assert_eq!(
        reqwest::get(format!("{}/healthz", app.base)).await.unwrap().status(),
        StatusCode::OK
    );
    assert_eq!(c.get("/").await.status, StatusCode::OK, "the earlier session survived");
    assert!(other.login("alice", PASSWORD).await.redirects_to("/"));
    assert_eq!(app.count("users").await, 1);
}
