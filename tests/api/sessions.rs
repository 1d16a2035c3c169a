use latchkey::config::PublicUrl;
use reqwest::StatusCode;

use crate::helpers::*;

fn session_cookie(jar_header: &str) -> Option<String> {
    jar_header
        .split("; ")
        .find(|c| c.starts_with("latchkey_session="))
        .map(str::to_string)
}

#[tokio::test]
async fn logout_ends_the_session_on_the_server() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let stolen = c.cookie_header();
    assert!(session_cookie(&stolen).is_some());

    let out = c.post("/logout", &[]).await;
    assert!(out.redirects_to("/login?signed_out=1"));
    assert!(c.get("/").await.redirects_to("/login?next=%2F"));

    // Someone who copied the cookie before logout gets nothing.
    let replay = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = replay
        .get(format!("{}/", app.base))
        .header("cookie", stolen)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
    assert_eq!(resp.headers()["location"], "/login?next=%2F");
    let uid = app.user("alice").await.id;
    assert!(app.events(uid).await.contains(&"logged_out".to_string()));
}

#[tokio::test]
async fn session_id_changes_at_login() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = app.client();
    // Make an anonymous session exist first (a flash message is stored).
    let _ = c.login("alice", "wrong password").await;
    let _ = c.get("/login").await;
    let before = session_cookie(&c.cookie_header());
    assert!(c.login("alice", PASSWORD).await.redirects_to("/"));
    let after = session_cookie(&c.cookie_header());
    assert!(after.is_some());
    assert_ne!(before, after);
}

/// A GET with exactly this `Cookie` header, as someone who copied it would send.
async fn get_with_cookie(app: &TestApp, path: &str, cookie: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}{path}", app.base))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn keys_from_before_each_sign_in_step_are_dead_after_it() {
    let app = TestApp::spawn().await;
    let uid = app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    let _ = e.client.post("/logout", &[]).await;

    // The password step makes a pending session; entering the password
    // again (back button, second tab) moves it to a new key...
    let c = app.client();
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    let first = c.cookie_header();
    assert!(session_cookie(&first).is_some());
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    let pending = c.cookie_header();
    assert_ne!(session_cookie(&pending), session_cookie(&first));
    // ...and the code step to another one.
    app.clock.advance(30);
    let code = oathtool(&e.secret, app.clock.now());
    assert!(c.post("/login/two-factor", &[("code", &code)]).await.redirects_to("/"));
    let signed_in = c.cookie_header();
    assert_ne!(session_cookie(&signed_in), session_cookie(&pending));
    assert_eq!(c.get("/").await.status, StatusCode::OK);

    // Whoever kept an earlier cookie is neither signed in nor half-way there.
    for old in [&first, &pending] {
        let home = get_with_cookie(&app, "/", old).await;
        assert_eq!(home.status(), StatusCode::SEE_OTHER);
        assert_eq!(home.headers()["location"], "/login?next=%2F");
        let step = get_with_cookie(&app, "/login/two-factor", old).await;
        assert_eq!(
            step.status(),
            StatusCode::SEE_OTHER,
            "second step still open to an old key"
        );
    }
    // One row per live session: the moves left no orphan behind.
    assert_eq!(app.count("sessions").await, 1);
    assert_eq!(
        app.events(uid).await.iter().filter(|e| *e == "login_succeeded").count(),
        2
    );
}

#[tokio::test]
async fn idle_sessions_expire_after_30_minutes() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    // Activity keeps it alive...
    for _ in 0..3 {
        app.clock.advance(25 * 60);
        assert_eq!(c.get("/").await.status, StatusCode::OK);
    }
    // ...and 31 idle minutes end it.
    app.clock.advance(31 * 60);
    assert!(c.get("/").await.redirects_to("/login?next=%2F"));
}

#[tokio::test]
async fn sessions_end_after_12_hours_whatever_the_activity() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let mut alive_for = 0;
    loop {
        app.clock.advance(20 * 60);
        alive_for += 20 * 60;
        if c.get("/").await.status != StatusCode::OK {
            break;
        }
        assert!(alive_for <= 12 * 3600, "still signed in after {alive_for} s");
    }
    assert!(alive_for > 11 * 3600, "ended too early, after {alive_for} s");
}

#[tokio::test]
async fn cookies_have_the_right_attributes() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = app.client();
    let _ = c.get("/login").await;
    let token = c.csrf().await;
    let resp = c
        .http
        .post(c.url("/login"))
        .form(&[("username", "alice"), ("password", PASSWORD), ("csrf_token", &token)])
        .send()
        .await
        .unwrap();
    let cookies: Vec<String> = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect();
    let session = cookies
        .iter()
        .find(|c| c.starts_with("latchkey_session="))
        .expect("session cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(session.contains(attr), "{session}");
    }
    assert!(!session.contains("Secure"), "plain http: no Secure");
    assert!(
        !session.contains("Max-Age") && !session.contains("Expires"),
        "a browser-session cookie"
    );
}

#[tokio::test]
async fn https_public_url_gives_host_prefixed_secure_cookies() {
    let app =
        TestApp::spawn_with(|c| c.public_url = Some(PublicUrl::parse("https://login.example.com").unwrap())).await;
    let resp = reqwest::get(format!("{}/login", app.base)).await.unwrap();
    let csrf = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(csrf.starts_with("__Host-latchkey_csrf="), "{csrf}");
    assert!(csrf.contains("Secure") && csrf.contains("Path=/") && csrf.contains("HttpOnly"));
    assert!(resp.headers().contains_key("strict-transport-security"));
}
