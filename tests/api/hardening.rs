//! Attacks found in review, each shown to fail.

use std::net::IpAddr;

use diesel::prelude::*;
use reqwest::StatusCode;

use crate::helpers::*;

/// A client whose requests come from another loopback address.
fn client_from(app: &TestApp, address: &str) -> TestClient {
    let mut c = app.client();
    let ip: IpAddr = address.parse().unwrap();
    c.http = reqwest::Client::builder()
        .cookie_provider(c.jar.clone())
        .redirect(reqwest::redirect::Policy::none())
        .local_address(ip)
        .build()
        .unwrap();
    c
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = diesel::sql_types::Text)]
    id_hash: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    state: String,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    user_id: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    created_at: i64,
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    expires_at: i64,
}

/// A sign-in that checked the old password and wrote its session just after
/// a password change (the race) must not survive the change.
#[tokio::test]
async fn a_session_written_after_a_revocation_is_refused() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let attacker = signed_in(&app, "alice").await;
    let uid = app.user("alice").await.id;
    let rows: Vec<Row> = app
        .db
        .run(move |c| {
            let q = diesel::sql_query(format!(
                "SELECT id_hash, state, user_id, created_at, expires_at FROM sessions WHERE user_id = {uid}"
            ));
            Ok(latchkey::on_backend!(c, |c| q.load::<Row>(c))?)
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);

    // The owner changes the password elsewhere…
    let owner = signed_in(&app, "alice").await;
    let new = "a completely new passphrase";
    let p = owner
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
    // …and the attacker's session row lands afterwards, as a late INSERT would.
    app.db
        .run(move |c| {
            for r in rows {
                let row = latchkey::db::sessions::SessionRow {
                    id_hash: &r.id_hash,
                    user: Some(UserId(r.user_id)),
                    state: &r.state,
                    expires_at: latchkey::core::types::UnixTime(r.expires_at),
                };
                latchkey::db::sessions::insert(c, &row, latchkey::core::types::UnixTime(r.created_at))?;
            }
            Ok(())
        })
        .await
        .unwrap();
    assert!(
        attacker.get("/").await.location.unwrap().starts_with("/login"),
        "the resurrected session is refused"
    );
    assert_eq!(owner.get("/").await.status, StatusCode::OK, "the owner's goes on");
}

/// A stolen session racing the owner's "Sign out other sessions" cannot
/// outlive it by revoking in turn.
#[tokio::test]
async fn a_revoked_session_cannot_revoke_the_others() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let owner = signed_in(&app, "alice").await;
    let thief = signed_in(&app, "alice").await;
    let _ = thief.csrf().await;
    assert!(
        owner
            .post("/settings/account/sessions/revoke-others", &[])
            .await
            .redirects_to("/settings/account/sessions")
    );
    let p = thief.post("/settings/account/sessions/revoke-others", &[]).await;
    assert!(p.location.unwrap().starts_with("/login"));
    assert_eq!(owner.get("/").await.status, StatusCode::OK, "the owner stays signed in");
}

/// Guessing from many addresses spends the account's daily budget, so a
/// stranger's right password alone no longer signs in — but a browser that
/// has signed in to it before still gets in at once.
#[tokio::test]
async fn guessing_from_elsewhere_cannot_lock_out_a_known_browser() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let mine = signed_in(&app, "alice").await; // sets the known-browser cookie
    assert!(mine.cookie_header().contains("latchkey_browser="));
    mine.post("/logout", &[]).await;

    for a in 2..=12 {
        let attacker = client_from(&app, &format!("127.0.0.{a}"));
        for _ in 0..5 {
            let _ = attacker.login("alice", "guess").await;
        }
    }
    // The daily budget (50 guesses from new browsers) is spent: a stranger
    // with the right password is answered with the code prompt, which
    // alice (no 2FA) cannot pass…
    let stranger = client_from(&app, "127.0.0.99");
    assert!(
        stranger
            .login("alice", PASSWORD)
            .await
            .redirects_to("/login/two-factor")
    );
    assert_eq!(stranger.get("/").await.status, StatusCode::SEE_OTHER, "not signed in");
    // …but the browser that signed in before goes straight in.
    assert!(mine.login("alice", PASSWORD).await.redirects_to("/"));
    // A forged known-browser cookie is worth nothing.
    let forger = client_from(&app, "127.0.0.100");
    let url = reqwest::Url::parse(&app.base).unwrap();
    forger
        .jar
        .add_cookie_str("latchkey_browser=AAAAAAAAAAEAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", &url);
    assert!(forger.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
}

/// Administration needs a recent password, and one's own 2FA goes off only
/// through the normal disable flow (with a code).
#[tokio::test]
async fn admin_actions_need_a_recent_password_and_not_on_oneself() {
    let app = TestApp::spawn().await;
    app.create_user("root", true).await;
    let bob_id = app.create_user("bob", false).await;
    let root = enrol(&app, signed_in(&app, "root").await).await.client;
    let root_id = app.user("root").await.id;

    let p = root.get(&format!("/admin/users/{root_id}/reset-mfa")).await;
    assert!(p.redirects_to("/settings/account/mfa"));
    let p = root.post(&format!("/admin/users/{root_id}/reset-mfa"), &[]).await;
    assert!(p.redirects_to("/settings/account/mfa"));
    assert!(app.mfa_on("root").await);

    app.clock.advance(11 * 60);
    let p = root
        .post(&format!("/admin/users/{bob_id}/admin"), &[("admin", "1")])
        .await;
    assert!(
        p.redirects_to("/settings/account/sudo?next=%2Fadmin%2Fusers"),
        "{:?}",
        p.location
    );
    assert!(!app.user("bob").await.is_admin);
    let prompt = root.get("/settings/account/sudo?next=%2Fadmin%2Fusers").await;
    assert!(prompt.body.contains("id=\"sudo-submit\""));
    let wrong = root
        .post(
            "/settings/account/sudo",
            &[("password", "nope"), ("next", "/admin/users")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let ok = root
        .post(
            "/settings/account/sudo",
            &[("password", PASSWORD), ("next", "//evil.example")],
        )
        .await;
    assert!(ok.redirects_to("/"), "next stays on the site");
    let p = root
        .post(&format!("/admin/users/{bob_id}/admin"), &[("admin", "1")])
        .await;
    assert!(p.redirects_to("/admin/users"));
    assert!(app.user("bob").await.is_admin);
}

/// A double click on "Generate new recovery codes": the page never shows a
/// set that the other click's request then replaced.
#[tokio::test]
async fn a_stale_regeneration_changes_nothing() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    let tab = e.client.get("/settings/account/mfa").await;
    let generation = attr_after(&tab.body, "name=\"generation\" value=\"").unwrap();
    let first = e
        .client
        .post_follow("/settings/account/mfa/recovery-codes", &[("generation", &generation)])
        .await;
    let codes = list_items(&first.body, "recovery-codes");
    assert_eq!(codes.len(), 10);
    // The second click carries the same, now stale, generation.
    let second = e
        .client
        .post("/settings/account/mfa/recovery-codes", &[("generation", &generation)])
        .await;
    assert!(second.redirects_to("/settings/account/mfa"));
    assert!(list_items(&second.body, "recovery-codes").is_empty());
    // The codes the first click showed are the ones that work.
    let (_, p) = login_with_code(&app, "alice", &codes[0]).await;
    assert!(p.redirects_to("/"));
}

/// A password typed into the username field never reaches the security log.
#[tokio::test]
async fn unknown_usernames_are_masked_in_the_log() {
    let app = TestApp::spawn().await;
    let c = app.client();
    let _ = c.login("hunter2-my-secret-password", "x").await;
    let raw = String::from_utf8_lossy(&app.raw_contents()).to_string();
    assert!(!raw.contains("hunter2-my-secret-password"));
    assert!(raw.contains("hu…(26)"));
}
