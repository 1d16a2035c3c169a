//! Administration, the 2FA policy, the sessions tab and the security log.

use reqwest::StatusCode;

use crate::helpers::*;

async fn admin(app: &TestApp) -> TestClient {
    app.create_user("root", true).await;
    signed_in(app, "root").await
}

#[tokio::test]
async fn admin_creates_a_user_who_must_choose_a_password() {
    let app = TestApp::spawn().await;
    let root = admin(&app).await;
    let users = root.get("/admin/users").await;
    assert_eq!(users.status, StatusCode::OK);
    assert!(root.get("/").await.body.contains("id=\"nav-admin-users\""));

    // Post/Redirect/Get: the temporary password is on a GET page, once.
    let posted = root.post("/admin/users", &[("username", "Bob")]).await;
    assert!(posted.redirects_to("/admin/users/created"), "{}", posted.status);
    // A second click on Create goes to the same one showing.
    let twice = root.post("/admin/users", &[("username", "Bob")]).await;
    assert!(twice.redirects_to("/admin/users/created"), "{}", twice.status);
    let created = root.get("/admin/users/created").await;
    assert_eq!(created.status, StatusCode::OK);
    let temporary = created.text_of("temporary-password").expect("shown once");
    assert!(temporary.len() >= 20);
    let again = root.get("/admin/users/created").await;
    assert!(again.redirects_to("/admin/users"));
    assert!(!again.body.contains(&temporary));
    assert!(!root.get("/admin/users").await.body.contains(&temporary));
    let dup = root.post("/admin/users", &[("username", "bob")]).await;
    assert_eq!(dup.status, StatusCode::CONFLICT);

    // Bob signs in with it and can reach nothing but the password form.
    let bob = app.client();
    assert!(bob.login("bob", &temporary).await.redirects_to("/"));
    assert!(bob.get("/").await.redirects_to("/settings/account/password"));
    assert!(
        bob.get("/settings/account/mfa")
            .await
            .redirects_to("/settings/account/password")
    );
    let form = bob.get("/settings/account/password").await;
    assert!(form.flash().unwrap().contains("temporary password"));
    let new = "bob's own passphrase";
    let done = bob
        .post(
            "/settings/account/password",
            &[
                ("current_password", &temporary),
                ("new_password", new),
                ("new_password_confirm", new),
            ],
        )
        .await;
    assert!(done.redirects_to("/settings/account/password"));
    assert_eq!(bob.get("/").await.status, StatusCode::OK);
    let uid = app.user("bob").await.id;
    assert!(app.events(uid).await.contains(&"admin_created_user".to_string()));
}

#[tokio::test]
async fn every_admin_route_refuses_a_non_admin() {
    let app = TestApp::spawn().await;
    app.create_user("root", true).await;
    let bob_id = app.create_user("bob", false).await;
    let e = enrol(&app, signed_in(&app, "bob").await).await;
    app.create_user("alice", false).await;
    let alice = signed_in(&app, "alice").await;
    assert!(!alice.get("/").await.body.contains("nav-admin-users"));

    let id = bob_id.to_string();
    for path in [
        "/admin/users",
        "/admin/security-log",
        &format!("/admin/users/{id}/reset-mfa"),
    ] {
        let p = alice.get(path).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "GET {path}");
        assert!(p.body.contains("role=\"alert\""));
    }
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        ("/admin/users".into(), vec![("username", "mallory"), ("admin", "1")]),
        (format!("/admin/users/{id}/reset-mfa"), vec![]),
        (format!("/admin/users/{id}/unlock"), vec![]),
        (format!("/admin/users/{id}/admin"), vec![("admin", "1")]),
        ("/admin/policy".into(), vec![("required", "1"), ("grace_days", "0")]),
    ];
    for (path, fields) in &posts {
        let p = alice.post(path, fields).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "POST {path} (with a valid CSRF token)");
    }
    // Nothing changed.
    assert_eq!(app.count("users").await, 3);
    let bob = app.user("bob").await;
    assert!(app.mfa_on("bob").await && !bob.is_admin);
    assert_eq!(e.client.get("/").await.status, StatusCode::OK, "bob's session lives");
    assert!(!app.user("alice").await.is_admin);
    assert!(alice.get("/").await.body.contains("Welcome"), "no policy imposed");
    // Anonymous visitors are sent to sign in.
    assert!(
        app.client()
            .get("/admin/users")
            .await
            .location
            .unwrap()
            .starts_with("/login")
    );
}

#[tokio::test]
async fn admin_resets_a_lost_phone_and_unlocks_an_account() {
    let app = TestApp::spawn().await;
    let root = admin(&app).await;
    app.create_user("bob", false).await;
    let e = enrol(&app, signed_in(&app, "bob").await).await;
    let bob_id = app.user("bob").await.id;

    let list = root.get("/admin/users").await;
    assert!(list.text_of("user-bob").unwrap().contains("10 recovery codes left"));
    let confirm = root.get(&format!("/admin/users/{bob_id}/reset-mfa")).await;
    assert!(confirm.body.contains("id=\"admin-reset-confirm\""));
    let done = root.post(&format!("/admin/users/{bob_id}/reset-mfa"), &[]).await;
    assert!(done.redirects_to("/admin/users"));
    assert!(!app.mfa_on("bob").await);
    assert!(
        e.client.get("/").await.location.unwrap().starts_with("/login"),
        "bob's sessions ended"
    );
    assert!(app.events(bob_id).await.contains(&"mfa_reset".to_string()));

    // Five wrong passwords lock bob; the admin sees it and unlocks him.
    let guesser = app.client();
    for _ in 0..5 {
        guesser.login("bob", "wrong password").await;
    }
    assert_eq!(
        app.client().login("bob", PASSWORD).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    let list = root.get("/admin/users").await;
    assert!(
        list.text_of("user-bob").unwrap().contains("locked out until"),
        "the Users page shows the lock"
    );
    let unlocked = root.post(&format!("/admin/users/{bob_id}/unlock"), &[]).await;
    assert!(unlocked.redirects_to("/admin/users"));
    assert!(app.client().login("bob", PASSWORD).await.redirects_to("/"));
    assert!(app.events(bob_id).await.contains(&"admin_unlocked_account".to_string()));
}

#[tokio::test]
async fn admin_rights_but_never_the_last_admin() {
    let app = TestApp::spawn().await;
    let root = admin(&app).await;
    let root_id = app.user("root").await.id;
    let bob_id = app.create_user("bob", false).await;

    // The last administrator is not offered "Remove admin" at all…
    let users = root.get("/admin/users").await;
    assert_eq!(users.body.matches("Remove admin").count(), 0);
    assert_eq!(users.body.matches(">Make admin<").count(), 1, "bob can be made one");
    assert!(users.body.contains("Only administrator"));
    // …and a forged request is still refused.
    let p = root
        .post(&format!("/admin/users/{root_id}/admin"), &[("admin", "0")])
        .await;
    assert_eq!(p.status, StatusCode::CONFLICT);
    assert!(p.flash().unwrap().contains("last administrator"));
    assert!(app.user("root").await.is_admin);
    let p = root
        .post(&format!("/admin/users/{bob_id}/admin"), &[("admin", "maybe")])
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);

    assert!(
        root.post(&format!("/admin/users/{bob_id}/admin"), &[("admin", "1")])
            .await
            .redirects_to("/admin/users")
    );
    assert!(app.user("bob").await.is_admin);
    assert!(app.events(bob_id).await.contains(&"admin_granted".to_string()));
    let users = root.get("/admin/users").await;
    assert_eq!(
        users.body.matches(">Remove admin<").count(),
        2,
        "two admins: either may step down"
    );
    // Now root may step down, and loses the admin pages at once.
    assert!(
        root.post(&format!("/admin/users/{root_id}/admin"), &[("admin", "0")])
            .await
            .redirects_to("/")
    );
    assert_eq!(root.get("/admin/users").await.status, StatusCode::FORBIDDEN);

    // Two admins removing each other at the same time leave one.
    let bob = signed_in(&app, "bob").await;
    assert!(
        bob.post(&format!("/admin/users/{root_id}/admin"), &[("admin", "1")])
            .await
            .redirects_to("/admin/users")
    );
    let root = signed_in(&app, "root").await;
    let _ = (root.csrf().await, bob.csrf().await);
    let r = format!("/admin/users/{bob_id}/admin");
    let b = format!("/admin/users/{root_id}/admin");
    let (x, y) = tokio::join!(root.post(&r, &[("admin", "0")]), bob.post(&b, &[("admin", "0")]));
    let admins = [app.user("root").await.is_admin, app.user("bob").await.is_admin];
    assert_eq!(admins.iter().filter(|a| **a).count(), 1, "{} {}", x.status, y.status);
}

#[tokio::test]
async fn the_2fa_policy_has_a_grace_period_then_is_enforced() {
    let app = TestApp::spawn().await;
    let root = admin(&app).await;
    app.create_user("alice", false).await;
    let bad = root
        .post("/admin/policy", &[("required", "1"), ("grace_days", "-3")])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        root.post("/admin/policy", &[("required", "1"), ("grace_days", "7")])
            .await
            .redirects_to("/admin/users")
    );

    let alice = signed_in(&app, "alice").await;
    let dash = alice.get("/").await;
    assert_eq!(dash.status, StatusCode::OK);
    assert!(dash.text_of("policy-notice").unwrap().contains("requires two-factor"));

    // Eight days later (a new sign-in: the old session timed out).
    app.clock.advance(8 * 86_400);
    let alice = app.client();
    assert!(alice.login("alice", PASSWORD).await.redirects_to("/"));
    assert!(alice.get("/").await.redirects_to("/settings/account/mfa"));
    assert!(alice.get("/settings").await.redirects_to("/settings/account/mfa"));
    let tab = alice.get("/settings/account/mfa").await;
    assert_eq!(tab.status, StatusCode::OK);
    assert!(tab.flash().unwrap().contains("requires two-factor"));
    let e = enrol(&app, alice).await;
    assert_eq!(e.client.get("/").await.status, StatusCode::OK, "free again with 2FA on");
    assert!(e.client.get("/").await.text_of("policy-notice").is_none());
    // The admin (without 2FA) is held to it as well.
    drop(root);
    let root = app.client();
    assert!(root.login("root", PASSWORD).await.redirects_to("/"));
    assert!(root.get("/admin/users").await.redirects_to("/settings/account/mfa"));
    assert!(
        app.events(app.user("root").await.id)
            .await
            .contains(&"policy_changed".to_string())
    );
}

#[tokio::test]
async fn security_log_views_filter_and_paginate() {
    let app = TestApp::spawn().await;
    let root = admin(&app).await;
    app.create_user("bob", false).await;
    let bob_id = app.user("bob").await.id;
    let guesser = app.client();
    for _ in 0..3 {
        guesser.login("bob", "wrong password").await;
    }
    let bob = signed_in(&app, "bob").await;

    let own = bob.get("/settings/account/security-log").await;
    assert_eq!(own.status, StatusCode::OK);
    let table = own.text_of("security-log").unwrap();
    assert!(table.contains("Sign-in failed") && table.contains("Signed in"));
    assert!(!own.body.contains("root"), "only bob's own events");

    let filtered = root.get("/admin/security-log?user=bob&kind=login_failed").await;
    assert_eq!(filtered.status, StatusCode::OK);
    assert_eq!(
        filtered.body.matches("Sign-in failed (wrong password)").count(),
        3 + 1,
        "3 rows + the filter's option"
    );
    assert!(!filtered.text_of("security-log").unwrap().contains("Signed in"));
    assert_eq!(
        root.get("/admin/security-log?kind=nonsense").await.status,
        StatusCode::BAD_REQUEST
    );
    let nobody = root.get("/admin/security-log?user=ghost").await;
    assert!(nobody.text_of("log-total").unwrap().starts_with("0 events"));

    // Sixty more events: two pages.
    app.db
        .run(move |c| {
            for _ in 0..60 {
                let e = latchkey::db::events::Event {
                    kind: latchkey::db::events::Kind::LoggedOut,
                    user_id: Some(bob_id),
                    username: Some("bob".into()),
                    client_address: Some("192.0.2.1".into()),
                    user_agent: None,
                    detail: None,
                };
                latchkey::db::events::record(c, &e, latchkey::core::types::UnixTime(0))?;
            }
            Ok(())
        })
        .await
        .unwrap();
    let first = root.get("/admin/security-log?user=bob").await;
    assert!(first.text_of("log-total").unwrap().contains("page 1 of 2"));
    assert!(first.body.contains("id=\"log-next\""), "a link to the older page");
    let second = root.get("/admin/security-log?user=bob&page=2").await;
    assert!(second.text_of("log-total").unwrap().contains("page 2 of 2"));
    // The log holds no password or code.
    let raw = String::from_utf8_lossy(&app.raw_contents()).to_string();
    assert!(!raw.contains("wrong password"));
}

#[tokio::test]
async fn sessions_tab_lists_and_signs_out_the_others() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let here = signed_in(&app, "alice").await;
    let there = signed_in(&app, "alice").await;
    let tab = here.get("/settings/account/sessions").await;
    assert_eq!(tab.status, StatusCode::OK);
    let table = tab.text_of("sessions").unwrap();
    assert_eq!(tab.body.matches("<tr").count(), 3, "a header and two sessions: {table}");
    assert!(tab.text_of("session-current").unwrap().contains("this session"));
    assert!(table.contains("127.0.0.1"));

    let done = here.post("/settings/account/sessions/revoke-others", &[]).await;
    assert!(done.redirects_to("/settings/account/sessions"));
    assert!(there.get("/").await.location.unwrap().starts_with("/login"));
    let tab = here.get("/settings/account/sessions").await;
    assert!(tab.flash().unwrap().contains("Signed out 1 other session"));
    assert_eq!(tab.body.matches("<tr").count(), 2);
    let uid = app.user("alice").await.id;
    assert!(app.events(uid).await.contains(&"sessions_revoked".to_string()));
}

#[tokio::test]
async fn few_recovery_codes_left_are_flagged() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    assert!(!e.client.get("/settings/account/mfa").await.body.contains("running low"));
    let mut last = None;
    for code in &e.codes[..7] {
        let (c, p) = login_with_code(&app, "alice", code).await;
        assert!(p.redirects_to("/"));
        last = Some(c);
    }
    let c = last.unwrap();
    let tab = c.get("/settings/account/mfa").await;
    assert_eq!(tab.text_of("recovery-codes-remaining").as_deref(), Some("3"));
    assert!(tab.body.contains("running low"));
    assert!(c.get("/").await.body.contains("running low"));
}
