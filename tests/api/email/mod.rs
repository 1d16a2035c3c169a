//! Security emails (issue 17), through a real SMTP server (`sink`): every
//! event's message with its subject, both bodies and a working link; the
//! address and its verification; "This wasn't me"; and delivery that loses
//! nothing — SMTP down, a 4xx, a 5xx, a claim whose sender died, kill -9,
//! two instances.

pub mod cli;
pub mod sink;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::*;
use crate::webauthn::soft::SoftKey;
use latchkey::auth::Actor;
use sink::{Received, Sink};

/// The tests' `--issuer`.
const ISSUER: &str = "Latchkey Test";

fn address(user: &str) -> String {
    format!("{user}@example.com")
}

/// `user` with a verified address (set as an administrator would).
async fn with_address(app: &TestApp, user: &str) {
    if app
        .db
        .run({
            let name = user.to_string();
            move |c| latchkey::db::users::find_by_name(c, &name)
        })
        .await
        .unwrap()
        .is_none()
    {
        app.create_user(user, false).await;
    }
    let u = app.user(user).await;
    let done = app
        .auth
        .set_email_as_admin(&u, &address(user), Actor::CommandLine)
        .await
        .unwrap();
    assert_eq!(done, latchkey::auth::email::EmailChange::Verified);
}

/// Wait until the worker has dealt with every message in the outbox.
async fn settled(app: &TestApp) -> Vec<latchkey::db::outbox::Message> {
    for _ in 0..600 {
        let all = app.auth.recent_mail(10_000).await.unwrap();
        if all.iter().all(|m| m.sent_at.is_some() || m.failed_at.is_some()) {
            return all;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "the outbox never settled: {:#?}",
        app.auth.recent_mail(50).await.unwrap()
    );
}

/// What every notification has: the headers, both bodies, the facts, a
/// "This wasn't me" link — and nothing secret.
fn check_notification(m: &Received, to: &str, base: &str) {
    assert_eq!(m.to, to);
    assert_eq!(m.envelope_to, to);
    assert!(m.from.contains("latchkey@localhost"), "{}", m.from);
    assert!(
        m.message_id.starts_with('<') && m.message_id.ends_with("@localhost>"),
        "{}",
        m.message_id
    );
    assert!(!m.date.is_empty());
    assert_eq!(m.auto_submitted, "auto-generated");
    for body in [&m.text, &m.html] {
        assert!(body.contains(ISSUER), "names the product");
        assert!(body.contains("When"), "says when");
        assert!(body.contains(&format!("{base}/settings/account")), "where to look");
    }
    let link = m.link("not-me").expect("a “This wasn’t me” link");
    assert!(m.text.contains(&format!("{base}{link}")));
    assert!(m.html.contains("This wasn’t me"));
    assert!(
        m.html.starts_with("<!doctype html>"),
        "{}",
        &m.html[..40.min(m.html.len())]
    );
}

/// Every event of issue 17's list sends its message, with SPEC §8's
/// subject; an unverified address gets only its verification; the
/// new-browser emails can be turned off.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_event_sends_its_message() {
    let mut sink = Sink::start();
    let app = TestApp::spawn_with_mail(&sink.url()).await;
    let base = app.base.clone();
    app.create_user("root", true).await;
    app.create_user("alice", false).await;
    let to = address("alice");

    // The Profile tab: an address, verified by its link.
    let alice = signed_in(&app, "alice").await;
    let profile = alice.get("/settings/account").await;
    assert!(profile.body.contains("id=\"profile-email\""));
    assert!(profile.body.contains("id=\"notify-new-browser\""));
    let p = alice.post("/settings/account/email", &[("email", &to)]).await;
    assert!(p.redirects_to("/settings/account"), "{} {:?}", p.status, p.flash());
    assert_eq!(
        alice.get("/settings/account").await.text_of("email-status").unwrap(),
        "Not verified"
    );
    // Unverified: 2FA going on sends nothing but the verification.
    let e = enrol(&app, alice).await;
    let verify = sink.wait_for_subject(&to, "Verify your email address").await;
    assert!(verify.link("not-me").is_none(), "no “This wasn’t me” in a verification");
    settled(&app).await;
    assert_eq!(sink.to(&to).len(), 1, "only the verification");
    let link = verify.link("verify").unwrap();
    let page = TestClient::new(&base).get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"email-verify-confirm\""));
    let done = e.client.post(&link, &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.flash());
    assert_eq!(
        e.client.get("/settings/account").await.text_of("email-status").unwrap(),
        "Verified"
    );

    let mut seen: Vec<String> = vec![];
    let mut got = |m: Received| {
        check_notification(&m, &to, &base);
        seen.push(m.subject.clone());
        m
    };

    // A sign-in from a new browser (then that browser is known).
    let laptop = app.client();
    app.clock.advance(30);
    let code = oathtool(&e.secret, app.clock.now());
    assert!(laptop.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    assert!(
        laptop
            .post("/login/two-factor", &[("code", &code)])
            .await
            .redirects_to("/")
    );
    let m = got(sink
        .wait_for_subject(&to, &format!("New sign-in to your {ISSUER} account from a new browser"))
        .await);
    assert!(m.text.contains("127.0.0.1"), "where from");
    assert!(laptop.post("/logout", &[]).await.redirects_to("/login?signed_out=1"));

    // A recovery code at sign-in, on the known laptop: how many are left.
    assert!(laptop.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    assert!(
        laptop
            .post("/login/two-factor", &[("code", &e.codes[0])])
            .await
            .redirects_to("/")
    );
    let m = got(sink.wait_for_subject(&to, "A recovery code was used to sign in").await);
    assert!(m.text.contains("Recovery codes left: 9"), "{}", m.text);
    for code in &e.codes {
        assert!(!m.raw.contains(code.as_str()), "never a code");
    }
    assert!(!m.raw.contains(&e.secret), "never the secret");

    // New recovery codes.
    let p = laptop.post("/settings/account/mfa/recovery-codes", &[]).await;
    assert!(p.status.is_redirection() || p.status == StatusCode::OK, "{}", p.status);
    got(sink.wait_for_subject(&to, "New recovery codes were generated").await);

    // A second sign-in method added, then removed.
    let mut key = SoftKey::new(1, &base);
    let (status, _) = crate::webauthn::add_key(&laptop, &mut key, "Desk key").await;
    assert_eq!(status, StatusCode::OK);
    let m = got(sink
        .wait_for_subject(&to, "A sign-in method was added to your account")
        .await);
    assert!(m.text.contains("Desk key"), "{}", m.text);
    let id = app.user("alice").await.id;
    let k = app
        .credentials(id)
        .await
        .into_iter()
        .find(|c| c.kind == "webauthn")
        .unwrap();
    let p = laptop
        .post(&format!("/settings/account/mfa/factors/{}/remove", k.id.0), &[])
        .await;
    assert!(p.redirects_to("/settings/account/mfa"));
    got(sink
        .wait_for_subject(&to, "A sign-in method was removed from your account")
        .await);

    // The password right, the code never entered: after five minutes.
    let stranger = app.client();
    assert!(
        stranger
            .login("alice", PASSWORD)
            .await
            .redirects_to("/login/two-factor")
    );
    app.clock.advance(5 * 60 + 1);
    got(sink
        .wait_for_subject(
            &to,
            "Sign-in not completed: your password was used, but the second step was not completed",
        )
        .await);

    // A lockout (wrong passwords from a new browser), then an
    // administrator's unlock.
    let guesser = app.client();
    for _ in 0..8 {
        let _ = guesser.login("alice", "not the password").await;
    }
    got(sink
        .wait_for_subject(&to, "Your account was locked after failed sign-in attempts")
        .await);
    let root = signed_in(&app, "root").await;
    let p = root.post(&format!("/admin/users/{}/unlock", id.0), &[]).await;
    assert!(p.redirects_to("/admin/users"), "{} {:?}", p.status, p.flash());
    got(sink
        .wait_for_subject(&to, "An administrator unlocked your account")
        .await);

    // The password changed.
    let (c, p) = login_with_code(&app, "alice", &{
        app.clock.advance(30);
        oathtool(&e.secret, app.clock.now())
    })
    .await;
    assert!(p.redirects_to("/"));
    let new = "another long passphrase";
    let p = c
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
    got(sink.wait_for_subject(&to, "Your password was changed").await);

    // 2FA off (Disable MFA), on again, and reset by an administrator.
    app.clock.advance(30);
    let code = oathtool(&e.secret, app.clock.now());
    let p = c.post("/settings/account/mfa/disable", &[("code", &code)]).await;
    assert!(p.redirects_to("/settings/account/mfa"), "{} {:?}", p.status, p.flash());
    got(sink.wait_for_subject(&to, "Two-factor authentication turned off").await);
    let c = TestClient::new(&base);
    assert!(c.login("alice", new).await.redirects_to("/"));
    enrol(&app, c).await;
    got(sink.wait_for_subject(&to, "Two-factor authentication turned on").await);
    let root = signed_in(&app, "root").await;
    let p = root.post(&format!("/admin/users/{}/reset-mfa", id.0), &[]).await;
    assert!(p.redirects_to("/admin/users"));
    got(sink
        .wait_for_subject(&to, "An administrator reset your two-factor authentication")
        .await);

    // Turned off: no email for a new browser; every other one still comes.
    let c = TestClient::new(&base);
    assert!(c.login("alice", new).await.redirects_to("/"));
    let p = c.post("/settings/account/notifications", &[]).await;
    assert!(p.redirects_to("/settings/account"));
    assert!(
        !c.get("/settings/account").await.body.contains("value=\"on\" checked>"),
        "unticked"
    );
    let before = settled(&app).await.len();
    let other = TestClient::new(&base);
    assert!(other.login("alice", new).await.redirects_to("/"));
    assert_eq!(settled(&app).await.len(), before, "no new-browser message");

    // Each message once, each with its own Message-ID; all sent.
    let all = sink.to(&to);
    let mut ids: Vec<&str> = all.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), all.len(), "no duplicates");
    assert_eq!(seen.len(), 12, "{seen:#?}");
    assert!(settled(&app).await.iter().all(|m| m.sent_at.is_some()));
    sink.stop();
}

/// "This wasn't me": the link's page, then every session ends, remembered
/// browsers are forgotten, and the next sign-in must choose a new password
/// first. The link works once, for 7 days, and only for its own purpose.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_wasnt_me_secures_the_account() {
    let sink = Sink::start();
    let app = TestApp::spawn_with_mail(&sink.url()).await;
    with_address(&app, "alice").await;
    let to = address("alice");
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    // A remembered browser, and a session elsewhere.
    let home = app.client();
    app.clock.advance(30);
    let code = oathtool(&e.secret, app.clock.now());
    assert!(home.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    assert!(
        home.post("/login/two-factor", &[("code", &code), ("remember_browser", "on")])
            .await
            .redirects_to("/")
    );
    let m = sink
        .wait_for_subject(&to, &format!("New sign-in to your {ISSUER} account from a new browser"))
        .await;
    let link = m.link("not-me").unwrap();
    // Whoever that was adds a passkey (it would let them in without the
    // password).
    app.clock.advance(1);
    let mut key = SoftKey::new(7, &app.base);
    let (status, _) = crate::webauthn::add_key(&home, &mut key, "Their passkey").await;
    assert_eq!(status, StatusCode::OK);

    // Anyone (signed out) may open it: a page that says what it will do.
    let stranger = app.client();
    let page = stranger.get(&link).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("id=\"not-me-confirm\""));
    assert!(page.body.contains("alice"));
    // Opening it changed nothing.
    assert_eq!(home.get("/").await.status, StatusCode::OK);
    // A tampered or foreign-purpose token does nothing.
    let tampered = format!("{}A", &link[..link.len() - 1]);
    let tampered = if tampered == link {
        format!("{}B", &link[..link.len() - 1])
    } else {
        tampered
    };
    assert_eq!(stranger.post(&tampered, &[]).await.status, StatusCode::NOT_FOUND);
    let as_verify = link.replace("/not-me/", "/verify/");
    assert_eq!(stranger.get(&as_verify).await.status, StatusCode::NOT_FOUND);
    assert_eq!(
        stranger.get("/email/not-me/nonsense").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(home.get("/").await.status, StatusCode::OK, "still signed in");

    // Confirmed: everything it says.
    let done = stranger.post(&link, &[]).await;
    assert_eq!(done.status, StatusCode::OK, "{:?}", done.flash());
    assert!(done.body.contains("new password"));
    assert!(
        home.get("/").await.location.unwrap().starts_with("/login"),
        "signed out"
    );
    assert!(
        e.client.get("/").await.location.unwrap().starts_with("/login"),
        "everywhere"
    );
    // The remembered browser asks for the code again, and then the new
    // password comes before anything else.
    app.clock.advance(30);
    assert!(home.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    let code = oathtool(&e.secret, app.clock.now());
    let p = home.post("/login/two-factor", &[("code", &code)]).await;
    assert!(p.status.is_redirection());
    let p = home.get("/").await;
    assert!(
        p.location.as_deref().is_some_and(|l| l.contains("password")),
        "a new password first: {:?}",
        p.location
    );
    let id = app.user("alice").await.id;
    let events = app.events(id).await;
    assert!(events.contains(&"not_me".to_string()), "{events:?}");
    assert!(events.contains(&"remembered_browser_forgotten".to_string()));
    // What was added since the message is gone; what was there before stays.
    let kinds: Vec<String> = app.credentials(id).await.into_iter().map(|k| k.kind).collect();
    assert_eq!(kinds, ["totp"], "the passkey added after the message is removed");
    // And the address hears what was done, with no link of its own.
    let secured = sink
        .wait_for_subject(
            &to,
            &format!("Your {ISSUER} account was secured after “This wasn’t me”"),
        )
        .await;
    assert!(secured.link("not-me").is_none());
    // Once only.
    assert_eq!(stranger.post(&link, &[]).await.status, StatusCode::GONE);

    // Another message's link, eight days later: expired.
    let (c, _) = login_with_code(&app, "alice", &{
        app.clock.advance(30);
        oathtool(&e.secret, app.clock.now())
    })
    .await;
    drop(c);
    let later = settled(&app)
        .await
        .into_iter()
        .rev()
        .find(|m| m.kind != "verify" && m.link_used_at.is_none())
        .expect("another message");
    let link = format!("/email/not-me/{}", app.auth.email_link(&later));
    app.clock.advance(8 * 86_400);
    let p = app.client().get(&link).await;
    assert_eq!(p.status, StatusCode::GONE);
    assert!(p.flash().unwrap().contains("expired"));
}

/// Verification: single use, 24 hours, only for the address the account
/// has now; five a day; bad addresses are refused and change nothing; the
/// Profile tab asks for the password first when it is stale.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_verified_by_their_link() {
    let sink = Sink::start();
    let app = TestApp::spawn_with_mail(&sink.url()).await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    for bad in [
        "not an address",
        "a@b",
        "x@example.com\r\nBcc: y@example.com",
        "<a@example.com>",
    ] {
        let p = c.post("/settings/account/email", &[("email", bad)]).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{bad:?}");
    }
    assert!(app.user("alice").await.email.is_none(), "nothing stored");
    assert_eq!(app.auth.recent_mail(10).await.unwrap().len(), 0, "nothing sent");

    // First address, then a second: the first's link no longer verifies.
    assert!(
        c.post("/settings/account/email", &[("email", "old@example.com")])
            .await
            .redirects_to("/settings/account")
    );
    let old = sink
        .wait_for_subject("old@example.com", "Verify your email address")
        .await;
    assert!(
        c.post("/settings/account/email", &[("email", "new@example.com")])
            .await
            .redirects_to("/settings/account")
    );
    let new = sink
        .wait_for_subject("new@example.com", "Verify your email address")
        .await;
    let p = c.post(&old.link("verify").unwrap(), &[]).await;
    assert_eq!(p.status, StatusCode::GONE);
    assert!(app.user("alice").await.email_verified_at.is_none());
    // The new one, after 24 hours: expired; a fresh one works, once.
    app.clock.advance(24 * 3600);
    assert_eq!(c.post(&new.link("verify").unwrap(), &[]).await.status, StatusCode::GONE);
    let c = signed_in(&app, "alice").await;
    let p = c.post("/settings/account/email/resend", &[]).await;
    assert!(p.redirects_to("/settings/account"));
    let again = sink
        .wait_for(|m| m.to == "new@example.com" && m.message_id != new.message_id)
        .await;
    let link = again.link("verify").unwrap();
    assert_eq!(c.post(&link, &[]).await.status, StatusCode::OK);
    assert_eq!(c.post(&link, &[]).await.status, StatusCode::GONE);
    let u = app.user("alice").await;
    assert_eq!(u.email.as_deref(), Some("new@example.com"));
    assert!(u.email_verified_at.is_some());
    // Five verification messages a day at most.
    app.clock.advance(25 * 3600);
    let mut statuses = vec![];
    for i in 0..7 {
        let c = signed_in(&app, "alice").await;
        statuses.push(
            c.post("/settings/account/email", &[("email", &format!("n{i}@example.com"))])
                .await
                .status
                .as_u16(),
        );
    }
    assert_eq!(statuses, [303, 303, 303, 303, 303, 429, 429]);

    // A stale password: the sudo prompt first, then the change goes on.
    app.clock.advance(11 * 60);
    let c = signed_in(&app, "alice").await;
    app.clock.advance(11 * 60);
    let p = c.post("/settings/account/email", &[("email", "")]).await;
    assert!(p.body.contains("Confirm your password"), "{}", p.status);
    let p = c
        .post("/settings/account/email", &[("email", ""), ("password", PASSWORD)])
        .await;
    assert!(p.redirects_to("/settings/account"), "{} {:?}", p.status, p.flash());
    assert!(app.user("alice").await.email.is_none(), "removed");

    // A verified address, changed by someone in the account: the old
    // address hears of it, and its "This wasn't me" sets it back. (A day
    // later: today's five verification messages are spent.)
    app.clock.advance(25 * 3600);
    let u = app.user("alice").await;
    app.auth
        .set_email_as_admin(&u, "new@example.com", Actor::CommandLine)
        .await
        .unwrap();
    let c = signed_in(&app, "alice").await;
    assert!(
        c.post("/settings/account/email", &[("email", "other@example.com")])
            .await
            .redirects_to("/settings/account")
    );
    // (The seven changes above told this address too, if the worker sent
    // those before the clock moved a day on: look for this change's message.)
    let told = sink
        .wait_for(|m| {
            m.to == "new@example.com"
                && m.subject == "The email address of your Latchkey Test account was changed"
                && m.text.contains("changed to other@example.com")
        })
        .await;
    let back = told.link("not-me").unwrap();
    let page = app.client().get(&back).await;
    assert!(page.body.contains("set back to new@example.com"), "{}", page.body);
    assert_eq!(app.client().post(&back, &[]).await.status, StatusCode::OK);
    let u = app.user("alice").await;
    assert_eq!(u.verified_email(), Some("new@example.com"));
}

/// SMTP down while people sign in: the sign-ins go on as usual, the
/// messages wait, and arrive once the server is back (first retry within a
/// minute). Then a 4xx is retried with backoff until it goes through, and
/// given up after 24 hours.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smtp_down_delays_mail_but_never_a_sign_in() {
    let mut sink = Sink::stopped();
    let app = TestApp::spawn_with_mail(&sink.url()).await;
    with_address(&app, "alice").await;
    let to = address("alice");
    assert!(
        signed_in(&app, "alice")
            .await
            .post("/logout", &[])
            .await
            .status
            .is_redirection()
    );
    // Three new browsers, each signs in at once.
    for _ in 0..3 {
        let c = app.client();
        assert!(c.login("alice", PASSWORD).await.redirects_to("/"));
    }
    // The worker tried, failed, and will try again.
    let mut waiting = vec![];
    for _ in 0..600 {
        waiting = app.auth.recent_mail(10).await.unwrap();
        if waiting.len() == 3 && waiting.iter().all(|m| m.attempts >= 1 && m.last_error.is_some()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(waiting.len(), 3);
    for m in &waiting {
        assert!(m.sent_at.is_none() && m.failed_at.is_none());
        assert!(m.next_attempt_at - app.clock.now() <= 60, "first retry within a minute");
        assert!(
            m.last_error.as_deref().unwrap().contains("onnection"),
            "{:?}",
            m.last_error
        );
    }
    sink.restart();
    app.clock.advance(60);
    for m in settled(&app).await {
        assert!(m.sent_at.is_some(), "{m:?}");
    }
    assert_eq!(sink.to(&to).len(), 3);

    // A 4xx: tried again and again, further apart, until it goes through.
    sink.set_tempfail(true);
    let c = app.client();
    assert!(c.login("alice", PASSWORD).await.redirects_to("/"));
    let mut attempts = vec![];
    for _ in 0..4 {
        let mut seen = 0;
        for _ in 0..600 {
            let m = app.auth.recent_mail(1).await.unwrap().remove(0);
            if m.claimed_until.is_none() && m.attempts as usize > attempts.len() {
                seen = m.attempts;
                attempts.push(m.next_attempt_at - app.clock.now());
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert!(seen > 0, "an attempt");
        app.clock.advance(*attempts.last().unwrap());
    }
    assert!(attempts.windows(2).all(|w| w[1] > w[0]), "backoff: {attempts:?}");
    assert!(attempts[0] <= 60);
    sink.set_tempfail(false);
    app.clock.advance(3600);
    assert!(settled(&app).await.iter().all(|m| m.sent_at.is_some()));

    // Given up after 24 hours of 4xx.
    sink.set_tempfail(true);
    let c = app.client();
    assert!(c.login("alice", PASSWORD).await.redirects_to("/"));
    let mut attempts = 0;
    for _ in 0..1000 {
        let m = app.auth.recent_mail(1).await.unwrap().remove(0);
        if m.failed_at.is_some() {
            assert!(m.last_error.unwrap().contains("24 hours"));
            assert!(m.sent_at.is_none());
            return;
        }
        if m.claimed_until.is_none() && m.attempts > attempts {
            attempts = m.attempts;
            app.clock.advance(6 * 3600);
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("never given up");
}

/// A 5xx is permanent: recorded, in the security log for administrators,
/// and not tried again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_recorded_and_not_retried() {
    let sink = Sink::start();
    let app = TestApp::spawn_with_mail(&sink.url()).await;
    app.create_user("reject", false).await;
    with_address(&app, "reject").await;
    let c = signed_in(&app, "reject").await;
    let new = "a completely new passphrase";
    let p = c
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
    let m = settled(&app).await.remove(0);
    assert!(m.failed_at.is_some() && m.sent_at.is_none());
    assert_eq!(m.attempts, 1);
    assert!(m.last_error.as_deref().unwrap().contains("550"), "{:?}", m.last_error);
    let log = app
        .auth
        .security_log(None, Some(latchkey::db::events::Kind::MailFailed), 0, 10)
        .await
        .unwrap()
        .0;
    assert_eq!(log.len(), 1);
    assert!(log[0].detail.as_deref().unwrap().contains("550"));
    app.clock.advance(48 * 3600);
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(app.auth.recent_mail(1).await.unwrap()[0].attempts, 1, "not retried");
    assert!(sink.received().is_empty());
}

/// A message claimed by a sender that died mid-send goes out once the
/// claim lapses; the unfinished-sign-in alert waits the five minutes and
/// is not sent when the user got in after all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn claims_lapse_and_alerts_wait_their_five_minutes() {
    let sink = Sink::start();
    let app = TestApp::spawn_with_mail(&sink.url()).await;
    with_address(&app, "alice").await;
    let to = address("alice");
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    settled(&app).await;
    let before = sink.to(&to).len();

    // A message "claimed" by a worker that died: left alone until the claim lapses.
    let id = app.user("alice").await.id;
    let now = app.clock.time();
    let reference = app
        .db
        .run(move |c| {
            let r = latchkey::db::outbox::enqueue(
                c,
                latchkey::core::notice::Notice::PasswordChanged,
                Some(id),
                "alice@example.com",
                None,
                None,
                None,
                now,
            )?;
            use diesel::prelude::*;
            diesel::update(latchkey::schema::outbox::table.filter(latchkey::schema::outbox::reference.eq(&r)))
                .set(latchkey::schema::outbox::claimed_until.eq(now.0 + 60))
                .execute(c)?;
            Ok(r)
        })
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert_eq!(sink.to(&to).len(), before, "not while claimed");
    app.clock.advance(61);
    let m = sink.wait_for_subject(&to, "Your password was changed").await;
    assert!(m.message_id.contains(&reference));

    // Password right, no code: nothing at 4 min 59 s; the alert after 5.
    let unfinished = "Sign-in not completed: your password was used, but the second step was not completed";
    let c = app.client();
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    app.clock.advance(299);
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    assert!(sink.to(&to).iter().all(|m| m.subject != unfinished));
    app.clock.advance(2);
    sink.wait_for_subject(&to, unfinished).await;

    // "Cancel and sign out" at the prompt does not keep the owner from
    // hearing of it (an hour later, past the once-an-hour limit).
    app.clock.advance(3600);
    let n = sink.to(&to).iter().filter(|m| m.subject == unfinished).count();
    let c = app.client();
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    assert!(c.post("/logout", &[]).await.status.is_redirection());
    sink.wait_for(|m| {
        m.to == to && m.subject == unfinished && sink.to(&to).iter().filter(|x| x.subject == unfinished).count() > n
    })
    .await;

    // A pending sign-in left behind while the user got in on a second try:
    // no alert (and none again within the hour anyway).
    let n = sink.to(&to).iter().filter(|m| m.subject == unfinished).count();
    app.clock.advance(3600);
    let left = app.client();
    assert!(left.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    app.clock.advance(30);
    let (_, p) = login_with_code(&app, "alice", &oathtool(&e.secret, app.clock.now())).await;
    assert!(p.redirects_to("/"));
    app.clock.advance(301);
    settled(&app).await;
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    settled(&app).await;
    assert_eq!(sink.to(&to).iter().filter(|m| m.subject == unfinished).count(), n);
    let id = app.user("alice").await.id;
    assert!(app.count("pending_sign_ins").await == 0, "handled and deleted");
    assert!(app.events(id).await.contains(&"sign_in_unfinished".to_string()));
}

/// Two instances on one database, each with its worker: every message
/// goes out exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_send_each_message_once() {
    let sink = Sink::start();
    let app = TestApp::spawn_with_mail(&sink.url()).await;
    let b = app.another_instance().await;
    let mut users = vec![];
    for i in 0..12 {
        let name = format!("user{i}");
        with_address(&app, &name).await;
        users.push(name);
    }
    // Each user: a first sign-in (no message), then two new browsers, half
    // through each instance, at once.
    for u in &users {
        assert!(
            signed_in(&app, u)
                .await
                .post("/logout", &[])
                .await
                .status
                .is_redirection()
        );
    }
    let mut tasks = vec![];
    for (i, u) in users.iter().enumerate() {
        for base in [app.base.clone(), b.clone()] {
            let u = u.clone();
            tasks.push(tokio::spawn(async move {
                let c = TestClient::new(&base);
                assert!(c.login(&u, PASSWORD).await.redirects_to("/"));
                i
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    let all = settled(&app).await;
    assert_eq!(all.len(), 24);
    assert!(all.iter().all(|m| m.sent_at.is_some() && m.attempts == 1), "{all:#?}");
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    let got = sink.received();
    assert_eq!(got.len(), 24, "exactly once each");
    let mut ids: Vec<&str> = got.iter().map(|m| m.message_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 24);
}

/// Without --smtp-url: no email anywhere on the pages, the routes are not
/// there, and nothing else changes.
#[tokio::test]
async fn without_smtp_email_is_hidden() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let p = c.get("/settings/account").await;
    assert!(!p.body.contains("profile-email") && !p.body.contains("notify-new-browser"));
    assert_eq!(
        c.post("/settings/account/email", &[("email", "a@example.com")])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    app.create_user("root", true).await;
    let root = signed_in(&app, "root").await;
    assert!(!root.get("/admin/users").await.body.contains("new-email"));
}

/// An administrator may give a new user an address (verified: they vouch
/// for it); a bad one creates nothing.
#[tokio::test]
async fn admins_set_an_address_when_they_create_a_user() {
    let sink = Sink::start();
    let app = TestApp::spawn_with_mail(&sink.url()).await;
    app.create_user("root", true).await;
    let root = signed_in(&app, "root").await;
    assert!(root.get("/admin/users").await.body.contains("id=\"new-email\""));
    let p = root
        .post("/admin/users", &[("username", "bob"), ("email", "bob@")])
        .await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert_eq!(app.count("users").await, 1, "nothing created");
    let p = root
        .post_follow("/admin/users", &[("username", "bob"), ("email", "bob@example.com")])
        .await;
    assert_eq!(p.status, StatusCode::OK, "{:?}", p.flash());
    assert!(p.text_of("temporary-password").is_some());
    let bob = app.user("bob").await;
    assert_eq!(bob.verified_email(), Some("bob@example.com"));
    let _ = json!({});
}

/// A server that takes the message and never answers holds the worker up
/// for one timeout, not for ever (a temporary failure); a worker that lost
/// its claim records nothing over the new holder's; a message that waited
/// more than a day (email was off) is not sent late.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_server_a_lost_claim_and_a_stale_message() {
    use diesel::prelude::*;
    use latchkey::schema::outbox::dsl as o;
    let sink = Sink::start();
    let app = TestApp::spawn_with_mail(&sink.url()).await;
    app.create_user("stall", false).await;
    with_address(&app, "stall").await;
    with_address(&app, "alice").await;
    let (stall, alice) = (app.user("stall").await.id, app.user("alice").await.id);
    let now = app.clock.time();
    let enqueue = |user, to: &'static str| {
        app.db.run(move |c| {
            latchkey::db::outbox::enqueue(
                c,
                latchkey::core::notice::Notice::PasswordChanged,
                Some(user),
                to,
                None,
                None,
                None,
                now,
            )
        })
    };
    enqueue(stall, "stall@example.com").await.unwrap();
    enqueue(alice, "alice@example.com").await.unwrap();
    // The tarpit takes the first; after the timeout the worker goes on.
    sink.wait_for_subject("alice@example.com", "Your password was changed")
        .await;
    let stalled = app.auth.mail_for(stall).await.unwrap().remove(0);
    assert!(stalled.sent_at.is_none() && stalled.failed_at.is_none());
    assert!(
        stalled.last_error.as_deref().unwrap_or("").contains("did not finish"),
        "{:?}",
        stalled.last_error
    );

    // A lost claim: worker A claimed, its claim lapsed, worker B claimed;
    // A's late outcome changes nothing.
    let reference = enqueue(alice, "alice@example.com").await.unwrap();
    let r = reference.clone();
    let (first, second) = app
        .db
        .run(move |c| {
            // Taken out of the worker's reach first: pretend two workers.
            diesel::update(o::outbox.filter(o::reference.eq(&r)))
                .set(o::next_attempt_at.eq(now.0 + 1_000_000))
                .execute(c)?;
            let later = latchkey::core::types::UnixTime(now.0 + 1_000_000);
            let a = latchkey::db::outbox::claim_due(c, later, 60, 10)?
                .into_iter()
                .find(|m| m.reference == r)
                .unwrap();
            let lapsed = latchkey::core::types::UnixTime(later.0 + 61);
            let b = latchkey::db::outbox::claim_due(c, lapsed, 60, 10)?
                .into_iter()
                .find(|m| m.reference == r)
                .unwrap();
            let late = latchkey::db::outbox::retry_at(c, a.id, a.claimed_until, lapsed, "late")?;
            let failed = latchkey::db::outbox::mark_failed(c, a.id, a.claimed_until, lapsed, "late")?;
            assert!(!late && !failed, "A lost its claim");
            let row = latchkey::db::outbox::find_by_reference(c, &r)?.unwrap();
            Ok((a.claimed_until, (b.claimed_until, row)))
        })
        .await
        .unwrap();
    let (b_claim, row) = second;
    assert_ne!(first, b_claim);
    assert_eq!(row.claimed_until, b_claim, "B's claim stands");
    assert!(row.failed_at.is_none() && row.last_error.is_none());

    // Written more than a day ago (email was off): given up, not sent.
    let old = enqueue(alice, "alice@example.com").await.unwrap();
    let o2 = old.clone();
    app.db
        .run(move |c| {
            diesel::update(o::outbox.filter(o::reference.eq(&o2)))
                .set((
                    o::created_at.eq(now.0 - 25 * 3600),
                    o::next_attempt_at.eq(now.0 - 25 * 3600),
                ))
                .execute(c)?;
            Ok(())
        })
        .await
        .unwrap();
    let mut given_up = None;
    for _ in 0..600 {
        let m = app
            .db
            .read({
                let o3 = old.clone();
                move |c| latchkey::db::outbox::find_by_reference(c, &o3)
            })
            .await
            .unwrap()
            .unwrap();
        if m.failed_at.is_some() {
            given_up = Some(m);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let m = given_up.expect("given up");
    assert!(m.last_error.unwrap().contains("24 hours"));
    assert!(!sink.received().iter().any(|r| r.message_id.contains(&old)));
}
