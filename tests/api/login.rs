use reqwest::StatusCode;

use crate::helpers::*;

#[tokio::test]
async fn login_reaches_the_dashboard_and_settings_shell() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;

    let dash = c.get("/").await;
    assert_eq!(dash.status, StatusCode::OK);
    assert!(dash.body.contains("Welcome, alice"));
    // Settings has one section, My account settings: the link goes straight
    // there, and the old address still leads to it.
    assert_eq!(
        attr_after(&dash.body, "id=\"nav-settings\" href=\"").as_deref(),
        Some("/settings/account")
    );
    assert!(c.get("/settings").await.redirects_to("/settings/account"));
    let account = c.get("/settings/account").await;
    assert_eq!(
        attr_after(&account.body, "id=\"nav-account-settings\" href=\"").as_deref(),
        Some("/settings/account")
    );
    assert_eq!(account.status, StatusCode::OK);
    assert!(account.body.contains("Profile") && account.body.contains("Password"));
    assert_eq!(
        attr_after(&account.body, "id=\"tab-mfa\" href=\"").as_deref(),
        Some("/settings/account/mfa")
    );
    let mfa = c.get("/settings/account/mfa").await;
    assert_eq!(mfa.text_of("mfa-status").as_deref(), Some("Disabled"));
    assert!(mfa.body.contains("id=\"mfa-enable\""));

    let user = app.user("alice").await;
    assert!(user.last_login_at.is_some());
    assert!(app.events(user.id).await.contains(&"login_succeeded".to_string()));
}

#[tokio::test]
async fn usernames_are_case_insensitive() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = app.client();
    assert!(c.login("  ALICE ", PASSWORD).await.redirects_to("/"));
}

#[tokio::test]
async fn unknown_user_and_wrong_password_look_identical() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = app.client();
    let wrong = c.login("alice", "not the password").await;
    let unknown = c.login("nobody", "not the password").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(unknown.status, wrong.status);
    assert_eq!(wrong.flash().as_deref(), Some("Incorrect username or password."));
    // The only difference is the username echoed back into the form.
    assert_eq!(wrong.body.replace("alice", "X"), unknown.body.replace("nobody", "X"));
    assert!(c.get("/").await.redirects_to("/login?next=%2F"));
}

#[tokio::test]
async fn anonymous_visitors_go_to_login_and_come_back() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = app.client();
    let p = c.get("/settings/account").await;
    assert!(p.redirects_to("/login?next=%2Fsettings%2Faccount"), "{:?}", p.location);
    let form = c.get(p.location.as_deref().unwrap()).await;
    assert!(form.body.contains("name=\"next\" value=\"/settings/account\""));
    let done = c
        .post(
            "/login",
            &[
                ("username", "alice"),
                ("password", PASSWORD),
                ("next", "/settings/account"),
            ],
        )
        .await;
    assert!(done.redirects_to("/settings/account"));
}

#[tokio::test]
async fn next_never_leaves_the_site() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    for evil in [
        "//evil.example/",
        "https://evil.example/",
        "/\\evil.example",
        "javascript:alert(1)",
    ] {
        let c = app.client();
        let p = c
            .post(
                "/login",
                &[("username", "alice"), ("password", PASSWORD), ("next", evil)],
            )
            .await;
        assert!(p.redirects_to("/"), "{evil}: {:?}", p.location);
        let form = app.client().get(&format!("/login?next={}", urlencode(evil))).await;
        assert!(!form.body.contains("evil.example"), "{evil}");
    }
}

fn urlencode(s: &str) -> String {
    serde_urlencoded::to_string([("x", s)]).unwrap()[2..].to_string()
}

#[tokio::test]
async fn password_change_ends_other_sessions() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let here = signed_in(&app, "alice").await;
    let elsewhere = signed_in(&app, "alice").await;
    let new = "an entirely new passphrase";

    let mismatch = here
        .post(
            "/settings/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new),
                ("new_password_confirm", "other"),
            ],
        )
        .await;
    assert_eq!(mismatch.status, StatusCode::BAD_REQUEST);
    let wrong = here
        .post(
            "/settings/account/password",
            &[
                ("current_password", "wrong password"),
                ("new_password", new),
                ("new_password_confirm", new),
            ],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert_eq!(elsewhere.get("/").await.status, StatusCode::OK, "nothing changed yet");

    let before = here.cookie_header();
    let ok = here
        .post(
            "/settings/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new),
                ("new_password_confirm", new),
            ],
        )
        .await;
    assert!(ok.redirects_to("/settings/account/password"), "{:?}", ok.flash());
    assert_eq!(here.get("/").await.status, StatusCode::OK, "this session goes on");
    // ...under a new key: a copy of its cookie from before the change is dead.
    assert_ne!(here.cookie_header(), before);
    let copy = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/", app.base))
        .header("cookie", before)
        .send()
        .await
        .unwrap();
    assert_eq!(copy.status(), StatusCode::SEE_OTHER, "the old key still works");
    assert_eq!(
        elsewhere.get("/").await.status,
        StatusCode::SEE_OTHER,
        "the other one ended"
    );
    assert_eq!(
        app.client().login("alice", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert!(app.client().login("alice", new).await.redirects_to("/"));
}

/// An unknown address: "Page not found" in the app's layout (with its
/// navigation, without "Sign in") for a signed-in user; the public page
/// with "Sign in" for anyone else.
#[tokio::test]
async fn not_found_keeps_the_layout_of_who_is_asking() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let p = c.get("/no/such/page").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.body.contains("Page not found"));
    assert!(p.body.contains("id=\"nav-settings\""), "the app's navigation");
    assert!(p.body.contains("id=\"logout\""));
    assert!(!p.body.contains("href=\"/login\""), "no Sign in for a signed-in user");
    let post = c.post("/no/such/page", &[]).await;
    assert_eq!(post.status, StatusCode::NOT_FOUND);

    let anonymous = app.client().get("/no/such/page").await;
    assert_eq!(anonymous.status, StatusCode::NOT_FOUND);
    assert!(anonymous.body.contains("href=\"/login\""));
    assert!(!anonymous.body.contains("id=\"nav-settings\""));
}
