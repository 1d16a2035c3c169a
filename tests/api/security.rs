use reqwest::StatusCode;

use crate::helpers::*;

fn assert_security_headers(resp: &reqwest::Response) {
    let h = resp.headers();
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "same-origin");
}

#[tokio::test]
async fn security_headers_on_every_kind_of_page() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    for path in ["/login", "/", "/settings/account/mfa", "/no/such/page", "/healthz"] {
        let resp = c.http.get(c.url(path)).send().await.unwrap();
        assert_security_headers(&resp);
        assert_eq!(resp.headers()["cache-control"], "no-store", "{path}");
    }
    // Refusals made by middleware carry the headers too.
    let resp = c
        .http
        .post(c.url("/logout"))
        .header("sec-fetch-site", "cross-site")
        .form(&[("csrf_token", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::FORBIDDEN);
    assert_security_headers(&resp);
}

#[tokio::test]
async fn static_assets_are_versioned_and_cached() {
    let app = TestApp::spawn().await;
    let c = app.client();
    let login = c.get("/login").await;
    let href = attr_after(&login.body, "rel=\"stylesheet\" href=\"").unwrap();
    assert!(href.starts_with("/static/") && href.ends_with("/style.css"), "{href}");
    let resp = c.http.get(c.url(&href)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(
        resp.headers()["cache-control"]
            .to_str()
            .unwrap()
            .contains("max-age=31536000")
    );
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/css"));
    assert_eq!(c.get("/static/0000/style.css").await.status, StatusCode::NOT_FOUND);
    // No inline script or style anywhere on the page.
    assert!(!login.body.contains("<script>") && !login.body.contains("style="));
}

#[tokio::test]
async fn not_found_page_and_health() {
    let app = TestApp::spawn().await;
    let c = app.client();
    let p = c.get("/nope").await;
    assert_eq!(p.status, StatusCode::NOT_FOUND);
    assert!(p.body.contains("Page not found") && p.body.contains("role=\"alert\""));
    let h = c.http.get(c.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), StatusCode::OK);
    assert_eq!(h.text().await.unwrap(), "ok");
}

#[tokio::test]
async fn csrf_token_is_required_and_nothing_changes_without_it() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;

    // Login: missing token, wrong token, a token from another browser.
    let c = app.client();
    let _ = c.get("/login").await;
    let missing = c
        .post_raw("/login", &[("username", "alice"), ("password", PASSWORD)])
        .await;
    assert_eq!(missing.status, StatusCode::FORBIDDEN);
    let wrong = c
        .post_raw(
            "/login",
            &[("username", "alice"), ("password", PASSWORD), ("csrf_token", "AAAA")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN);
    let other = app.client();
    let foreign = other.csrf().await;
    let stolen = c
        .post_raw(
            "/login",
            &[("username", "alice"), ("password", PASSWORD), ("csrf_token", &foreign)],
        )
        .await;
    assert_eq!(stolen.status, StatusCode::FORBIDDEN);
    assert!(c.get("/").await.redirects_to("/login?next=%2F"), "not signed in");

    // A first request with no cookie at all cannot carry a right token.
    let fresh = app.client();
    let p = fresh
        .post_raw(
            "/login",
            &[("username", "alice"), ("password", PASSWORD), ("csrf_token", &foreign)],
        )
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);

    // Signed in: logout and password change refuse without a token.
    let s = signed_in(&app, "alice").await;
    assert_eq!(s.post_raw("/logout", &[]).await.status, StatusCode::FORBIDDEN);
    let change = s
        .post_raw(
            "/settings/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "brand new passphrase"),
                ("new_password_confirm", "brand new passphrase"),
                ("csrf_token", "forged"),
            ],
        )
        .await;
    assert_eq!(change.status, StatusCode::FORBIDDEN);
    assert_eq!(s.get("/").await.status, StatusCode::OK, "still signed in");
    assert!(
        app.client().login("alice", PASSWORD).await.redirects_to("/"),
        "password unchanged"
    );
}

#[tokio::test]
async fn cross_site_posts_are_refused_even_with_a_token() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = app.client();
    let token = c.csrf().await;
    let form = [
        ("username", "alice"),
        ("password", PASSWORD),
        ("csrf_token", token.as_str()),
    ];
    for (name, value) in [
        ("origin", "http://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let resp = c
            .http
            .post(c.url("/login"))
            .header(name, value)
            .form(&form)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::FORBIDDEN, "{name}: {value}");
    }
    // The browser's own origin is fine.
    let ours = app.base.clone();
    let resp = c
        .http
        .post(c.url("/login"))
        .header("origin", ours)
        .header("sec-fetch-site", "same-origin")
        .form(&form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn no_state_changes_on_get() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    for path in [
        "/logout",
        "/settings/account/mfa/enable",
        "/settings/account/mfa/recovery-codes",
    ] {
        let p = c.get(path).await;
        assert!(matches!(p.status.as_u16(), 404 | 405), "{path}: {}", p.status);
        assert!(p.body.contains("role=\"alert\""), "a real page: {path}");
    }
    assert_eq!(c.get("/").await.status, StatusCode::OK, "still signed in");
    assert_eq!(app.count("mfa_enrolments").await, 0);
}
