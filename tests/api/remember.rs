//! "Remember this browser" (issue 16): the checkbox at the code prompt lets
//! a browser skip the second step for the days the policy allows, counted
//! from when it was remembered. Each rule over HTTP with the settable
//! clock; every revocation; copied, tampered and stale cookies; the lockout
//! lanes; other instances. The same in Chromium: `browser::journey`.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;
use crate::webauthn::soft::SoftKey;

const COOKIE: &str = "latchkey_remember";
const DAY: i64 = 86_400;

/// The value of cookie `name` in the client's jar.
fn cookie_value(c: &TestClient, name: &str) -> Option<String> {
    c.cookie_header()
        .split("; ")
        .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_string))
}

/// A fresh browser whose only cookie is a remember cookie with `value`
/// (optionally through a proxy from `address`).
fn browser_with_remember_cookie(app: &TestApp, value: &str, address: Option<&str>) -> TestClient {
    let c = match address {
        Some(a) => TestClient::forwarded_for(&app.base, a),
        None => app.client(),
    };
    let url = reqwest::Url::parse(&app.base).unwrap();
    c.jar.add_cookie_str(&format!("{COOKIE}={value}; Path=/"), &url);
    c
}

/// Password and a fresh code on `c`, ticking "Remember this browser" when
/// `remember`; returns the `Set-Cookie` header of the remember cookie.
async fn code_step(app: &TestApp, c: &TestClient, user: &str, secret: &str, remember: bool) -> Option<String> {
    app.clock.advance(30);
    let p = c.login(user, PASSWORD).await;
    assert!(p.redirects_to("/login/two-factor"), "{} {:?}", p.status, p.location);
    let code = oathtool(secret, app.clock.now());
    let token = c.csrf().await;
    let mut form = vec![("code", code.as_str()), ("csrf_token", token.as_str())];
    if remember {
        form.push(("remember_browser", "on"));
    }
    let resp = c
        .http
        .post(c.url("/login/two-factor"))
        .form(&form)
        .send()
        .await
        .unwrap();
    let set = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{COOKIE}=")));
    let p = TestClient::page(resp).await;
    assert!(p.redirects_to("/"), "{} {:?}", p.status, p.flash());
    set
}

/// `user` with 2FA on (`Enrolled`, still signed in), and a browser ticked
/// "Remember" on, signed out again.
async fn remembered(app: &TestApp, user: &str) -> (Enrolled, TestClient) {
    app.create_user(user, false).await;
    let e = enrol(app, signed_in(app, user).await).await;
    let c = app.client();
    assert!(code_step(app, &c, user, &e.secret, true).await.is_some());
    assert!(c.post("/logout", &[]).await.redirects_to("/login?signed_out=1"));
    (e, c)
}

/// Does the password alone sign `user` in on `c`? (Signs out again if so.)
async fn skips_with(c: &TestClient, user: &str, password: &str) -> bool {
    let p = c.login(user, password).await;
    if p.redirects_to("/") {
        assert!(c.post("/logout", &[]).await.redirects_to("/login?signed_out=1"));
        true
    } else {
        assert!(
            p.redirects_to("/login/two-factor"),
            "either signed in or asked for the code: {} {:?}",
            p.status,
            p.location
        );
        false
    }
}

async fn skips(c: &TestClient, user: &str) -> bool {
    skips_with(c, user, PASSWORD).await
}

async fn admin(app: &TestApp) -> TestClient {
    app.create_user("root", true).await;
    signed_in(app, "root").await
}

/// Rule 1: ticked, the browser skips the code for 30 days from when it was
/// remembered (using it does not extend that); the cookie says so.
#[tokio::test]
async fn a_remembered_browser_skips_the_code_for_30_days_from_when_it_was_remembered() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    // The prompt offers it.
    let c = app.client();
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    let prompt = c.get("/login/two-factor").await;
    let label = prompt
        .body
        .split("id=\"remember-browser\"")
        .nth(1)
        .expect("the checkbox");
    assert!(label.contains("Remember this browser for 30 days"), "{label}");
    assert!(prompt.body.contains("name=\"remember_browser\" value=\"on\""));
    // Ticked: the cookie, for exactly the 30 days.
    let set = code_step(&app, &c, "alice", &e.secret, true)
        .await
        .expect("a remember cookie");
    for attr in ["HttpOnly", "SameSite=Lax", "Path=/", &format!("Max-Age={}", 30 * DAY)] {
        assert!(set.contains(attr), "{attr}: {set}");
    }
    assert!(!set.contains("Secure"), "plain http: {set}");
    assert!(c.post("/logout", &[]).await.redirects_to("/login?signed_out=1"));
    // The password alone now signs in here — and the password is still asked.
    assert!(skips(&c, "alice").await);
    assert_eq!(
        c.login("alice", "wrong password").await.status,
        StatusCode::UNAUTHORIZED
    );
    // Day 29 (having been used on day 0): still skipped.
    app.clock.advance(29 * DAY);
    assert!(skips(&c, "alice").await);
    // Day 31: the code again, and the stale cookie is no error.
    app.clock.advance(2 * DAY);
    assert!(!skips(&c, "alice").await);
    // Another browser, or this one without ticking, is not remembered.
    let other = app.client();
    assert!(code_step(&app, &other, "alice", &e.secret, false).await.is_none());
    assert!(other.post("/logout", &[]).await.redirects_to("/login?signed_out=1"));
    assert!(!skips(&other, "alice").await);
    // The security log has it: remembered, and each use.
    let id = app.user("alice").await.id;
    let events = app.events(id).await;
    assert!(events.contains(&"browser_remembered".to_string()), "{events:?}");
    let log = app.auth.security_log(Some(id), None, 0, 100).await.unwrap().0;
    let uses = log
        .iter()
        .filter(|r| r.detail.as_deref().unwrap_or("").contains("remembered browser"))
        .count();
    assert_eq!(uses, 2, "two sign-ins skipped the second step");
}

/// Rule 5: administrators choose 0–90 days; a shorter setting applies at
/// once to browsers remembered before; 0 hides the checkbox and turns it off.
#[tokio::test]
async fn the_policy_sets_the_days_and_a_shorter_setting_applies_at_once() {
    let app = TestApp::spawn().await;
    let (e, c) = remembered(&app, "alice").await;
    app.clock.advance(10 * DAY);
    assert!(skips(&c, "alice").await, "day 10 of 30");
    let root = admin(&app).await;
    for bad in ["91", "-1", "seven", "", "1e3"] {
        let p = root
            .post("/admin/policy", &[("grace_days", "7"), ("remember_days", bad)])
            .await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(p.flash().unwrap().contains("0 to 90 days"), "{:?}", p.flash());
    }
    assert_eq!(app.auth.mfa_policy().await.unwrap().remember_days, 30, "unchanged");
    let p = root
        .post("/admin/policy", &[("grace_days", "7"), ("remember_days", "7")])
        .await;
    assert!(p.redirects_to("/admin/users"), "{} {:?}", p.status, p.flash());
    assert!(root.get("/admin/users").await.body.contains("value=\"7\""));
    // Remembered 10 days ago, and 7 are allowed now: the code again.
    assert!(!skips(&c, "alice").await);
    // Remembered now: for 7 days, and the cookie says so.
    let fresh = app.client();
    let set = code_step(&app, &fresh, "alice", &e.secret, true).await.unwrap();
    assert!(set.contains(&format!("Max-Age={}", 7 * DAY)), "{set}");
    assert!(fresh.post("/logout", &[]).await.redirects_to("/login?signed_out=1"));
    assert!(skips(&fresh, "alice").await);
    // 0: no checkbox, a ticked box sent anyway does nothing, nothing skips.
    let p = root
        .post("/admin/policy", &[("grace_days", "7"), ("remember_days", "0")])
        .await;
    assert!(p.redirects_to("/admin/users"), "{} {:?}", p.status, p.flash());
    assert!(!skips(&fresh, "alice").await);
    let prompt = fresh.get("/login/two-factor").await;
    assert!(!prompt.body.contains("remember-browser"), "no checkbox");
    let third = app.client();
    assert!(code_step(&app, &third, "alice", &e.secret, true).await.is_none());
    let id = app.user("alice").await.id;
    assert!(
        app.events(id)
            .await
            .iter()
            .filter(|k| *k == "browser_remembered")
            .count()
            == 2
    );
}

/// Rule 3: password change, Disable, removing the last factor, an admin's
/// reset and the admin's Forget each make the browser ask again — and a
/// later enrolment does not bring an old remembered browser back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_revocation_makes_the_browser_ask_again() {
    let app = TestApp::spawn().await;
    let root = admin(&app).await;

    // A password change.
    let (alice, c) = remembered(&app, "alice").await;
    let new = "a brand new passphrase";
    let p = alice
        .client
        .post(
            "/settings/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", new),
                ("new_password_confirm", new),
            ],
        )
        .await;
    assert!(p.redirects_to("/settings/account/password"), "{:?}", p.flash());
    assert!(!skips_with(&c, "alice", new).await);

    // Disable MFA, then turn it on again: the old browser still asks.
    let (bob, c) = remembered(&app, "bob").await;
    app.clock.advance(30);
    let code = oathtool(&bob.secret, app.clock.now());
    let p = bob
        .client
        .post("/settings/account/mfa/disable", &[("code", &code)])
        .await;
    assert!(p.redirects_to("/settings/account/mfa"), "{} {:?}", p.status, p.flash());
    assert!(skips(&c, "bob").await, "2FA is off: no second step at all");
    enrol(&app, signed_in(&app, "bob").await).await;
    assert!(!skips(&c, "bob").await, "a new enrolment: asked again");

    // Removing the last factor.
    let (carol, c) = remembered(&app, "carol").await;
    let id = app.user("carol").await.id;
    let totp = app
        .credentials(id)
        .await
        .into_iter()
        .find(|k| k.kind == "totp")
        .unwrap();
    let p = carol
        .client
        .post(&format!("/settings/account/mfa/factors/{}/remove", totp.id.0), &[])
        .await;
    assert!(p.redirects_to("/settings/account/mfa"), "{} {:?}", p.status, p.flash());
    assert!(!app.mfa_on("carol").await);
    enrol(&app, signed_in(&app, "carol").await).await;
    assert!(!skips(&c, "carol").await);

    // An administrator's reset.
    let (_dave, c) = remembered(&app, "dave").await;
    let dave = app.user("dave").await.id;
    let p = root.post(&format!("/admin/users/{}/reset-mfa", dave.0), &[]).await;
    assert!(p.redirects_to("/admin/users"));
    enrol(&app, signed_in(&app, "dave").await).await;
    assert!(!skips(&c, "dave").await);

    // The administrator's Forget, on the Users page.
    let (_erin, c) = remembered(&app, "erin").await;
    let erin = app.user("erin").await.id;
    let row = root.get("/admin/users").await.text_of("user-erin").unwrap();
    assert!(row.contains("Forget remembered browsers (1)"), "{row}");
    let p = root
        .post(&format!("/admin/users/{}/forget-browsers", erin.0), &[])
        .await;
    assert!(p.redirects_to("/admin/users"));
    assert!(root.get("/admin/users").await.flash().unwrap().contains("Forgot 1"));
    assert!(!skips(&c, "erin").await);

    // Each is in the user's log, naming who acted.
    for (user, reason) in [
        ("alice", "password changed"),
        ("bob", "two-factor authentication turned off"),
        ("carol", "two-factor authentication turned off"),
        ("dave", "two-factor authentication turned off, by root"),
        ("erin", "by root"),
    ] {
        let id = app.user(user).await.id;
        let log = app
            .auth
            .security_log(
                Some(id),
                Some(latchkey::db::events::Kind::RememberedBrowserForgotten),
                0,
                10,
            )
            .await
            .unwrap()
            .0;
        assert!(
            log.iter().any(|r| r.detail.as_deref().unwrap_or("").contains(reason)),
            "{user}: {log:?}"
        );
    }
}

/// Rule 2: the Sessions tab lists remembered browsers (this one marked)
/// with Forget and Forget all, as POST forms; nobody can forget another
/// user's browser.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_tab_lists_and_forgets_remembered_browsers() {
    let app = TestApp::spawn().await;
    let (alice, c) = remembered(&app, "alice").await;
    let d = app.client();
    assert!(code_step(&app, &d, "alice", &alice.secret, true).await.is_some());
    assert!(d.post("/logout", &[]).await.redirects_to("/login?signed_out=1"));
    // Signed in on c (skipping the code), the tab lists both, c marked.
    assert!(c.login("alice", PASSWORD).await.redirects_to("/"));
    let tab = c.get("/settings/account/sessions").await;
    let items = list_items(&tab.body, "remembered-browsers");
    assert_eq!(items.len(), 2, "{items:?}");
    assert_eq!(items.iter().filter(|i| i.contains("this browser")).count(), 1);
    assert!(items.iter().all(|i| i.contains("remembered") && i.contains("until")));
    assert_eq!(tab.body.matches("class=\"small forget-browser\"").count(), 2);
    assert!(tab.body.contains("id=\"forget-all-browsers\""));
    let ids = remembered_ids(&tab.body);
    assert_eq!(ids.len(), 2, "{ids:?}");
    let current_id = ids.iter().find(|(_, this)| *this).unwrap().0.clone();
    let other_id = ids.iter().find(|(_, this)| !*this).unwrap().0.clone();

    // Bob cannot forget Alice's browser.
    let (bob, _) = remembered(&app, "bob").await;
    app.clock.advance(30);
    let (bob, p) = login_with_code(&app, "bob", &oathtool(&bob.secret, app.clock.now())).await;
    assert!(p.redirects_to("/"));
    let p = bob
        .post(&format!("/settings/account/remembered/{other_id}/forget"), &[])
        .await;
    assert!(p.redirects_to("/settings/account/sessions"));
    assert!(
        bob.get("/settings/account/sessions")
            .await
            .flash()
            .unwrap()
            .contains("not remembered")
    );
    assert!(skips(&d, "alice").await, "still remembered");

    // Forget this browser: its cookie goes too, and it asks again.
    let token = c.csrf().await;
    let resp = c
        .http
        .post(c.url(&format!("/settings/account/remembered/{current_id}/forget")))
        .form(&[("csrf_token", token.as_str())])
        .send()
        .await
        .unwrap();
    let removal = resp
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .find(|v| v.starts_with(&format!("{COOKIE}=")))
        .expect("the cookie is removed");
    assert!(removal.contains("Max-Age=0"), "{removal}");
    assert!(TestClient::page(resp).await.redirects_to("/settings/account/sessions"));
    let tab = c.get("/settings/account/sessions").await;
    assert_eq!(list_items(&tab.body, "remembered-browsers").len(), 1);
    assert!(c.post("/logout", &[]).await.redirects_to("/login?signed_out=1"));
    assert!(!skips(&c, "alice").await);
    assert!(skips(&d, "alice").await, "the other one is still remembered");

    // Forget all, from a third browser.
    let (third, _) = login_with_code(&app, "alice", &{
        app.clock.advance(30);
        oathtool(&alice.secret, app.clock.now())
    })
    .await;
    let p = third.post("/settings/account/remembered/forget", &[]).await;
    assert!(p.redirects_to("/settings/account/sessions"));
    let tab = third.get("/settings/account/sessions").await;
    assert!(
        tab.flash().unwrap().contains("Forgot 1 remembered browser"),
        "{:?}",
        tab.flash()
    );
    assert!(tab.body.contains("id=\"no-remembered-browsers\""));
    assert!(!skips(&d, "alice").await);
    let id = app.user("alice").await.id;
    assert_eq!(
        app.events(id)
            .await
            .iter()
            .filter(|k| *k == "remembered_browser_forgotten")
            .count(),
        2
    );
}

/// The remembered browsers listed on a Sessions tab: (id, is this browser).
fn remembered_ids(html: &str) -> Vec<(String, bool)> {
    let list = html
        .split("id=\"remembered-browsers\"")
        .nth(1)
        .and_then(|rest| rest.split("</ul>").next())
        .unwrap_or("");
    list.split("<li data-browser-id=\"")
        .skip(1)
        .map(|li| {
            let id = li.split('"').next().unwrap().to_string();
            (id, li.contains("this browser"))
        })
        .collect()
}

/// Rules: a remember cookie copied to another account, tampered with, or
/// nonsense is ignored — the code prompt, never an error.
#[tokio::test]
async fn a_copied_tampered_or_nonsense_cookie_is_ignored() {
    let app = TestApp::spawn().await;
    let (_alice, c) = remembered(&app, "alice").await;
    let (_bob, _) = remembered(&app, "bob").await;
    let value = cookie_value(&c, COOKIE).expect("alice's remember cookie");
    // On its own, in a new browser, it is Alice's remembered browser.
    assert!(skips(&browser_with_remember_cookie(&app, &value, None), "alice").await);
    // Copied to Bob's sign-in.
    assert!(!skips(&browser_with_remember_cookie(&app, &value, None), "bob").await);
    // Tampered with.
    let mut tampered = value.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(!skips(&browser_with_remember_cookie(&app, &tampered, None), "alice").await);
    // Nonsense of every shape.
    for junk in ["", "x", &"A".repeat(4000), "%00%FF", "..%2F..", "\u{1F600}"] {
        let c = browser_with_remember_cookie(&app, junk, None);
        let p = c.login("alice", PASSWORD).await;
        assert!(p.redirects_to("/login/two-factor"), "{junk:?}: {}", p.status);
    }
    // Only its keyed hash is stored.
    let id = app.user("alice").await.id;
    let stored = app
        .db
        .read(move |c| latchkey::db::browsers::list(c, id, latchkey::core::types::UnixTime(0)))
        .await
        .unwrap();
    let hashes: Vec<_> = stored.iter().filter_map(|b| b.remember_hash.clone()).collect();
    assert_eq!(hashes.len(), 1);
    assert_ne!(hashes[0], value);
    assert!(!app.raw_contents().windows(value.len()).any(|w| w == value.as_bytes()));
}

/// Rule: a remembered browser is a known browser for the lockout rules —
/// with only its remember cookie, it signs in while the account is under
/// attack from everywhere else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remembered_browser_is_a_known_browser_for_the_lockout() {
    let app = TestApp::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    let home = TestClient::forwarded_for(&app.base, "192.0.2.10");
    assert!(code_step(&app, &home, "alice", &e.secret, true).await.is_some());
    let value = cookie_value(&home, COOKIE).unwrap();
    // Sixty guesses from sixty addresses: new browsers now get the
    // protected prompt…
    for n in 0..60 {
        let c = TestClient::forwarded_for(&app.base, &format!("10.9.{}.{}", n / 200, n % 200 + 1));
        let _ = c.login("alice", "guess").await;
    }
    app.clock.advance(31);
    let stranger = TestClient::forwarded_for(&app.base, "192.0.2.10");
    assert!(
        stranger
            .login("alice", PASSWORD)
            .await
            .redirects_to("/login/two-factor")
    );
    assert!(
        stranger
            .get("/login/two-factor")
            .await
            .text_of("protected-sign-in")
            .is_some()
    );
    // …while the remembered browser, even without its known-browser
    // cookie and from a new address, signs in with the password alone.
    let laptop = browser_with_remember_cookie(&app, &value, Some("198.51.100.99"));
    assert!(skips(&laptop, "alice").await);
}

/// Rule 4: remembering never skips sudo — past ten minutes, sensitive
/// actions ask for the password again.
#[tokio::test]
async fn sudo_is_never_skipped() {
    let app = TestApp::spawn().await;
    let (_alice, c) = remembered(&app, "alice").await;
    assert!(c.login("alice", PASSWORD).await.redirects_to("/"));
    app.clock.advance(11 * 60);
    let p = c.get("/settings/account/mfa/disable").await;
    assert!(p.body.contains("Confirm your password") && !p.body.contains("mfa-disable-confirm"));
}

/// Rule: everything is in the database — remembered on one instance, the
/// browser skips the code on another; forgotten on that one, it asks on
/// the first.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn remembered_browsers_work_across_instances() {
    let app = TestApp::spawn().await;
    let b = app.another_instance().await;
    let (alice, c) = remembered(&app, "alice").await;
    assert!(skips(&c.on(&b), "alice").await);
    let (other, _) = login_with_code(&app, "alice", &{
        app.clock.advance(30);
        oathtool(&alice.secret, app.clock.now())
    })
    .await;
    let p = other.on(&b).post("/settings/account/remembered/forget", &[]).await;
    assert!(p.redirects_to("/settings/account/sessions"));
    assert!(!skips(&c, "alice").await);
}

/// Rule 1 with a security key: the box ticked at the prompt goes along
/// with the key's answer.
#[tokio::test]
async fn a_key_at_the_second_step_remembers_the_browser_too() {
    let app = TestApp::spawn_with_keys().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let mut key = SoftKey::new(1, &app.base);
    let (status, _) = crate::webauthn::add_key(&c, &mut key, "Desk key").await;
    assert_eq!(status, StatusCode::OK);
    let c = app.client();
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    let (_, start) = c.post_json("/login/two-factor/webauthn/start", &json!({})).await;
    let answer = key.assert(&start["options"]);
    let (status, done) = c
        .post_json(
            "/login/two-factor/webauthn/finish",
            &json!({ "ceremony": start["ceremony"], "credential": answer, "remember": true }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert!(cookie_value(&c, COOKIE).is_some());
    assert!(c.post("/logout", &[]).await.redirects_to("/login?signed_out=1"));
    assert!(skips(&c, "alice").await);
}
