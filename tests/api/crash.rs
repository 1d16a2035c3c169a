//! Crash safety: kill -9 the server at random moments of the mixed
//! workload, ten times, restarting each time. After each crash the SQLite
//! file passes `PRAGMA integrity_check`, every account is in a state the UI
//! can work with, and no acknowledged use of a recovery code is undone.
//!
//! Slow (a minute or two), so it is not part of the normal suite:
//! `scripts/crash-loop` runs it.

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::{Connection, QueryableByName, RunQueryDsl};
use reqwest::StatusCode;

use crate::helpers::*;
use crate::soak::{Account, Tally, virtual_user_round};

const USERS: usize = 16;

#[derive(QueryableByName)]
struct Check {
    #[diesel(sql_type = diesel::sql_types::Text)]
    integrity_check: String,
}

#[derive(QueryableByName)]
struct Half {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    n: i64,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "slow: run with scripts/crash-loop"]
async fn kill_nine_ten_times() {
    let dir = tempfile::tempdir().unwrap();
    let db_file = dir.path().join("latchkey.db");
    for i in 0..USERS {
        cli_add_user(dir.path(), &format!("crash{i}"), 4);
    }
    let mut accounts: Vec<Account> = (0..USERS).map(|i| Account::new(format!("crash{i}"))).collect();
    let mut seed = latchkey::core::random_bytes::<8>()
        .iter()
        .fold(0u64, |a, b| a * 256 + u64::from(*b));

    for round in 0..10 {
        let (mut server, base) = start_server_binary(dir.path());
        // Work for a random 1–4 s, then kill -9 in the middle of it.
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let run_for = Duration::from_millis(1_000 + seed % 3_000);
        let tally = Arc::new(Tally::default());
        let deadline = Instant::now() + run_for;
        let mut tasks = Vec::new();
        for (i, mut acct) in accounts.drain(..).enumerate() {
            let (base, tally) = (base.clone(), tally.clone());
            tasks.push(tokio::spawn(async move {
                let mut n = i;
                while Instant::now() < deadline {
                    n += 1;
                    virtual_user_round(&base, &tally, &mut acct, n).await;
                }
                acct
            }));
        }
        for t in tasks {
            accounts.push(t.await.expect("virtual user"));
        }
        // Then kill -9 in the middle of a burst of sign-ins (each writes a
        // session, the security log, counters), whose outcome nobody relies on.
        let burst: Vec<_> = (0..USERS * 4)
            .map(|i| {
                let base = base.clone();
                tokio::spawn(async move {
                    // Errors are expected: the server dies under these.
                    let c = TestClient::new(&base);
                    let Ok(page) = c.http.get(c.url("/login")).send().await else {
                        return;
                    };
                    let Ok(body) = page.text().await else { return };
                    let token = attr_after(&body, "name=\"csrf_token\" value=\"").unwrap_or_default();
                    let name = format!("crash{}", i % USERS);
                    let form = [
                        ("username", name.as_str()),
                        ("password", PASSWORD),
                        ("csrf_token", &token),
                    ];
                    let _ = c.http.post(c.url("/login")).form(&form).send().await;
                    let _ = c.http.get(c.url("/")).send().await;
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(seed % 50)).await;
        assert!(
            Command::new("kill")
                .args(["-KILL", &server.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        let _ = server.wait();
        for b in burst {
            let _ = b.await;
        }
        assert_eq!(
            tally.server_errors.load(std::sync::atomic::Ordering::SeqCst),
            0,
            "round {round}: 5xx"
        );

        // The file is sound.
        let mut c = diesel::SqliteConnection::establish(&db_file.to_string_lossy()).unwrap();
        let check: Vec<Check> = diesel::sql_query("PRAGMA integrity_check").load(&mut c).unwrap();
        assert_eq!(check.len(), 1);
        assert_eq!(check[0].integrity_check, "ok", "round {round}");
        // No half-enabled account: a secret always comes with its codes.
        let half: Half = diesel::sql_query(
            "SELECT COUNT(*) AS n FROM users u WHERE (u.totp_secret_sealed IS NULL) <> \
             ((SELECT COUNT(*) FROM recovery_codes r WHERE r.user_id = u.id) = 0)",
        )
        .get_result(&mut c)
        .unwrap();
        assert_eq!(half.n, 0, "round {round}: 2FA half on");
        c.batch_execute("SELECT 1").unwrap();
        eprintln!(
            "round {round}: ran {run_for:?}, {} requests, killed; integrity ok",
            tally.requests.load(std::sync::atomic::Ordering::SeqCst)
        );
    }

    // After the last crash: every account works, as its user believes it is.
    let (mut server, base) = start_server_binary(dir.path());
    for acct in &accounts {
        let c = TestClient::new(&base);
        let p = c.login(&acct.name, PASSWORD).await;
        match &acct.secret {
            None => assert!(p.redirects_to("/"), "{}: {}", acct.name, p.status),
            Some(_) => {
                assert!(p.redirects_to("/login/two-factor"), "{}", acct.name);
                if let Some(used) = acct.used_codes.last() {
                    let p = c.post("/login/two-factor", &[("code", used)]).await;
                    assert_eq!(
                        p.status,
                        StatusCode::UNAUTHORIZED,
                        "{}: a used code works again",
                        acct.name
                    );
                }
                let code = acct.codes.last().expect("codes left");
                let p = c.post("/login/two-factor", &[("code", code)]).await;
                assert!(p.redirects_to("/"), "{}: an unused code is refused", acct.name);
            }
        }
    }
    let _ = Command::new("kill").args(["-KILL", &server.id().to_string()]).status();
    let _ = server.wait();
}
