//! Security keys and passkeys over HTTP, with a software authenticator
//! (`soft`): the ceremonies' rules (single use, five minutes, bound to the
//! session that asked, the right origin and user, counters that move
//! forward), and the journeys. The same in real Chromium with a virtual
//! authenticator: `browser::webauthn`.

pub mod soft;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use soft::SoftKey;

const ADD: &str = "/settings/account/mfa/webauthn/add";
const REG_START: &str = "/settings/account/mfa/webauthn/register/start";
const REG_FINISH: &str = "/settings/account/mfa/webauthn/register/finish";

/// Register `key` as `name` for the signed-in client (sudo fresh). Returns
/// the finish answer.
pub async fn add_key(c: &TestClient, key: &mut SoftKey, name: &str) -> (StatusCode, Value) {
    let page = c.post(ADD, &[("name", name)]).await;
    assert_eq!(page.status, StatusCode::OK, "the add page: {:?}", page.flash());
    let (status, start) = c.post_json(REG_START, &json!({ "name": name })).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let credential = key.register(&start["options"]);
    c.post_json(
        REG_FINISH,
        &json!({ "ceremony": start["ceremony"], "credential": credential }),
    )
    .await
}

/// Password, then the key, on a fresh client.
pub async fn sign_in_with_key(app: &TestApp, user: &str, key: &mut SoftKey) -> (TestClient, StatusCode, Value) {
    let c = app.client();
    assert!(c.login(user, PASSWORD).await.redirects_to("/login/two-factor"));
    let (status, start) = c.post_json("/login/two-factor/webauthn/start", &json!({})).await;
    assert_eq!(status, StatusCode::OK, "{start}");
    let answer = key.assert(&start["options"]);
    let (status, done) = c
        .post_json(
            "/login/two-factor/webauthn/finish",
            &json!({ "ceremony": start["ceremony"], "credential": answer }),
        )
        .await;
    (c, status, done)
}

#[tokio::test]
async fn keys_need_a_public_url_with_a_domain_name() {
    let app = TestApp::spawn().await; // no public URL
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let tab = c.get("/settings/account/mfa").await;
    assert!(
        !tab.body.contains("id=\"webauthn-add\""),
        "no key button without a domain"
    );
    assert!(!c.get("/login").await.body.contains("login-passkey"));
    let (status, body) = c.post_json(REG_START, &json!({ "name": "x" })).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
}

#[tokio::test]
async fn add_a_key_then_sign_in_with_it() {
    let app = TestApp::spawn_with_keys().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let tab = c.get("/settings/account/mfa").await;
    assert!(tab.body.contains("id=\"webauthn-add\"") && tab.body.contains("id=\"webauthn-name\""));
    let mut key = SoftKey::new(1, &app.base);
    key.be = true;
    let (status, done) = add_key(&c, &mut key, "YubiKey").await;
    assert_eq!(status, StatusCode::OK, "{done}");
    // The first factor turns 2FA on and shows the recovery codes, once.
    assert_eq!(done["redirect"], "/settings/account/mfa/recovery-codes/new");
    let shown = c.get("/settings/account/mfa/recovery-codes/new").await;
    assert_eq!(list_items(&shown.body, "recovery-codes").len(), 10);
    let again = c.get("/settings/account/mfa/recovery-codes/new").await;
    assert!(again.redirects_to("/settings/account/mfa"), "shown once");
    assert!(
        c.post("/settings/account/mfa/recovery-codes/copied", &[])
            .await
            .redirects_to("/settings/account/mfa")
    );
    // Listed with its name, when it was added, and synced.
    let tab = c.get("/settings/account/mfa").await;
    assert_eq!(tab.text_of("mfa-status").unwrap(), "Enabled");
    let items = list_items(&tab.body, "webauthn-list");
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(items[0].contains("YubiKey") && items[0].contains("synced") && items[0].contains("not used yet"));
    assert!(tab.body.contains("data-credential-id=\""));
    assert!(tab.body.contains("webauthn-rename") && tab.body.contains("webauthn-remove"));
    // Keys only: the prompt offers the key first.
    c.post("/logout", &[]).await;
    let p = app.client();
    assert!(p.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    let prompt = p.get("/login/two-factor").await;
    assert!(prompt.body.contains("id=\"two-factor-webauthn\"") && prompt.body.contains("data-auto=\"1\""));
    let (s, status, done) = sign_in_with_key(&app, "alice", &mut key).await;
    assert_eq!(
        (status, done["redirect"].as_str()),
        (StatusCode::OK, Some("/")),
        "{done}"
    );
    assert_eq!(s.get("/").await.status, StatusCode::OK, "signed in");
    let uid = app.user("alice").await.id;
    let events = app.events(uid).await;
    assert!(events.contains(&"factor_added".to_string()) && events.contains(&"mfa_enabled".to_string()));
    let tab = s.get("/settings/account/mfa").await;
    assert!(list_items(&tab.body, "webauthn-list")[0].contains("last used"));
}

#[tokio::test]
async fn a_second_key_keeps_the_codes_and_removing_the_last_turns_2fa_off() {
    let app = TestApp::spawn_with_keys().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let mut one = SoftKey::new(1, &app.base);
    let mut two = SoftKey::new(2, &app.base);
    assert_eq!(add_key(&c, &mut one, "One").await.0, StatusCode::OK);
    let (status, done) = add_key(&c, &mut two, "Two").await;
    assert_eq!(
        (status, done["redirect"].as_str()),
        (StatusCode::OK, Some("/settings/account/mfa"))
    );
    // The same key twice: refused (the browser excludes it too).
    let (status, _) = add_key(&c, &mut one, "One again").await;
    assert_eq!(status, StatusCode::CONFLICT);
    let uid = app.user("alice").await.id;
    let ids: Vec<i64> = app
        .credentials(uid)
        .await
        .iter()
        .filter(|k| k.kind == "webauthn")
        .map(|k| k.id.0)
        .collect();
    assert_eq!(ids.len(), 2);
    // Rename.
    let p = c
        .post(
            &format!("/settings/account/mfa/factors/{}/rename", ids[1]),
            &[("name", "Backup key")],
        )
        .await;
    assert!(p.redirects_to("/settings/account/mfa"));
    assert!(
        c.get("/settings/account/mfa")
            .await
            .text_of("webauthn-list")
            .unwrap()
            .contains("Backup key")
    );
    // Remove one: 2FA stays on with the same codes.
    let left = app.credentials(uid).await.len();
    c.post(&format!("/settings/account/mfa/factors/{}/remove", ids[0]), &[])
        .await;
    assert_eq!(app.credentials(uid).await.len(), left - 1);
    assert!(app.mfa_on("alice").await);
    assert_eq!(app.count("recovery_codes").await, 10);
    // Remove the last: 2FA off, codes gone.
    let p = c
        .post(&format!("/settings/account/mfa/factors/{}/remove", ids[1]), &[])
        .await;
    assert!(p.redirects_to("/settings/account/mfa"));
    assert!(!app.mfa_on("alice").await);
    assert_eq!(app.count("recovery_codes").await, 0);
    // Someone else's factor id: nothing happens.
    app.create_user("bob", false).await;
    let b = signed_in(&app, "bob").await;
    let mut bobs = SoftKey::new(3, &app.base);
    add_key(&b, &mut bobs, "Bob's").await;
    let bob_key = app.credentials(app.user("bob").await.id).await[0].id.0;
    let c2 = signed_in(&app, "alice").await;
    c2.post(&format!("/settings/account/mfa/factors/{bob_key}/remove"), &[])
        .await;
    c2.post(
        &format!("/settings/account/mfa/factors/{bob_key}/rename"),
        &[("name", "mine")],
    )
    .await;
    let bobs_row = &app.credentials(app.user("bob").await.id).await[0];
    assert_eq!(bobs_row.name, "Bob's");
}

#[tokio::test]
async fn ceremonies_are_single_use_short_lived_and_bound_to_their_session() {
    let app = TestApp::spawn_with_keys().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    c.post(ADD, &[("name", "k")]).await;
    let mut key = SoftKey::new(1, &app.base);
    // Another session of the same user cannot finish this one's ceremony.
    let (_, start) = c.post_json(REG_START, &json!({ "name": "k" })).await;
    let other = signed_in(&app, "alice").await;
    let credential = key.register(&start["options"]);
    let body = json!({ "ceremony": start["ceremony"], "credential": credential });
    let (status, _) = other.post_json(REG_FINISH, &body).await;
    assert_eq!(status, StatusCode::GONE, "not the session that asked");
    // Five minutes and one second later: expired.
    let (_, start) = c.post_json(REG_START, &json!({ "name": "k" })).await;
    app.clock.advance(301);
    let credential = key.register(&start["options"]);
    let (status, _) = c
        .post_json(
            REG_FINISH,
            &json!({ "ceremony": start["ceremony"], "credential": credential }),
        )
        .await;
    // (The password is stale by now too: sudo asks first.)
    assert!(matches!(status, StatusCode::GONE | StatusCode::FORBIDDEN), "{status}");
    app.clock.advance(-301);
    // Another origin: refused, nothing stored.
    let (_, start) = c.post_json(REG_START, &json!({ "name": "k" })).await;
    let mut phished = SoftKey::new(1, "http://localhost:1");
    let credential = phished.register(&start["options"]);
    let (status, _) = c
        .post_json(
            REG_FINISH,
            &json!({ "ceremony": start["ceremony"], "credential": credential }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "wrong origin");
    assert!(app.credentials(app.user("alice").await.id).await.is_empty());
    // Once right, and once only.
    let (_, start) = c.post_json(REG_START, &json!({ "name": "k" })).await;
    let credential = key.register(&start["options"]);
    let body = json!({ "ceremony": start["ceremony"], "credential": credential });
    assert_eq!(c.post_json(REG_FINISH, &body).await.0, StatusCode::OK);
    assert_eq!(c.post_json(REG_FINISH, &body).await.0, StatusCode::GONE, "single use");
    // Bad requests: clear 4xx, nothing stored.
    let before = app.credentials(app.user("alice").await.id).await.len();
    assert_eq!(
        c.post_json(REG_FINISH, &json!({ "ceremony": 1 })).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        c.post_json(REG_FINISH, &json!({ "ceremony": "x", "credential": {}, "extra": 1 }))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
    let huge = json!({ "name": "x".repeat(100_000) });
    assert_eq!(c.post_json(REG_START, &huge).await.0, StatusCode::PAYLOAD_TOO_LARGE);
    let no_token = c
        .http
        .post(c.url(REG_START))
        .header("content-type", "application/json")
        .body(r#"{"name":"k"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN, "CSRF header required");
    let as_form = c.post(REG_START, &[("name", "k")]).await;
    assert_eq!(as_form.status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(app.credentials(app.user("alice").await.id).await.len(), before);
}

#[tokio::test]
async fn another_users_key_and_a_cloned_key_are_refused() {
    let app = TestApp::spawn_with_keys().await;
    app.create_user("alice", false).await;
    app.create_user("bob", false).await;
    let mut alices = SoftKey::new(1, &app.base);
    let mut bobs = SoftKey::new(2, &app.base);
    add_key(&signed_in(&app, "alice").await, &mut alices, "A").await;
    add_key(&signed_in(&app, "bob").await, &mut bobs, "B").await;
    // Bob's key at Alice's second step.
    let (_, status, _) = sign_in_with_key(&app, "alice", &mut bobs).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Alice's key works, several times; the counter moves on.
    for _ in 0..3 {
        let (_, status, done) = sign_in_with_key(&app, "alice", &mut alices).await;
        assert_eq!(status, StatusCode::OK, "{done}");
    }
    // A clone of it replays an old counter: refused and logged.
    alices.counter = 1;
    let (_, status, done) = sign_in_with_key(&app, "alice", &mut alices).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{done}");
    assert!(done["error"].as_str().unwrap().contains("counter"));
    let uid = app.user("alice").await.id;
    assert!(app.events(uid).await.contains(&"key_refused".to_string()));
}

#[tokio::test]
async fn a_passkey_alone_signs_in_with_user_verification_and_opens_sudo() {
    let app = TestApp::spawn_with_keys().await;
    app.create_user("alice", false).await;
    let mut key = SoftKey::new(1, &app.base);
    add_key(&signed_in(&app, "alice").await, &mut key, "Passkey").await;
    app.clock.advance(3600);
    let c = app.client();
    let login = c.get("/login").await;
    assert!(login.body.contains("id=\"login-passkey\"") && login.body.contains("username webauthn"));
    let (status, start) = c.post_json("/login/passkey/start", &json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        start["options"]["publicKey"]["allowCredentials"]
            .as_array()
            .is_none_or(|a| a.is_empty())
    );
    let answer = key.assert(&start["options"]);
    let (status, done) = c
        .post_json(
            "/login/passkey/finish",
            &json!({ "ceremony": start["ceremony"], "credential": answer }),
        )
        .await;
    assert_eq!(
        (status, done["redirect"].as_str()),
        (StatusCode::OK, Some("/")),
        "{done}"
    );
    assert_eq!(c.get("/").await.status, StatusCode::OK, "signed in fully");
    // The sudo window is open, as after a password.
    let p = c.post_follow("/settings/account/mfa/recovery-codes", &[]).await;
    assert_eq!(p.status, StatusCode::OK, "no password prompt");
    assert_eq!(list_items(&p.body, "recovery-codes").len(), 10);
    // A key without user verification (no PIN) cannot sign in alone…
    app.create_user("bob", false).await;
    let mut plain = SoftKey::new(2, &app.base);
    plain.uv = false;
    add_key(&signed_in(&app, "bob").await, &mut plain, "Plain key").await;
    let c = app.client();
    let (_, start) = c.post_json("/login/passkey/start", &json!({})).await;
    let answer = plain.assert(&start["options"]);
    let (status, done) = c
        .post_json(
            "/login/passkey/finish",
            &json!({ "ceremony": start["ceremony"], "credential": answer }),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{done}");
    assert!(done["error"].as_str().unwrap().contains("password"));
    assert_eq!(c.get("/").await.status, StatusCode::SEE_OTHER);
    // …but it is a second factor after the password.
    let (_, status, done) = sign_in_with_key(&app, "bob", &mut plain).await;
    assert_eq!(status, StatusCode::OK, "{done}");
}

#[tokio::test]
async fn sudo_and_disable_with_a_key() {
    let app = TestApp::spawn_with_keys().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let mut key = SoftKey::new(1, &app.base);
    add_key(&c, &mut key, "K").await;
    app.clock.advance(11 * 60);
    // Sudo: the prompt offers the key; the key opens the window.
    let prompt = c.post("/settings/account/mfa/recovery-codes", &[]).await;
    assert!(prompt.body.contains("id=\"sudo-webauthn\""), "{}", prompt.status);
    let (_, start) = c
        .post_json("/settings/account/webauthn/confirm/start", &json!({}))
        .await;
    let answer = key.assert(&start["options"]);
    let (status, _) = c
        .post_json(
            "/settings/account/webauthn/confirm/finish",
            &json!({ "ceremony": start["ceremony"], "credential": answer }),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let codes = c.post_follow("/settings/account/mfa/recovery-codes", &[]).await;
    assert_eq!(list_items(&codes.body, "recovery-codes").len(), 10, "no prompt now");
    // Disable MFA, confirmed with the key: every factor goes.
    let page = c.get("/settings/account/mfa/disable").await;
    assert!(page.body.contains("id=\"mfa-disable-webauthn\""));
    let (_, start) = c
        .post_json("/settings/account/webauthn/confirm/start", &json!({}))
        .await;
    let answer = key.assert(&start["options"]);
    let (status, done) = c
        .post_json(
            "/settings/account/mfa/disable/webauthn/finish",
            &json!({ "ceremony": start["ceremony"], "credential": answer }),
        )
        .await;
    assert_eq!(
        (status, done["redirect"].as_str()),
        (StatusCode::OK, Some("/settings/account/mfa"))
    );
    assert!(!app.mfa_on("alice").await);
    assert!(app.credentials(app.user("alice").await.id).await.is_empty());
}

#[tokio::test]
async fn keys_only_2fa_still_signs_in_with_a_recovery_code_and_a_reset_removes_keys() {
    let app = TestApp::spawn_with_keys().await;
    app.create_user("root", true).await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let mut key = SoftKey::new(1, &app.base);
    add_key(&c, &mut key, "K").await;
    let codes = list_items(
        &c.get("/settings/account/mfa/recovery-codes/new").await.body,
        "recovery-codes",
    );
    assert_eq!(codes.len(), 10);
    // Lost the key: a recovery code signs in.
    let (_, p) = login_with_code(&app, "alice", &codes[0]).await;
    assert!(p.redirects_to("/"), "{:?}", p.flash());
    // The Users page shows the factors; a reset removes the key too.
    let root = signed_in(&app, "root").await;
    assert!(
        root.get("/admin/users")
            .await
            .text_of("user-alice")
            .unwrap()
            .contains("1 security key")
    );
    let uid = app.user("alice").await.id;
    assert!(
        root.post(&format!("/admin/users/{uid}/reset-mfa"), &[])
            .await
            .redirects_to("/admin/users")
    );
    assert!(app.credentials(uid).await.is_empty());
}

/// A ceremony begun on one instance finishes on another (each instance
/// keeps nothing of it in memory).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_ceremony_started_on_one_instance_finishes_on_another() {
    let app = TestApp::spawn_with_keys().await;
    let b = app.another_instance().await;
    app.create_user("alice", false).await;
    let on_a = signed_in(&app, "alice").await;
    let on_b = on_a.on(&b);
    on_a.post(ADD, &[("name", "K")]).await;
    let mut key = SoftKey::new(1, &app.base);
    let (_, start) = on_a.post_json(REG_START, &json!({ "name": "K" })).await;
    let credential = key.register(&start["options"]);
    let (status, _) = on_b
        .post_json(
            REG_FINISH,
            &json!({ "ceremony": start["ceremony"], "credential": credential }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "registered through B");
    // The second step: started on B, finished on A.
    let c = app.client();
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    let cb = c.on(&b);
    let (_, start) = cb.post_json("/login/two-factor/webauthn/start", &json!({})).await;
    let answer = key.assert(&start["options"]);
    let (status, done) = c
        .post_json(
            "/login/two-factor/webauthn/finish",
            &json!({ "ceremony": start["ceremony"], "credential": answer }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
}

/// The 2FA policy may require phishing-resistant factors: an authenticator
/// app alone is then not enough past the grace period.
#[tokio::test]
async fn the_policy_can_require_keys() {
    let app = TestApp::spawn_with_keys().await;
    app.create_user("root", true).await;
    app.create_user("alice", false).await;
    let root = signed_in(&app, "root").await;
    let p = root
        .post(
            "/admin/policy",
            &[("required", "1"), ("grace_days", "0"), ("keys_only", "1")],
        )
        .await;
    assert!(p.redirects_to("/admin/users"));
    let alice = enrol(&app, signed_in(&app, "alice").await).await;
    let p = alice.client.get("/").await;
    assert!(
        p.redirects_to("/settings/account/mfa"),
        "an app is not enough: {:?}",
        p.location
    );
    let mut key = SoftKey::new(1, &app.base);
    assert_eq!(add_key(&alice.client, &mut key, "K").await.0, StatusCode::OK);
    assert_eq!(alice.client.get("/").await.status, StatusCode::OK, "a key is");
}
