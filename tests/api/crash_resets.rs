//! Crash safety of administration: the server (and the command line) are
//! killed with SIGKILL in the middle of 2FA resets, again and again. A reset
//! is one commit with its log row, so afterwards every reset that took
//! effect has its row, and no row is there without its effect.

use std::process::{Command, Stdio};

use diesel::Connection;
use latchkey::auth::factors::secret_context;
use latchkey::core::keys::Keyring;
use latchkey::core::recovery::RecoveryCode;
use latchkey::core::totp::TotpSecret;
use latchkey::core::types::{TimeStep, UnixTime};
use latchkey::db::credentials::{self, CredentialKind, NewConfirmed};
use latchkey::db::{DatabaseUrl, Db, recovery, users};

use crate::helpers::*;

const USERS: usize = 60;

/// The accounts: `admin` (no 2FA) and `u0…` with 2FA on, stored as
/// enrolment would have left them.
fn seed(url: &str, dir: &std::path::Path) {
    let keys = Keyring::load_or_create(&dir.join("latchkey.key")).unwrap();
    let mut c = Db::connect(&DatabaseUrl::parse(url).unwrap()).unwrap();
    let hash = latchkey::core::password::hash(PASSWORD, 4).unwrap();
    let now = UnixTime(latchkey::core::clock::system_now());
    c.transaction::<_, latchkey::db::DbError, _>(|c| {
        fn account<'a>(name: &'a str, hash: &'a str, admin: bool) -> users::NewAccount<'a> {
            users::NewAccount {
                username: name,
                password_hash: hash,
                is_admin: admin,
                must_change_password: false,
            }
        }
        users::create(c, account("admin", &hash, true), now).map_err(|_| diesel::result::Error::RollbackTransaction)?;
        for i in 0..USERS {
            let name = format!("u{i}");
            let user = users::create(c, account(&name, &hash, false), now)
                .map_err(|_| diesel::result::Error::RollbackTransaction)?;
            let sealed = keys.seal(TotpSecret::generate().as_bytes(), &secret_context(user.id));
            credentials::insert_confirmed(
                c,
                NewConfirmed {
                    user: user.id,
                    kind: CredentialKind::Totp,
                    name: "Authenticator app",
                    secret_sealed: Some(&sealed),
                    last_step: Some(TimeStep(0)),
                },
                now,
            )?;
            let hashes: Vec<String> = RecoveryCode::generate_set()
                .iter()
                .map(|r| keys.recovery_hash(r.canonical()))
                .collect();
            recovery::replace(c, user.id, &hashes, now)?;
        }
        Ok(())
    })
    .unwrap();
}

/// For every user: (2FA still on, recovery codes left, reset rows logged).
async fn state(url: &str) -> Vec<(String, bool, i64, usize)> {
    let db = Db::open_single(&DatabaseUrl::parse(url).unwrap()).unwrap();
    db.run(|c| {
        let mut out = vec![];
        for u in users::all(c)? {
            if u.username == "admin" {
                continue;
            }
            let on = credentials::has_confirmed(c, u.id)?;
            let left = recovery::remaining(c, u.id)?;
            let resets = latchkey::db::events::kinds_for_user(c, u.id)?
                .into_iter()
                .filter(|k| k == "mfa_reset")
                .count();
            out.push((u.username, on, left, resets));
        }
        Ok(out)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resets_killed_midway_are_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (url, _pg) = binary_database(dir.path());
    seed(&url, dir.path());
    let mut next_web = 0;
    let mut next_cli = USERS / 2;
    let mut seed = latchkey::core::random_bytes::<8>()
        .iter()
        .fold(0u64, |a, b| a * 256 + u64::from(*b));
    for round in 0..6 {
        let server = ServerProcess::start(dir.path(), &url, &[]);
        let admin = TestClient::new(&server.base);
        assert!(admin.login("admin", PASSWORD).await.redirects_to("/"), "round {round}");
        // One reset that surely takes effect before the kill…
        let first = next_web + 2;
        next_web += 1;
        let p = admin.post(&format!("/admin/users/{first}/reset-mfa"), &[]).await;
        assert!(p.redirects_to("/admin/users"), "{} {:?}", p.status, p.location);
        // …then more through the Users page, one after the other…
        let web_users: Vec<usize> = (next_web..(next_web + 5).min(USERS / 2)).collect();
        next_web += web_users.len();
        let web = tokio::spawn(async move {
            for i in web_users {
                let _ = admin.post(&format!("/admin/users/{}/reset-mfa", i + 2), &[]).await;
            }
        });
        // …and through `latchkey user reset-mfa`, each killed at a moment of its own.
        let cli_users: Vec<usize> = (next_cli..(next_cli + 3).min(USERS)).collect();
        next_cli += cli_users.len();
        let mut cli = vec![];
        for i in cli_users {
            let child = Command::new(env!("CARGO_BIN_EXE_latchkey"))
                .args(["user", "reset-mfa", &format!("u{i}")])
                .env("DATABASE_URL", &url)
                .env("LATCHKEY_KEY_FILE", dir.path().join("latchkey.key"))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            cli.push(child);
        }
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        tokio::time::sleep(std::time::Duration::from_millis(seed % 120)).await;
        server.signal("KILL");
        for mut child in cli {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = web.await;
        drop(server);
    }
    // Afterwards: a user whose 2FA is off lost it in a reset that was logged,
    // with its recovery codes; a user whose 2FA is on was not reset.
    let rows = state(&url).await;
    let mut reset = 0;
    for (name, on, left, resets) in &rows {
        if *on {
            assert_eq!((*left, *resets), (10, 0), "{name}: 2FA on, so no reset row");
        } else {
            assert_eq!(
                (*left, *resets),
                (0, 1),
                "{name}: 2FA off, so one reset row and no codes"
            );
            reset += 1;
        }
    }
    assert!(
        reset >= 6,
        "at least the first reset of each round took effect ({reset})"
    );
}
