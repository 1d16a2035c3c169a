//! The races SPEC names, run concurrently against the real server.

use reqwest::StatusCode;

use crate::helpers::*;

async fn pending_logins(app: &TestApp, user: &str, n: usize) -> Vec<TestClient> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let c = app.client();
        assert!(c.login(user, PASSWORD).await.redirects_to("/login/two-factor"));
        let _ = c.csrf().await;
        out.push(c);
    }
    out
}

async fn submit_all(clients: Vec<TestClient>, code: &str) -> Vec<StatusCode> {
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(clients.len()));
    let mut tasks = Vec::new();
    for c in clients {
        let code = code.to_string();
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            c.post("/login/two-factor", &[("code", &code)]).await.status
        }));
    }
    let mut statuses = Vec::new();
    for t in tasks {
        statuses.push(t.await.unwrap());
    }
    statuses
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_totp_code_twenty_times_at_once_succeeds_once() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    app.clock.advance(30);
    let clients = pending_logins(&app, "alice", 20).await;
    let code = oathtool(&e.secret, app.clock.now());
    let statuses = submit_all(clients, &code).await;
    let wins = statuses.iter().filter(|s| **s == StatusCode::SEE_OTHER).count();
    assert_eq!(wins, 1, "{statuses:?}");
    // Losers are refused as a replay, or meet the lock once five attempts
    // have been counted.
    assert!(
        statuses.iter().all(|s| matches!(s.as_u16(), 303 | 401 | 429)),
        "{statuses:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_recovery_code_twenty_times_at_once_succeeds_once() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    let clients = pending_logins(&app, "alice", 20).await;
    let statuses = submit_all(clients, &e.codes[0]).await;
    let wins = statuses.iter().filter(|s| **s == StatusCode::SEE_OTHER).count();
    assert_eq!(wins, 1, "{statuses:?}");
    // A spent recovery code is a wrong code: after five, the lock answers.
    assert!(
        statuses.iter().all(|s| matches!(s.as_u16(), 303 | 401 | 429)),
        "{statuses:?}"
    );
    let uid = app.user("alice").await.id;
    let left = app
        .db
        .run(move |c| latchkey::db::recovery::remaining(c, uid))
        .await
        .unwrap();
    assert_eq!(left, 9);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn confirming_one_enrolment_twenty_times_at_once_enables_once() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = std::sync::Arc::new(signed_in(&app, "alice").await);
    let setup = c.post_follow("/settings/account/mfa/enable", &[]).await;
    let secret = setup.text_of("mfa-secret").unwrap().replace(' ', "");
    let code = oathtool(&secret, app.clock.now());
    let _ = c.csrf().await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(20));
    let mut tasks = vec![];
    for _ in 0..20 {
        let (c, code, barrier) = (c.clone(), code.clone(), barrier.clone());
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            let p = c.post("/settings/account/mfa/confirm", &[("code", &code)]).await;
            p.redirects_to("/settings/account/mfa/recovery-codes/new")
        }));
    }
    for t in tasks {
        // Each goes to the page where the codes wait (or a clear refusal
        // of a code already used): none is a second enrolment.
        assert!(t.await.unwrap(), "every Confirm goes to the codes' one showing");
    }
    let uid = app.user("alice").await.id;
    let enabled = app.events(uid).await.iter().filter(|k| *k == "mfa_enabled").count();
    assert_eq!(enabled, 1, "enabled once");
    assert_eq!(app.count("recovery_codes").await, 10);
    assert!(app.mfa_on("alice").await);
    // The codes are shown, once.
    let first = c.get("/settings/account/mfa/recovery-codes/new").await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.flash());
    let shown = first.text_of("recovery-codes").expect("the codes");
    assert_eq!(shown.split_whitespace().count(), 10, "{shown}");
    let again = c.get("/settings/account/mfa/recovery-codes/new").await;
    assert!(again.redirects_to("/settings/account/mfa"));
    assert!(again.text_of("recovery-codes").is_none());
}

/// Enable and disable racing each other never leave a half state: either 2FA
/// is on with its secret and ten codes, or off with neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn enable_and_disable_racing_leave_a_consistent_state() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    for _round in 0..3 {
        let e = enrol(&app, signed_in(&app, "alice").await).await;
        app.clock.advance(30);
        // Session A disables with a current code while session B, signed
        // in too, regenerates recovery codes and tries to enable again.
        let a = e.client;
        let b = signed_in_with_code(&app, &e.secret).await;
        app.clock.advance(30);
        let _ = a.csrf().await;
        let code = oathtool(&e.secret, app.clock.now());
        let fields = [("code", code.as_str())];
        let disable = a.post("/settings/account/mfa/disable", &fields);
        let regenerate = b.post("/settings/account/mfa/recovery-codes", &[]);
        let enable = b.post_follow("/settings/account/mfa/enable", &[]);
        let (d, _r, en) = tokio::join!(disable, regenerate, enable);
        assert!(d.redirects_to("/settings/account/mfa"), "{:?}", d.flash());
        if let Some(new_secret) = en.text_of("mfa-secret") {
            // B's Enable came after the disable: finish that enrolment too.
            let code = oathtool(&new_secret.replace(' ', ""), app.clock.now());
            let _ = b.post("/settings/account/mfa/confirm", &[("code", &code)]).await;
        }
        let user = app.user("alice").await;
        let codes = app.count("recovery_codes").await;
        if app.mfa_on("alice").await {
            assert_eq!(codes, 10);
            assert!(app.totp_last_step("alice").await.is_some());
        } else {
            assert_eq!(codes, 0, "2FA off but recovery codes left");
            assert!(app.totp_last_step("alice").await.is_none());
        }
        // Start the next round from 2FA off (as `latchkey user reset-mfa` does).
        app.auth
            .reset_mfa(latchkey::auth::Actor::CommandLine, user.id)
            .await
            .unwrap();
        app.clock.advance(60);
    }
}

async fn signed_in_with_code(app: &TestApp, secret: &str) -> TestClient {
    let (c, p) = login_with_code(app, "alice", &oathtool(secret, app.clock.now())).await;
    assert!(p.redirects_to("/"), "{:?}", p.flash());
    c
}

/// A burst of simultaneous guesses gets no more tries than a patient
/// guesser: attempts are counted before they are checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_of_guesses_gets_five_tries_not_thirty() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    app.clock.advance(30);
    let clients = pending_logins(&app, "alice", 30).await;
    let wrong = wrong_code(&e.secret, app.clock.now());
    let statuses = submit_all(clients, &wrong).await;
    let checked = statuses.iter().filter(|s| **s == StatusCode::UNAUTHORIZED).count();
    assert!(checked <= 5, "{checked} wrong codes were checked: {statuses:?}");
    assert!(statuses.iter().all(|s| matches!(s.as_u16(), 401 | 429)), "{statuses:?}");
    let uid = app.user("alice").await.id;
    let failed = app
        .events(uid)
        .await
        .iter()
        .filter(|k| *k == "second_factor_failed")
        .count();
    assert!(failed <= 5, "{failed}");

    // The same for passwords: thirty at once, at most five checked.
    app.create_user("bob", false).await;
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(30));
    let mut tasks = vec![];
    for _ in 0..30 {
        let c = app.client();
        let _ = c.csrf().await;
        let barrier = barrier.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            c.login("bob", "wrong password").await.status
        }));
    }
    let mut wrong_answers = 0;
    for t in tasks {
        let s = t.await.unwrap();
        assert!(matches!(s.as_u16(), 401 | 429), "{s}");
        wrong_answers += usize::from(s == StatusCode::UNAUTHORIZED);
    }
    assert!(wrong_answers <= 5, "{wrong_answers} passwords were checked");
}
