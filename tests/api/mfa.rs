//! Two-factor authentication over HTTP, with codes from oathtool and the QR
//! code read by zbarimg.

use reqwest::StatusCode;

use crate::helpers::*;

const STEP: i64 = 30;

/// Move the clock to the start of a later time step, so a new code exists.
fn next_step(app: &TestApp) {
    let now = app.clock.now();
    app.clock.set((now / STEP + 1) * STEP + 1);
}

#[tokio::test]
async fn the_whole_journey() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;

    // Settings → My account settings → Multi-factor authentication → Enable.
    let tab = c.get("/settings/account/mfa").await;
    assert_eq!(tab.text_of("mfa-status").as_deref(), Some("Disabled"));
    let enable = c.post("/settings/account/mfa/enable", &[]).await;
    assert!(enable.redirects_to("/settings/account/mfa/setup"), "{}", enable.status);
    let setup = c.get("/settings/account/mfa/setup").await;
    assert_eq!(setup.status, StatusCode::OK);

    // The QR code, decoded by a real decoder, is exactly the otpauth URI, and
    // its secret is the one shown as text.
    let grouped = setup.text_of("mfa-secret").unwrap();
    assert!(
        grouped.split(' ').all(|g| g.len() == 4) && grouped.split(' ').count() == 8,
        "{grouped}"
    );
    let secret = grouped.replace(' ', "");
    let svg = svg_with_id(&setup.body, "mfa-qr").expect("inline SVG QR code");
    let uri = decode_qr(&svg, app.dir.path());
    assert_eq!(
        uri,
        format!(
            "otpauth://totp/Latchkey%20Test:alice?secret={secret}&issuer=Latchkey%20Test&algorithm=SHA1&digits=6&period=30"
        )
    );
    assert!(
        decode(&setup.body).contains(&format!("href=\"{uri}\"")),
        "the same URI is offered as a link"
    );
    assert_eq!(setup.body.matches("id=\"mfa-confirm\"").count(), 1);

    // Confirm with the current code → recovery codes, shown once.
    let code = oathtool(&secret, app.clock.now());
    let confirmed = c.post("/settings/account/mfa/confirm", &[("code", &code)]).await;
    assert!(
        confirmed.redirects_to("/settings/account/mfa/recovery-codes/new"),
        "{}",
        confirmed.status
    );
    let shown = c.get("/settings/account/mfa/recovery-codes/new").await;
    assert_eq!(shown.status, StatusCode::OK);
    let codes = list_items(&shown.body, "recovery-codes");
    assert_eq!(codes.len(), 10);
    let href = attr_after(&shown.body, "href=\"data:text/plain;charset=utf-8,").expect("download link");
    let txt = percent_encoding::percent_decode_str(&href)
        .decode_utf8()
        .unwrap()
        .to_string();
    for rc in &codes {
        assert_eq!(rc.len(), 17, "{rc}");
        assert!(txt.lines().any(|l| l == rc), "the .txt download holds {rc}");
    }
    assert!(shown.body.contains("download=\"latchkey-recovery-codes.txt\""));
    let done = c.post("/settings/account/mfa/recovery-codes/copied", &[]).await;
    assert!(done.redirects_to("/settings/account/mfa"));
    let tab = c.get("/settings/account/mfa").await;
    assert_eq!(tab.text_of("mfa-status").as_deref(), Some("Enabled"));
    assert_eq!(tab.text_of("recovery-codes-remaining").as_deref(), Some("10"));
    assert!(tab.body.contains("id=\"mfa-disable\""));
    assert!(tab.flash().unwrap().contains("Two-factor authentication is on"));
    // The codes are never shown again.
    for rc in &codes {
        assert!(!tab.body.contains(rc.as_str()));
    }

    // Log out; log in with a TOTP code.
    c.post("/logout", &[]).await;
    next_step(&app);
    let (c2, p) = login_with_code(&app, "alice", &oathtool(&secret, app.clock.now())).await;
    assert!(p.redirects_to("/"), "{} {:?}", p.status, p.flash());
    assert_eq!(c2.get("/").await.status, StatusCode::OK);
    c2.post("/logout", &[]).await;

    // Log in with a recovery code (lower case, spaces instead of dashes).
    let typed = codes[3].to_lowercase().replace('-', " ");
    let (c3, p) = login_with_code(&app, "alice", &typed).await;
    assert!(p.redirects_to("/"), "{:?}", p.flash());
    let tab = c3.get("/settings/account/mfa").await;
    assert_eq!(tab.text_of("recovery-codes-remaining").as_deref(), Some("9"));

    // Disable MFA, confirming with a current code.
    let confirm = c3.get("/settings/account/mfa/disable").await;
    assert_eq!(confirm.status, StatusCode::OK);
    assert!(confirm.body.contains("id=\"mfa-disable-confirm\""));
    next_step(&app);
    let off = c3
        .post(
            "/settings/account/mfa/disable",
            &[("code", &oathtool(&secret, app.clock.now()))],
        )
        .await;
    assert!(off.redirects_to("/settings/account/mfa"), "{:?}", off.flash());
    assert_eq!(
        c3.get("/settings/account/mfa").await.text_of("mfa-status").as_deref(),
        Some("Disabled")
    );
    c3.post("/logout", &[]).await;

    // Password alone is enough again.
    assert!(app.client().login("alice", PASSWORD).await.redirects_to("/"));
    let uid = app.user("alice").await.id;
    let events = app.events(uid).await;
    for kind in ["mfa_enabled", "recovery_code_used", "mfa_disabled"] {
        assert!(events.contains(&kind.to_string()), "{kind} in {events:?}");
    }
}

#[tokio::test]
async fn a_wrong_confirm_code_keeps_the_pending_secret_and_2fa_off() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let setup = c.post_follow("/settings/account/mfa/enable", &[]).await;
    let secret = setup.text_of("mfa-secret").unwrap();
    let wrong = wrong_code(&secret.replace(' ', ""), app.clock.now());
    let again = c.post("/settings/account/mfa/confirm", &[("code", &wrong)]).await;
    assert_eq!(again.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(again.text_of("mfa-secret"), Some(secret.clone()), "same secret");
    assert!(again.flash().unwrap().contains("30 seconds"));
    assert!(!app.mfa_on("alice").await);
    let malformed = c.post("/settings/account/mfa/confirm", &[("code", "12345")]).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert_eq!(malformed.text_of("mfa-secret"), Some(secret));
    assert!(!app.mfa_on("alice").await);
    assert_eq!(app.count("recovery_codes").await, 0);
}

#[tokio::test]
async fn an_abandoned_enrolment_expires_and_enable_starts_afresh() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let first = c
        .post_follow("/settings/account/mfa/enable", &[])
        .await
        .text_of("mfa-secret")
        .unwrap()
        .replace(' ', "");
    let second = c
        .post_follow("/settings/account/mfa/enable", &[])
        .await
        .text_of("mfa-secret")
        .unwrap()
        .replace(' ', "");
    assert_ne!(first, second, "Enable replaces the pending secret");
    // The replaced secret no longer confirms.
    let p = c
        .post(
            "/settings/account/mfa/confirm",
            &[("code", &oathtool(&first, app.clock.now()))],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY);

    app.clock.advance(11 * 60);
    let late = c
        .post(
            "/settings/account/mfa/confirm",
            &[("code", &oathtool(&second, app.clock.now()))],
        )
        .await;
    assert!(late.redirects_to("/settings/account/mfa"));
    let tab = c.get("/settings/account/mfa").await;
    assert!(tab.flash().unwrap().contains("expired"));
    assert_eq!(tab.text_of("mfa-status").as_deref(), Some("Disabled"));
}

#[tokio::test]
async fn replayed_codes_are_refused_and_the_window_is_one_step() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    // The confirming code's step counts as used.
    let (_, p) = login_with_code(&app, "alice", &oathtool(&e.secret, app.clock.now())).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.flash().unwrap().contains("already used"));

    // Ten steps later: T-2 and T+2 are refused, T-1 and T+1 accepted.
    app.clock.advance(10 * STEP);
    let t = app.clock.now();
    for (offset, ok) in [(-2, false), (2, false), (-1, true), (1, true)] {
        let code = oathtool(&e.secret, t + offset * STEP);
        let (_, p) = login_with_code(&app, "alice", &code).await;
        if ok {
            assert!(p.redirects_to("/"), "step {offset:+} should pass: {:?}", p.flash());
        } else {
            assert_eq!(p.status, StatusCode::UNAUTHORIZED, "step {offset:+} should fail");
        }
    }
    // After T+1 was used, T itself is a replay (only later steps pass).
    let (_, p) = login_with_code(&app, "alice", &oathtool(&e.secret, t)).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn code_parsing_is_strict_but_accepts_spaces_and_dashes() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    next_step(&app);
    let c = app.client();
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    for bad in ["+12345", "１２３４５６", "12345", "1234567", "12345a", ""] {
        let p = c.post("/login/two-factor", &[("code", bad)]).await;
        assert_eq!(p.status, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(p.flash().unwrap().contains("6-digit code"), "{bad:?}");
    }
    let huge = "1".repeat(1 << 20);
    assert_eq!(
        c.post("/login/two-factor", &[("code", &huge)]).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let token = c.csrf().await;
    let twice = c
        .post_raw(
            "/login/two-factor",
            &[("code", "123456"), ("code", "654321"), ("csrf_token", &token)],
        )
        .await;
    assert_eq!(twice.status, StatusCode::BAD_REQUEST);
    assert!(twice.body.contains("more than once"));
    // None of that ended the pending login or counted as a wrong code.
    let code = oathtool(&e.secret, app.clock.now());
    let spaced = format!(" {} {} ", &code[..3], &code[3..]);
    let p = c.post("/login/two-factor", &[("code", &spaced)]).await;
    assert!(p.redirects_to("/"), "{:?}", p.flash());

    next_step(&app);
    let code = oathtool(&e.secret, app.clock.now());
    let (_, p) = login_with_code(&app, "alice", &format!("{}-{}", &code[..3], &code[3..])).await;
    assert!(p.redirects_to("/"));
}

#[tokio::test]
async fn a_pending_login_reaches_nothing_else() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    let c = app.client();
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    for path in [
        "/",
        "/settings",
        "/settings/account",
        "/settings/account/mfa",
        "/settings/account/mfa/disable",
    ] {
        let p = c.get(path).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{path}");
        assert!(p.location.unwrap().starts_with("/login"), "{path}");
    }
    let p = c.post("/settings/account/mfa/disable", &[("code", &e.codes[0])]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    let p = c.post("/settings/account/mfa/recovery-codes", &[]).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(app.mfa_on("alice").await);
    assert_eq!(app.count("recovery_codes").await, 10);
    // The code prompt itself is there.
    assert_eq!(c.get("/login/two-factor").await.status, StatusCode::OK);
    // And an anonymous visitor cannot reach the prompt.
    assert!(app.client().get("/login/two-factor").await.redirects_to("/login"));
}

#[tokio::test]
async fn a_pending_login_dies_after_five_wrong_codes_or_five_minutes() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    next_step(&app);
    let c = app.client();
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    for _ in 0..4 {
        assert_eq!(
            c.post(
                "/login/two-factor",
                &[("code", &wrong_code(&e.secret, app.clock.now()))]
            )
            .await
            .status,
            StatusCode::UNAUTHORIZED
        );
    }
    let fifth = c
        .post(
            "/login/two-factor",
            &[("code", &wrong_code(&e.secret, app.clock.now()))],
        )
        .await;
    assert!(fifth.redirects_to("/login"));
    let p = c
        .post("/login/two-factor", &[("code", &oathtool(&e.secret, app.clock.now()))])
        .await;
    assert!(p.redirects_to("/login"), "the pending state is gone");
    assert!(c.get("/").await.location.unwrap().starts_with("/login"));

    // Five minutes.
    app.clock.advance(3600);
    let c = app.client();
    assert!(c.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    app.clock.advance(5 * 60 + 1);
    let p = c
        .post("/login/two-factor", &[("code", &oathtool(&e.secret, app.clock.now()))])
        .await;
    assert!(p.redirects_to("/login"));
    assert!(c.get("/login").await.flash().unwrap().contains("took too long"));
}

#[tokio::test]
async fn failures_lock_the_account_across_sessions() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    next_step(&app);
    let a = app.client();
    let b = app.client();
    assert!(a.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    assert!(b.login("alice", PASSWORD).await.redirects_to("/login/two-factor"));
    for i in 0..5 {
        let who = if i % 2 == 0 { &a } else { &b };
        assert_eq!(
            who.post(
                "/login/two-factor",
                &[("code", &wrong_code(&e.secret, app.clock.now()))]
            )
            .await
            .status,
            StatusCode::UNAUTHORIZED
        );
    }
    // Even the right code waits now, in either session.
    let good = oathtool(&e.secret, app.clock.now());
    let p = b.post("/login/two-factor", &[("code", &good)]).await;
    assert_eq!(p.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(p.body.contains("Try again in"));
    let uid = app.user("alice").await.id;
    assert!(app.events(uid).await.contains(&"second_factor_locked".to_string()));

    app.clock.advance(31);
    let p = b
        .post("/login/two-factor", &[("code", &oathtool(&e.secret, app.clock.now()))])
        .await;
    assert!(p.redirects_to("/"), "{} {:?}", p.status, p.flash());
}

#[tokio::test]
async fn recovery_codes_work_once_and_only_for_their_owner() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    app.create_user("bob", false).await;
    let alice = enrol(&app, signed_in(&app, "alice").await).await;
    let _bob = enrol(&app, signed_in(&app, "bob").await).await;

    let (_, p) = login_with_code(&app, "bob", &alice.codes[0]).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "another user's code");
    let (_, p) = login_with_code(&app, "alice", &alice.codes[0]).await;
    assert!(p.redirects_to("/"));
    let (_, p) = login_with_code(&app, "alice", &alice.codes[0]).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "used once already");
}

#[tokio::test]
async fn regenerating_kills_the_old_set_and_needs_a_fresh_password() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    let c = &e.client;

    // Eleven minutes after the password: sudo mode has lapsed.
    app.clock.advance(11 * 60);
    let prompt = c.post("/settings/account/mfa/recovery-codes", &[]).await;
    assert_eq!(prompt.status, StatusCode::OK);
    assert!(prompt.body.contains("Confirm your password"));
    assert!(list_items(&prompt.body, "recovery-codes").is_empty());
    let wrong = c
        .post(
            "/settings/account/mfa/recovery-codes",
            &[("password", "wrong password")],
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let fresh = c
        .post_follow("/settings/account/mfa/recovery-codes", &[("password", PASSWORD)])
        .await;
    assert_eq!(fresh.status, StatusCode::OK);
    let new_codes = list_items(&fresh.body, "recovery-codes");
    assert_eq!(new_codes.len(), 10);
    assert!(new_codes.iter().all(|n| !e.codes.contains(n)));

    let (_, p) = login_with_code(&app, "alice", &e.codes[1]).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED, "old set is dead");
    let (_, p) = login_with_code(&app, "alice", &new_codes[1]).await;
    assert!(p.redirects_to("/"));
    let uid = app.user("alice").await.id;
    assert!(
        app.events(uid)
            .await
            .contains(&"recovery_codes_regenerated".to_string())
    );
}

/// A double-click on "Generate new recovery codes": one new set, made by
/// the first click and shown once; the second click goes to that showing
/// rather than dropping it.
#[tokio::test]
async fn a_second_click_on_regenerate_goes_to_the_first_ones_codes() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    let c = &e.client;
    let tab = c.get("/settings/account/mfa").await;
    let generation = attr_after(&tab.body, "name=\"generation\" value=\"").expect("the form's generation");
    let fields = [("generation", generation.as_str())];
    let first = c.post("/settings/account/mfa/recovery-codes", &fields).await;
    let second = c.post("/settings/account/mfa/recovery-codes", &fields).await;
    for p in [&first, &second] {
        assert!(
            p.redirects_to("/settings/account/mfa/recovery-codes/new"),
            "{:?}",
            p.flash()
        );
    }
    let shown = c.get("/settings/account/mfa/recovery-codes/new").await;
    let codes = list_items(&shown.body, "recovery-codes");
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|n| !e.codes.contains(n)), "the new set");
    assert!(
        c.get("/settings/account/mfa/recovery-codes/new")
            .await
            .redirects_to("/settings/account/mfa")
    );
    let (_, p) = login_with_code(&app, "alice", &codes[0]).await;
    assert!(p.redirects_to("/"), "the set shown is the one that works");
    let uid = app.user("alice").await.id;
    let made = app
        .events(uid)
        .await
        .iter()
        .filter(|k| *k == "recovery_codes_regenerated")
        .count();
    assert_eq!(made, 1);
}

#[tokio::test]
async fn enabling_needs_a_fresh_password_and_continues_after_it() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    app.clock.advance(11 * 60);
    let prompt = c.post("/settings/account/mfa/enable", &[]).await;
    assert!(prompt.body.contains("Confirm your password") && prompt.text_of("mfa-secret").is_none());
    assert_eq!(app.count("mfa_enrolments").await, 0);
    let setup = c
        .post_follow("/settings/account/mfa/enable", &[("password", PASSWORD)])
        .await;
    assert!(setup.text_of("mfa-secret").is_some(), "the action continues");

    // Disable's confirmation page asks for the password first, too.
    let e = enrol(&app, c).await;
    app.clock.advance(11 * 60);
    let p = e.client.get("/settings/account/mfa/disable").await;
    assert!(p.body.contains("Confirm your password") && !p.body.contains("mfa-disable-confirm"));
    let p = e
        .client
        .post("/settings/account/mfa/disable", &[("password", PASSWORD)])
        .await;
    assert!(p.redirects_to("/settings/account/mfa/disable"));
    assert!(
        e.client
            .get("/settings/account/mfa/disable")
            .await
            .body
            .contains("mfa-disable-confirm")
    );
}

#[tokio::test]
async fn disable_needs_a_code_and_then_removes_everything() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    next_step(&app);
    let (other, p) = login_with_code(&app, "alice", &oathtool(&e.secret, app.clock.now())).await;
    assert!(p.redirects_to("/"));

    let p = e.client.post("/settings/account/mfa/disable", &[]).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    let p = e
        .client
        .post(
            "/settings/account/mfa/disable",
            &[("code", &wrong_code(&e.secret, app.clock.now()))],
        )
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(app.mfa_on("alice").await);

    let p = e
        .client
        .post("/settings/account/mfa/disable", &[("code", &e.codes[9])])
        .await;
    assert!(p.redirects_to("/settings/account/mfa"));
    assert!(!app.mfa_on("alice").await && app.totp_last_step("alice").await.is_none());
    assert!(
        app.credentials(app.user("alice").await.id).await.is_empty(),
        "every factor deleted"
    );
    assert_eq!(app.count("recovery_codes").await, 0);
    assert!(
        other.get("/").await.location.unwrap().starts_with("/login"),
        "other session ended"
    );
    assert_eq!(e.client.get("/").await.status, StatusCode::OK, "this one goes on");

    // Enabling again gives a new secret.
    let again = e.client.post_follow("/settings/account/mfa/enable", &[]).await;
    assert_ne!(again.text_of("mfa-secret").unwrap().replace(' ', ""), e.secret);
}

#[tokio::test]
async fn csrf_guards_every_mfa_action() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let p = c
        .post_raw("/settings/account/mfa/enable", &[("csrf_token", "forged")])
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert_eq!(app.count("mfa_enrolments").await, 0);

    let setup = c.post_follow("/settings/account/mfa/enable", &[]).await;
    let secret = setup.text_of("mfa-secret").unwrap().replace(' ', "");
    let code = oathtool(&secret, app.clock.now());
    let p = c.post_raw("/settings/account/mfa/confirm", &[("code", &code)]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(!app.mfa_on("alice").await);

    let e = enrol(&app, c).await;
    let p = e
        .client
        .post_raw("/settings/account/mfa/recovery-codes", &[("csrf_token", "")])
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    let p = e
        .client
        .post_raw("/settings/account/mfa/disable", &[("code", &e.codes[0])])
        .await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
    assert!(app.mfa_on("alice").await);
    assert_eq!(app.count("recovery_codes").await, 10);
    let (_, p) = login_with_code(&app, "alice", &e.codes[0]).await;
    assert!(p.redirects_to("/"), "the code was not consumed by the refused request");
}

#[tokio::test]
async fn the_database_holds_no_plaintext_secret_or_recovery_code() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    let secret_bytes = base32_decode(&e.secret);
    let raw = app.raw_contents();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.contains("alice"), "the dump is real");
    assert!(!text.contains(&e.secret), "the database holds the Base32 secret");
    assert!(
        !raw.windows(secret_bytes.len()).any(|w| w == secret_bytes),
        "the database holds the raw secret"
    );
    let hex: String = secret_bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert!(!text.contains(&hex), "the database holds the secret in hex");
    for code in &e.codes {
        assert!(
            !text.contains(code.as_str()) && !text.contains(&code.replace('-', "")),
            "the database holds {code}"
        );
    }
}

/// RFC 4648 Base32 (no padding), written out here so the check does not use
/// the crate under test.
fn base32_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits = 0u64;
    let mut n = 0;
    let mut out = vec![];
    for ch in s.bytes() {
        bits = (bits << 5) | A.iter().position(|a| *a == ch).unwrap() as u64;
        n += 5;
        if n >= 8 {
            out.push((bits >> (n - 8)) as u8);
            n -= 8;
        }
    }
    out
}

/// Post/Redirect/Get: Enable, Confirm and Regenerate answer 303 with a GET
/// page; reloading the setup page starts nothing new, and the recovery codes
/// are shown once, to the session that made them.
#[tokio::test]
async fn enable_confirm_and_regenerate_redirect_and_show_the_codes_once() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let other = signed_in(&app, "alice").await;
    let uid = app.user("alice").await.id;

    let enable = c.post("/settings/account/mfa/enable", &[]).await;
    assert!(enable.redirects_to("/settings/account/mfa/setup"), "{}", enable.status);
    let setup = c.get("/settings/account/mfa/setup").await;
    assert_eq!(setup.status, StatusCode::OK);
    let secret = setup.text_of("mfa-secret").unwrap();
    // A reload shows the same pending secret and starts no new one.
    let reload = c.get("/settings/account/mfa/setup").await;
    assert_eq!(reload.text_of("mfa-secret"), Some(secret.clone()));
    assert_eq!(app.credentials(uid).await.len(), 1, "one pending secret");
    // It belongs to the session that asked for it.
    let elsewhere = other.get("/settings/account/mfa/setup").await;
    assert!(elsewhere.redirects_to("/settings/account/mfa"));

    let code = oathtool(&secret.replace(' ', ""), app.clock.now());
    let confirmed = c.post("/settings/account/mfa/confirm", &[("code", &code)]).await;
    assert!(confirmed.redirects_to("/settings/account/mfa/recovery-codes/new"));
    assert!(
        !confirmed.body.contains("recovery-codes\""),
        "no codes in the POST answer"
    );
    // A second click on Confirm is sent to the same one showing.
    let twice = c.post("/settings/account/mfa/confirm", &[("code", &code)]).await;
    assert!(twice.redirects_to("/settings/account/mfa/recovery-codes/new"));
    // Another session of the same user does not get them.
    let stolen = other.get("/settings/account/mfa/recovery-codes/new").await;
    assert!(stolen.redirects_to("/settings/account/mfa"));
    let resp = c
        .http
        .get(c.url("/settings/account/mfa/recovery-codes/new"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    let shown = resp.text().await.unwrap();
    let codes = list_items(&shown, "recovery-codes");
    assert_eq!(codes.len(), 10);
    assert!(
        shown.contains("Copied — finish setup"),
        "the continue button reads as the next step"
    );
    // A reload shows them no more and changes nothing.
    let again = c.get("/settings/account/mfa/recovery-codes/new").await;
    assert!(again.redirects_to("/settings/account/mfa"), "{}", again.status);
    assert!(list_items(&again.body, "recovery-codes").is_empty());
    let tab = c.get("/settings/account/mfa").await;
    assert!(tab.flash().unwrap().contains("shown only once"), "{:?}", tab.flash());
    assert_eq!(tab.text_of("recovery-codes-remaining").as_deref(), Some("10"));
    for rc in &codes {
        assert!(!tab.body.contains(rc.as_str()));
    }
    assert_eq!(app.count("recovery_codes").await, 10);

    // Regenerate: a redirect too, and the new set is shown once.
    let regen = c.post("/settings/account/mfa/recovery-codes", &[]).await;
    assert!(regen.redirects_to("/settings/account/mfa/recovery-codes/new"));
    let fresh = c.get("/settings/account/mfa/recovery-codes/new").await;
    let new_codes = list_items(&fresh.body, "recovery-codes");
    assert_eq!(new_codes.len(), 10);
    assert!(new_codes.iter().all(|n| !codes.contains(n)));
    assert!(fresh.body.contains("Copied — back to settings"));
    let again = c.get("/settings/account/mfa/recovery-codes/new").await;
    assert!(again.redirects_to("/settings/account/mfa"));
    let regenerated = app
        .events(uid)
        .await
        .iter()
        .filter(|k| *k == "recovery_codes_regenerated")
        .count();
    assert_eq!(regenerated, 1, "a reload regenerates nothing");
    let (_, p) = login_with_code(&app, "alice", &new_codes[0]).await;
    assert!(p.redirects_to("/"), "the codes shown are the ones that work");
}

/// The setup page's Cancel drops the pending secret: its code no longer
/// confirms, and 2FA stays off.
#[tokio::test]
async fn the_setup_page_can_be_cancelled() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let uid = app.user("alice").await.id;
    let setup = c.post_follow("/settings/account/mfa/enable", &[]).await;
    assert!(setup.body.contains("id=\"mfa-setup-cancel\""));
    let secret = setup.text_of("mfa-secret").unwrap().replace(' ', "");
    let cancel = c.post("/settings/account/mfa/setup/cancel", &[]).await;
    assert!(cancel.redirects_to("/settings/account/mfa"));
    let tab = c.get("/settings/account/mfa").await;
    assert!(tab.flash().unwrap().contains("cancelled"), "{:?}", tab.flash());
    assert_eq!(tab.text_of("mfa-status").as_deref(), Some("Disabled"));
    assert!(app.credentials(uid).await.is_empty(), "the pending secret is gone");
    assert!(
        c.get("/settings/account/mfa/setup")
            .await
            .redirects_to("/settings/account/mfa")
    );
    let late = c
        .post(
            "/settings/account/mfa/confirm",
            &[("code", &oathtool(&secret, app.clock.now()))],
        )
        .await;
    assert!(late.redirects_to("/settings/account/mfa"));
    assert!(!app.mfa_on("alice").await);
    // Cancel without CSRF token is refused like every POST.
    let p = c.post_raw("/settings/account/mfa/setup/cancel", &[]).await;
    assert_eq!(p.status, StatusCode::FORBIDDEN);
}

/// The Disable page offers the sign-in prompt's recovery-code switch; without
/// JavaScript a link sets the field up for letters.
#[tokio::test]
async fn the_disable_page_switches_the_field_to_recovery_codes() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    let c = &e.client;
    let page = c.get("/settings/account/mfa/disable").await;
    assert!(page.body.contains("id=\"use-recovery-code\""));
    assert!(page.body.contains("inputmode=\"numeric\""));
    assert!(
        page.body
            .contains("href=\"/settings/account/mfa/disable?use=recovery-code\"")
    );
    let recovery = c.get("/settings/account/mfa/disable?use=recovery-code").await;
    assert_eq!(recovery.status, StatusCode::OK);
    assert!(recovery.body.contains("inputmode=\"text\"") && !recovery.body.contains("inputmode=\"numeric\""));
    assert!(recovery.text_of("code-hint").unwrap().contains("recovery codes"));
    let bad = c.get("/settings/account/mfa/disable?use=carrier-pigeon").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(bad.body.contains("role=\"alert\""));
    // A refused recovery code keeps the field set up for letters.
    let wrong = c
        .post("/settings/account/mfa/disable", &[("code", "AAAAA-BBBBB-CCCCC")])
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("inputmode=\"text\""));
    assert!(app.mfa_on("alice").await);
    let off = c.post("/settings/account/mfa/disable", &[("code", &e.codes[0])]).await;
    assert!(off.redirects_to("/settings/account/mfa"));
    assert!(!app.mfa_on("alice").await);
}
