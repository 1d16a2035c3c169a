//! Two servers over one database (PostgreSQL in production; the SQLite pass
//! runs the same checks with two servers on one file). Everything that must
//! hold across instances lives in the database.

use reqwest::StatusCode;

use crate::helpers::*;

async fn pending_on(base: &str, app: &TestApp, n: usize, user: &str) -> Vec<TestClient> {
    let mut out = vec![];
    for i in 0..n {
        // Half the logins begin on each instance.
        let c = if i % 2 == 0 {
            app.client()
        } else {
            TestClient::new(base)
        };
        assert!(c.login(user, PASSWORD).await.redirects_to("/login/two-factor"));
        out.push(c);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_sessions_codes_and_counters() {
    let app = TestApp::spawn().await;
    let b_base = app.another_instance().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;

    // A login begun on A finishes on B.
    app.clock.advance(30);
    let on_a = app.client();
    assert!(on_a.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    let on_b = on_a.on(&b_base);
    let code = oathtool(&e.secret, app.clock.now());
    assert!(
        on_b.post("/login/two-factor", &[("code", &code)])
            .await
            .redirects_to("/")
    );
    assert_eq!(on_b.get("/").await.status, StatusCode::OK);
    assert_eq!(
        on_a.get("/").await.status,
        StatusCode::OK,
        "and the session works on A too"
    );

    // The code accepted on B is refused on A.
    let other = app.client();
    assert!(other.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    let p = other.post("/login/two-factor", &[("code", &code)]).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.flash().unwrap().contains("already used"));

    // A logout on A ends the session on B.
    assert!(on_a.post("/logout", &[]).await.redirects_to("/login?signed_out=1"));
    let replay = TestClient::new(&b_base);
    let resp = replay
        .http
        .get(replay.url("/"))
        .header("cookie", on_b.cookie_header())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert!(on_b.get("/").await.location.unwrap().starts_with("/login"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn failures_on_both_instances_count_together() {
    let app = TestApp::spawn().await;
    let b_base = app.another_instance().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    app.clock.advance(30);
    let a = app.client();
    let b = TestClient::new(&b_base);
    assert!(a.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    assert!(b.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    let wrong = wrong_code(&e.secret, app.clock.now());
    for i in 0..5 {
        let who = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            who.post("/login/two-factor", &[("code", &wrong)]).await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let good = oathtool(&e.secret, app.clock.now());
    assert_eq!(
        b.post("/login/two-factor", &[("code", &good)]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        a.post("/login/two-factor", &[("code", &good)]).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );

    // Password failures count together too.
    let x = app.client();
    let y = TestClient::new(&b_base);
    for i in 0..5 {
        let who = if i % 2 == 0 { &x } else { &y };
        assert_eq!(
            who.login("bob", "wrong password").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        x.login("bob", "wrong password").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        y.login("bob", "wrong password").await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
}

async fn race(clients: Vec<TestClient>, code: &str) -> usize {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(clients.len()));
    let mut tasks = vec![];
    for c in clients {
        let (code, barrier) = (code.to_string(), barrier.clone());
        let _ = c.csrf().await;
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            c.post("/login/two-factor", &[("code", &code)]).await.status
        }));
    }
    let mut wins = 0;
    for t in tasks {
        let s = t.await.unwrap();
        // Losers are refused; once five have failed, the rest meet the lock.
        assert!(matches!(s.as_u16(), 303 | 401 | 429), "{s}");
        wins += usize::from(s == StatusCode::SEE_OTHER);
    }
    wins
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_code_twenty_times_across_instances_succeeds_once() {
    let app = TestApp::spawn().await;
    let b_base = app.another_instance().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    app.clock.advance(30);

    let clients = pending_on(&b_base, &app, 20, "alice").await;
    assert_eq!(
        race(clients, &oathtool(&e.secret, app.clock.now())).await,
        1,
        "TOTP code"
    );

    // The losers' attempts count; wait out any lock before the next race.
    app.clock.advance(3601);
    let clients = pending_on(&b_base, &app, 20, "alice").await;
    assert_eq!(race(clients, &e.codes[0]).await, 1, "recovery code");
    let uid = app.user("alice").await.id;
    let left = app
        .db
        .run(move |c| latchkey::db::recovery::remaining(c, uid))
        .await
        .unwrap();
    assert_eq!(left, 9);
}

/// Eight server processes start at the same moment on one empty database
/// and one key path that does not exist yet, twenty times over: every one
/// starts (they migrate in turn, under the advisory lock on PostgreSQL or the
/// write lock on SQLite), exactly one creates the key file, and all of them
/// hold that key — a form served by one instance is accepted by every other.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_instances_starting_together_share_one_new_key() {
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let (url, _pg) = binary_database(dir.path());
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let starts: Vec<_> = (0..8)
            .map(|_| {
                let (path, url, barrier) = (dir.path().to_path_buf(), url.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    ServerProcess::start(&path, &url, &[])
                })
            })
            .collect();
        let servers: Vec<ServerProcess> = starts
            .into_iter()
            .map(|t| t.join().expect("every instance starts"))
            .collect();
        let created = servers
            .iter()
            .flat_map(|s| s.log())
            .filter(|l| l.contains("generated a new server key file"))
            .count();
        assert_eq!(created, 1, "one instance created the key");
        let files: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".key"))
            .collect();
        assert_eq!(files, ["latchkey.key"], "no temporary key files left");

        // A CSRF token is a MAC under the server key: one made by the first
        // instance is good on every instance only if they share the key.
        let first = TestClient::new(&servers[0].base);
        let token = first.csrf().await;
        for (i, s) in servers.iter().enumerate() {
            let on = first.on(&s.base);
            let name = format!("nobody{i}");
            let p = on
                .post_raw(
                    "/login",
                    &[
                        ("username", &name),
                        ("password", "wrong password"),
                        ("csrf_token", &token),
                    ],
                )
                .await;
            assert_eq!(p.status, StatusCode::UNAUTHORIZED, "instance {i} accepted the form");
        }
    }
}

#[tokio::test]
async fn an_instance_with_another_key_refuses_to_start() {
    let app = TestApp::spawn().await;
    let mut config = app.config.clone();
    let other_key = app.dir.path().join("other.key");
    config.key_file = other_key.clone();
    let err = latchkey::startup::Application::build(config)
        .await
        .err()
        .expect("refused");
    let message = format!("{err:#}");
    assert!(message.contains("same key file"), "{message}");
    // The shared key still works for a second instance.
    let b = app.another_instance().await;
    assert_eq!(
        reqwest::get(format!("{b}/healthz")).await.unwrap().status(),
        StatusCode::OK
    );
}
