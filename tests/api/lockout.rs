//! Lockout that an attacker cannot turn against the real user (issue 13):
//! one test per finding, each run on both backends, the attacks sent at
//! once where they were at once. Clients other than 127.0.0.1 come through
//! `--trusted-proxies 127.0.0.1` and `X-Forwarded-For`, as behind nginx.

use reqwest::StatusCode;

use crate::helpers::*;

async fn behind_proxy() -> TestApp {
    TestApp::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await
}

fn from(app: &TestApp, address: &str) -> TestClient {
    TestClient::forwarded_for(&app.base, address)
}

/// Sign in on a fresh browser from `address` and sign out again, so the
/// browser is known to the account from now on (2FA off).
async fn known_browser(app: &TestApp, user: &str, address: &str) -> TestClient {
    let c = from(app, address);
    assert!(c.login(user, PASSWORD).await.redirects_to("/"));
    assert!(c.post("/logout", &[]).await.redirects_to("/login?signed_out=1"));
    c
}

/// Finding 1: failures of many accounts from one address lock out nobody
/// who signed in from there before — not at sign-in, not at the sudo
/// prompt, not at a password change — and a user with 2FA on a new browser
/// there still gets in with the password and a code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_locks_nobody_behind_it_out() {
    let app = behind_proxy().await;
    app.create_user("alice", false).await;
    app.create_user("carol", false).await;
    let office = "198.51.100.7";
    let alice = known_browser(&app, "alice", office).await;
    let carol = enrol(&app, {
        let c = from(&app, "203.0.113.50");
        assert!(c.login("carol", PASSWORD).await.redirects_to("/"));
        c
    })
    .await;
    // Someone in the same office guesses at 40 usernames.
    let guesser = from(&app, office);
    for i in 0..40 {
        let p = guesser.login(&format!("user{i}"), "guess").await;
        assert!(matches!(p.status.as_u16(), 401 | 303 | 429), "{}", p.status);
    }
    // Alice's browser signs in…
    assert!(alice.login("alice", PASSWORD).await.redirects_to("/"));
    // …confirms her password at the sudo prompt…
    app.clock.advance(11 * 60);
    let p = alice
        .post(
            "/settings/account/sudo",
            &[("password", PASSWORD), ("next", "/settings/account")],
        )
        .await;
    assert!(p.redirects_to("/settings/account"), "{} {:?}", p.status, p.flash());
    // …and changes it.
    let new = "a brand new passphrase";
    let p = alice
        .post(
            "/settings/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new),
                ("new_password_confirm", new),
            ],
        )
        .await;
    assert!(
        p.redirects_to("/settings/account/password"),
        "{} {:?}",
        p.status,
        p.flash()
    );
    // Carol, on a new browser in that office, signs in with password + code.
    app.clock.advance(30);
    let c = from(&app, office);
    let p = c.login("carol", PASSWORD).await;
    assert!(p.redirects_to("/login/two-factor"), "{}", p.status);
    let code = oathtool(&carol.secret, app.clock.now());
    assert!(c.post("/login/two-factor", &[("code", &code)]).await.redirects_to("/"));
    // The lock of the address is in the log.
    let log = app
        .auth
        .security_log(None, Some(latchkey::db::events::Kind::PasswordLocked), 0, 50)
        .await
        .unwrap()
        .0;
    assert!(
        log.iter().any(|r| r.detail.as_deref().unwrap_or("").contains(office)),
        "{log:?}"
    );
}

/// Finding 2: 80 guesses at once from one address at 80 usernames: no more
/// than the address's rate is hashed, no more than a patient guesser's 30
/// are answered "wrong", the rest are refused at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_from_one_address_gets_no_more_checks_than_a_patient_guesser() {
    use latchkey::core::limits::{ADDRESS_HASH_RATE, PASSWORD_ADDRESS};
    let app = behind_proxy().await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(80));
    let mut tasks = vec![];
    for i in 0..80 {
        let c = from(&app, "198.51.100.9");
        let _ = c.csrf().await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            c.login(&format!("victim{i}"), "guess").await.status.as_u16()
        }));
    }
    let mut statuses = vec![];
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    let wrong = statuses.iter().filter(|s| **s == 401).count();
    let protected = statuses.iter().filter(|s| **s == 303).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!(wrong + protected + refused, 80, "{statuses:?}");
    assert!(wrong <= PASSWORD_ADDRESS.free as usize, "{wrong} answered wrong");
    assert!(
        wrong + protected <= ADDRESS_HASH_RATE.capacity as usize,
        "{} hashed",
        wrong + protected
    );
    assert!(refused >= 80 - ADDRESS_HASH_RATE.capacity as usize);
}

/// Finding 3: guesses at one account from ever new addresses, for as long
/// as the attacker likes, never keep out a user with 2FA on a new browser
/// from an address of their own; one without 2FA is told what would help.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_browser_with_2fa_is_never_kept_out() {
    let app = behind_proxy().await;
    app.create_user("alice", false).await;
    app.create_user("bob", false).await;
    let alice = enrol(&app, signed_in(&app, "alice").await).await;
    let mut n = 0;
    let mut attack = |user: &'static str, rounds: usize| {
        let clients: Vec<TestClient> = (0..rounds)
            .map(|_| {
                n += 1;
                from(&app, &format!("10.{}.{}.{}", n / 65536, (n / 256) % 256, n % 256))
            })
            .collect();
        async move {
            for c in clients {
                let _ = c.login(user, "guess").await;
            }
        }
    };
    for round in 0..4 {
        // Sixty guesses from sixty addresses (more than the daily budget)…
        attack("alice", 60).await;
        attack("bob", 60).await;
        // …and the real user on a brand-new browser gets in at once.
        app.clock.advance(31);
        let c = from(&app, &format!("192.0.2.{}", round + 1));
        let p = c.login("alice", PASSWORD).await;
        assert!(p.redirects_to("/login/two-factor"), "round {round}: {}", p.status);
        let prompt = c.get("/login/two-factor").await;
        assert!(prompt.text_of("protected-sign-in").is_some(), "says why");
        let code = oathtool(&alice.secret, app.clock.now());
        assert!(
            c.post("/login/two-factor", &[("code", &code)]).await.redirects_to("/"),
            "round {round}"
        );
        // Bob (no 2FA) gets the same prompt, which tells him what helps.
        let b = from(&app, &format!("192.0.2.{}", round + 101));
        assert!(b.login("bob", PASSWORD).await.redirects_to("/login/two-factor"));
        let text = b.get("/login/two-factor").await.text_of("protected-sign-in").unwrap();
        assert!(text.contains("browser you have used before"), "{text}");
        app.clock.advance(3600);
    }
}

/// Property (a): however many addresses, at most 100 guesses a day are
/// answered "wrong" — the rest look like a correct password would.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_most_100_answered_guesses_per_account_per_day() {
    let app = behind_proxy().await;
    app.create_user("alice", false).await;
    let mut answered = vec![];
    // 150 at once, from 150 addresses…
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(150));
    let mut tasks = vec![];
    for i in 0..150 {
        let c = from(&app, &format!("10.1.{}.{}", i / 200, i % 200 + 1));
        let _ = c.csrf().await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            c.login("alice", "guess").await.status.as_u16()
        }));
    }
    for t in tasks {
        answered.push((0, t.await.unwrap()));
    }
    // …then one every ten minutes for a day, each from a new address.
    for i in 0..144 {
        app.clock.advance(600);
        let c = from(&app, &format!("10.2.{}.{}", i / 200, i % 200 + 1));
        answered.push((i + 1, c.login("alice", "guess").await.status.as_u16()));
    }
    let wrong: Vec<_> = answered.iter().filter(|(_, s)| *s == 401).collect();
    assert!(
        answered.iter().all(|(_, s)| matches!(s, 401 | 303)),
        "only wrong or protected"
    );
    assert!(wrong.len() <= 100, "{} answered in 24 h", wrong.len());
    assert!(wrong.iter().filter(|(t, _)| *t == 0).count() <= 50, "the burst");
    // And the right password from yet another address is never refused.
    let c = from(&app, "10.3.0.1");
    assert!(c.login("alice", PASSWORD).await.status == StatusCode::SEE_OTHER);
}

/// Finding 4: five wrong codes at once on one pending sign-in end it; the
/// right code on the same session afterwards does not sign in.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_pending_sign_in_dies_after_five_wrong_codes_even_at_once() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    app.clock.advance(30);
    let c = std::sync::Arc::new(app.client());
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    let wrong = wrong_code(&e.secret, app.clock.now());
    let _ = c.csrf().await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(5));
    let tasks: Vec<_> = (0..5)
        .map(|_| {
            let (c, wrong, barrier) = (c.clone(), wrong.clone(), barrier.clone());
            tokio::spawn(async move {
                barrier.wait().await;
                c.post("/login/two-factor", &[("code", &wrong)]).await.status
            })
        })
        .collect();
    for t in tasks {
        let s = t.await.unwrap();
        assert!(matches!(s.as_u16(), 401 | 303 | 429), "{s}");
    }
    // Past the account's short lock, the right code on that same sign-in:
    app.clock.advance(31);
    let good = oathtool(&e.secret, app.clock.now());
    let p = c.post("/login/two-factor", &[("code", &good)]).await;
    assert!(
        p.location.as_deref().is_some_and(|l| l.starts_with("/login")),
        "{} {:?}",
        p.status,
        p.location
    );
    assert!(
        c.get("/").await.location.unwrap().starts_with("/login"),
        "not signed in"
    );
}

/// Finding 5: a pending enrolment takes five wrong codes, then dies; it
/// belongs to the session that started it.
#[tokio::test]
async fn enrolment_confirm_allows_five_wrong_codes_then_starts_over() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let setup = c.post_follow("/settings/account/mfa/enable", &[]).await;
    let secret = setup.text_of("mfa-secret").unwrap().replace(' ', "");
    // Another session of alice (a stolen cookie) cannot confirm it.
    let other = signed_in(&app, "alice").await;
    let code = oathtool(&secret, app.clock.now());
    let p = other.post("/settings/account/mfa/confirm", &[("code", &code)]).await;
    assert!(p.redirects_to("/settings/account/mfa"), "{}", p.status);
    assert!(!app.mfa_on("alice").await);
    let wrong = wrong_code(&secret, app.clock.now());
    for i in 0..4 {
        let p = c.post("/settings/account/mfa/confirm", &[("code", &wrong)]).await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "attempt {i}");
        assert!(
            p.flash().unwrap().contains(&format!("{} attempt", 4 - i)),
            "{:?}",
            p.flash()
        );
    }
    let p = c.post("/settings/account/mfa/confirm", &[("code", &wrong)]).await;
    assert!(
        p.redirects_to("/settings/account/mfa"),
        "the fifth ends it: {}",
        p.status
    );
    // The right code is too late now.
    let p = c.post("/settings/account/mfa/confirm", &[("code", &code)]).await;
    assert!(p.redirects_to("/settings/account/mfa"));
    assert!(!app.mfa_on("alice").await);
    assert!(
        app.credentials(app.user("alice").await.id).await.is_empty(),
        "the pending secret is gone"
    );
    let uid = app.user("alice").await.id;
    assert!(app.events(uid).await.contains(&"enrolment_abandoned".to_string()));
}

/// Finding 6: an administrator's Unlock clears every lock, the known
/// browser's included, and the Users page shows each one first.
#[tokio::test]
async fn admin_unlock_clears_every_lock() {
    let app = TestApp::spawn().await;
    app.create_user("root", true).await;
    let bob = app.create_user("bob", false).await;
    let root = signed_in(&app, "root").await;
    let mine = known_browser(&app, "bob", "127.0.0.1").await;
    // Twenty wrong passwords from bob's own browser lock that browser.
    for _ in 0..20 {
        let _ = mine.login("bob", "wrong password").await;
    }
    assert_eq!(mine.login("bob", PASSWORD).await.status, StatusCode::TOO_MANY_REQUESTS);
    let row = root.get("/admin/users").await.text_of("user-bob").unwrap();
    assert!(row.contains("browsers or sessions locked"), "{row}");
    let p = root.post(&format!("/admin/users/{bob}/unlock"), &[]).await;
    assert!(p.redirects_to("/admin/users"));
    assert!(mine.login("bob", PASSWORD).await.redirects_to("/"), "unlocked for real");
    let row = root.get("/admin/users").await.text_of("user-bob").unwrap();
    assert!(!row.contains("locked"), "{row}");
    assert!(app.events(bob).await.contains(&"admin_unlocked_account".to_string()));
}

/// Finding 7: IPv6 is counted per /64: new addresses in the same /64 are
/// the same network; another /64 is not.
#[tokio::test]
async fn ipv6_is_counted_per_64() {
    let app = behind_proxy().await;
    app.create_user("alice", false).await;
    for i in 1..=5 {
        let c = from(&app, &format!("2001:db8:1:2::{i:x}"));
        assert_eq!(c.login("alice", "guess").await.status, StatusCode::UNAUTHORIZED);
    }
    let same = from(&app, "2001:db8:1:2:ffff::99");
    assert_eq!(
        same.login("alice", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let other = from(&app, "2001:db8:1:3::1");
    assert!(other.login("alice", PASSWORD).await.redirects_to("/"));
}

/// Finding 8: the SQLite files are created readable by their owner only,
/// and a file others can read gets a warning at start.
#[tokio::test]
async fn database_files_are_private() {
    if testing_postgres() {
        return; // a PostgreSQL server keeps its own files
    }
    use std::os::unix::fs::PermissionsExt;
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    signed_in(&app, "alice").await;
    let path = app.db_path.clone().unwrap();
    for suffix in ["", "-wal", "-shm"] {
        let file = std::path::PathBuf::from(format!("{}{suffix}", path.display()));
        let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", file.display());
    }
    // A file made readable by others: the server starts, and says so.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("latchkey.db");
    std::fs::write(&db, b"").unwrap();
    std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut server = ServerProcess::start(dir.path(), &format!("sqlite://{}", db.display()), &[]);
    let warning = server
        .log()
        .into_iter()
        .find(|l| l.contains("can be read by other users"));
    assert!(warning.is_some_and(|w| w.contains("chmod 600")));
    server.signal("TERM");
    assert!(server.exit_status().await.success());
}

/// Finding 9: each browser gets its own random token; the tokens are
/// listed, can be forgotten one by one, and a password change forgets the
/// others (this browser gets a new one).
#[tokio::test]
async fn known_browsers_are_per_browser_listed_and_revocable() {
    let app = behind_proxy().await;
    app.create_user("alice", false).await;
    let a = known_browser(&app, "alice", "192.0.2.10").await;
    let b = known_browser(&app, "alice", "192.0.2.11").await;
    let token = |c: &TestClient| {
        c.cookie_header()
            .split("; ")
            .find_map(|kv| kv.strip_prefix("latchkey_browser=").map(str::to_string))
            .unwrap()
    };
    assert_ne!(token(&a), token(&b), "one token per browser");
    // Both are listed on the Sessions tab.
    assert!(a.login("alice", PASSWORD).await.redirects_to("/"));
    let tab = a.get("/settings/account/sessions").await;
    let listed = list_items(&tab.body, "known-browsers");
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(tab.text_of("known-browsers").unwrap().contains("this browser"));
    // Spend the daily budget from elsewhere; both browsers still get in.
    for i in 0..60 {
        let _ = from(&app, &format!("10.9.0.{}", i + 1)).login("alice", "guess").await;
    }
    assert!(b.login("alice", PASSWORD).await.redirects_to("/"));
    // Forget b (from a's session): b is a stranger from now on.
    let b_id = tab
        .body
        .split("<li data-browser-id=\"")
        .skip(1)
        .find(|item| !item.split("</li>").next().unwrap().contains("this browser"))
        .and_then(|item| item.split('"').next())
        .unwrap()
        .to_string();
    let p = a.post(&format!("/settings/account/browsers/{b_id}/forget"), &[]).await;
    assert!(p.redirects_to("/settings/account/sessions"));
    assert!(
        b.login("alice", PASSWORD).await.redirects_to("/login/two-factor"),
        "b is forgotten"
    );
    // A password change forgets the others and renews this browser's token.
    let before = token(&a);
    let new = "a brand new passphrase";
    let p = a
        .post(
            "/settings/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new),
                ("new_password_confirm", new),
            ],
        )
        .await;
    assert!(p.redirects_to("/settings/account/password"));
    assert_ne!(token(&a), before);
    let tab = a.get("/settings/account/sessions").await;
    assert_eq!(list_items(&tab.body, "known-browsers").len(), 1);
}

/// Finding 10: a check costs the same time whether the user exists or not,
/// whatever cost their stored hash has (accounts at cost 4, server at 8).
/// Medians of interleaved samples, compared with each other in one run.
#[tokio::test]
async fn checks_take_as_long_for_unknown_names_and_cheap_hashes() {
    let app = TestApp::spawn_with(|c| c.bcrypt_cost = 8).await;
    let mut unknown = vec![];
    let mut cheap = vec![];
    for i in 0..7 {
        app.create_user(&format!("cheap{i}"), false).await; // cost 4
        let c = app.client();
        let _ = c.csrf().await;
        let t = std::time::Instant::now();
        assert_eq!(
            c.login(&format!("nobody{i}"), "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
        unknown.push(t.elapsed());
        let t = std::time::Instant::now();
        assert_eq!(
            c.login(&format!("cheap{i}"), "guess").await.status,
            StatusCode::UNAUTHORIZED
        );
        cheap.push(t.elapsed());
    }
    unknown.sort();
    cheap.sort();
    let (u, k) = (unknown[3].as_secs_f64(), cheap[3].as_secs_f64());
    assert!(
        k > u * 0.5,
        "a cost-4 account answers in {k:.4}s, an unknown name in {u:.4}s"
    );
}
