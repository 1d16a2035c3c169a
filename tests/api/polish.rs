//! Messages that fit the moment (issue 19, items 1–3): Copied after new
//! codes, a wrong recovery code, a session ended by an administrator, a
//! refusal that names a user, the previous sign-in — and one vocabulary in
//! every template.

use latchkey::web::format::format_time;
use reqwest::StatusCode;

use crate::helpers::*;

const FIRST_ENABLE: &str = "Two-factor authentication is on. From now on, signing in asks for a code from your app.";
const CLOCK_HINT: &str = "30 seconds";
const WRONG_RECOVERY: &str = "That recovery code was not accepted.";
const MFA_TAB: &str = "/settings/account/mfa";
const CODES_REPLACED: &str = "Your new recovery codes are ready. The earlier ones no longer work.";
/// The same words: the holder of an ended session's cookie is not told
/// that two-factor authentication is off now (it may be a thief's copy).
const ENDED_BY_MFA_RESET: &str = ENDED_BY_ADMINISTRATOR;
const ENDED_BY_ADMINISTRATOR: &str = "Your session was ended by an administrator. Sign in again.";

/// A page, or where its redirect leads (a POST may answer either way).
async fn landed(c: &TestClient, p: Page) -> Page {
    match (p.status, p.location.as_deref()) {
        (StatusCode::SEE_OTHER, Some(to)) => c.get(to).await,
        _ => p,
    }
}

/// A well-formed recovery code that is none of `codes`.
fn stranger_code(codes: &[String]) -> String {
    let candidate = "ABCDE-FGHJK-LMNPQ".to_string();
    assert!(!codes.contains(&candidate));
    candidate
}

#[tokio::test]
async fn copied_after_new_codes_says_so_not_the_first_enable_message() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    let tab = e.client.get(MFA_TAB).await;
    assert_eq!(tab.flash().as_deref(), Some(FIRST_ENABLE), "the first set");

    let generation = attr_after(&tab.body, "name=\"generation\" value=\"").expect("the regenerate form");
    let posted = e
        .client
        .post("/settings/account/mfa/recovery-codes", &[("generation", &generation)])
        .await;
    let shown = landed(&e.client, posted).await;
    assert_eq!(shown.status, StatusCode::OK, "{:?}", shown.flash());
    assert_eq!(list_items(&shown.body, "recovery-codes").len(), 10);
    let done = e.client.post("/settings/account/mfa/recovery-codes/copied", &[]).await;
    assert!(done.redirects_to(MFA_TAB));
    let tab = e.client.get(MFA_TAB).await;
    let flash = tab.flash().expect("a message after Copied");
    assert_eq!(flash, CODES_REPLACED);
    assert!(!flash.contains("From now on"), "{flash}");

    // Copied again (a second click): nothing to say, and not the first-enable message.
    let again = e.client.post("/settings/account/mfa/recovery-codes/copied", &[]).await;
    assert!(again.redirects_to(MFA_TAB));
    assert_eq!(e.client.get(MFA_TAB).await.flash(), None);
}

#[tokio::test]
async fn copied_after_a_key_as_the_first_factor_names_the_key() {
    let app = TestApp::spawn_with_keys().await;
    app.create_user("alice", false).await;
    let c = signed_in(&app, "alice").await;
    let mut key = crate::webauthn::soft::SoftKey::new(1, &app.base);
    let (status, done) = crate::webauthn::add_key(&c, &mut key, "YubiKey").await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let shown = c.get("/settings/account/mfa/recovery-codes/new").await;
    assert_eq!(list_items(&shown.body, "recovery-codes").len(), 10);
    assert!(
        c.post("/settings/account/mfa/recovery-codes/copied", &[])
            .await
            .redirects_to(MFA_TAB)
    );
    assert_eq!(
        c.get(MFA_TAB).await.flash().as_deref(),
        Some("Two-factor authentication is on. From now on, signing in asks for your security key or passkey.")
    );
}

#[tokio::test]
async fn a_wrong_recovery_code_gets_a_recovery_code_message() {
    let app = TestApp::spawn().await;
    app.create_user("alice", false).await;
    let e = enrol(&app, signed_in(&app, "alice").await).await;
    let stranger = stranger_code(&e.codes);
    app.clock.advance(30);

    // At the code prompt: a wrong TOTP code gets the clock hint, a wrong
    // recovery code (any case, spaces or dashes) gets its own message.
    let (c, p) = login_with_code(&app, "alice", &wrong_code(&e.secret, app.clock.now())).await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    assert!(p.flash().unwrap().contains(CLOCK_HINT), "{:?}", p.flash());
    for typed in [stranger.clone(), stranger.to_lowercase().replace('-', " ")] {
        let p = c.post("/login/two-factor", &[("code", &typed)]).await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED);
        let flash = p.flash().unwrap();
        assert!(flash.starts_with(WRONG_RECOVERY), "{typed}: {flash}");
        assert!(!flash.contains(CLOCK_HINT), "{typed}: {flash}");
    }

    // A zero for an O: not a code at all (not counted), and it says which
    // characters a recovery code never has.
    let typo = "ABCDE-FGHJK-LMN0Q";
    let p = c.post("/login/two-factor", &[("code", typo)]).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.flash().unwrap().contains("(0, 1, I or O)"), "{:?}", p.flash());

    // On the Disable page (the enrolling session's password is fresh).
    let form = e.client.get("/settings/account/mfa/disable").await;
    assert_eq!(form.status, StatusCode::OK);
    let p = e.client.post("/settings/account/mfa/disable", &[("code", typo)]).await;
    assert_eq!(p.status, StatusCode::BAD_REQUEST);
    assert!(p.flash().unwrap().contains("(0, 1, I or O)"), "{:?}", p.flash());
    let p = e
        .client
        .post("/settings/account/mfa/disable", &[("code", &stranger)])
        .await;
    assert_eq!(p.status, StatusCode::UNAUTHORIZED);
    let flash = p.flash().unwrap();
    assert!(flash.starts_with(WRONG_RECOVERY), "{flash}");
    assert!(!flash.contains(CLOCK_HINT), "{flash}");
    let p = e
        .client
        .post(
            "/settings/account/mfa/disable",
            &[("code", &wrong_code(&e.secret, app.clock.now()))],
        )
        .await;
    assert!(p.flash().unwrap().contains(CLOCK_HINT), "{:?}", p.flash());
    assert!(app.mfa_on("alice").await);
}

/// Where a browser whose session was ended lands: the sign-in page, and
/// its message (if any).
async fn signed_out_message(c: &TestClient) -> Option<String> {
    let home = c.get("/").await;
    assert_eq!(home.status, StatusCode::SEE_OTHER, "no longer signed in");
    let to = home.location.expect("a redirect");
    assert!(to.starts_with("/login"), "{to}");
    let login = c.get(&to).await;
    assert_eq!(login.status, StatusCode::OK);
    login.flash()
}

#[tokio::test]
async fn a_session_ended_by_an_administrator_is_told_why_and_nobody_else_is() {
    let app = TestApp::spawn().await;
    app.create_user("root", true).await;
    let root = signed_in(&app, "root").await;
    let bob = app.create_user("bob", false).await;
    let e = enrol(&app, signed_in(&app, "bob").await).await;
    let stranger = app.client();
    assert_eq!(stranger.get("/login").await.status, StatusCode::OK);

    let p = root.post(&format!("/admin/users/{bob}/reset-mfa"), &[]).await;
    assert!(p.redirects_to("/admin/users"));
    assert!(!app.mfa_on("bob").await);
    // The ended session belongs to nobody now.
    assert!(app.auth.sessions_of(bob).await.unwrap().is_empty());

    assert_eq!(signed_out_message(&e.client).await.as_deref(), Some(ENDED_BY_MFA_RESET));
    // Said once; a fresh browser, or one that was already signed out, hears nothing.
    assert_eq!(signed_out_message(&e.client).await, None);
    assert_eq!(signed_out_message(&stranger).await, None);
    assert_eq!(signed_out_message(&app.client()).await, None);
    // The same browser signs in again (2FA is off now).
    assert!(e.client.login("bob", PASSWORD).await.redirects_to("/"));
    assert_eq!(e.client.get("/").await.status, StatusCode::OK);

    // `latchkey user reset-mfa` (the same service call, from the command
    // line): with 2FA on, and with it already off.
    let carol = app.create_user("carol", false).await;
    let e = enrol(&app, signed_in(&app, "carol").await).await;
    let dave = app.create_user("dave", false).await;
    let d = signed_in(&app, "dave").await;
    for id in [carol, dave] {
        app.auth
            .reset_mfa(latchkey::auth::Actor::CommandLine, id)
            .await
            .unwrap()
            .expect("the user exists");
    }
    assert_eq!(signed_out_message(&e.client).await.as_deref(), Some(ENDED_BY_MFA_RESET));
    assert_eq!(signed_out_message(&d).await.as_deref(), Some(ENDED_BY_ADMINISTRATOR));
    // An ordinary sign-out says only that.
    let f = signed_in(&app, "dave").await;
    f.post("/logout", &[]).await;
    assert_eq!(signed_out_message(&f).await, None);
}

#[tokio::test]
async fn messages_that_name_a_user_start_with_a_capital() {
    let app = TestApp::spawn().await;
    let root_id = app.create_user("root", true).await;
    let root = signed_in(&app, "root").await;
    let bob = app.create_user("bob", false).await;
    let starts_upper = |s: &str| s.chars().next().is_some_and(char::is_uppercase);

    let p = root
        .post(&format!("/admin/users/{root_id}/admin"), &[("admin", "0")])
        .await;
    assert_eq!(p.status, StatusCode::CONFLICT);
    let flash = p.flash().unwrap();
    assert!(starts_upper(&flash), "{flash}");
    assert!(
        flash.contains("root") && flash.contains("last administrator"),
        "{flash}"
    );

    for (value, words) in [("1", "granted to bob"), ("0", "removed from bob")] {
        let p = root
            .post(&format!("/admin/users/{bob}/admin"), &[("admin", value)])
            .await;
        assert!(p.redirects_to("/admin/users"));
        let flash = root.get("/admin/users").await.flash().unwrap();
        assert!(starts_upper(&flash), "{flash}");
        assert!(flash.contains(words), "{flash}");
    }
}

const FIREFOX_LINUX: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0";
const CHROME_WINDOWS: &str =
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

#[tokio::test]
async fn the_dashboard_shows_the_previous_sign_in_not_this_one() {
    let app = TestApp::spawn_with(|c| c.trusted_proxies = vec!["127.0.0.1".parse().unwrap()]).await;
    app.create_user("alice", false).await;
    let browser =
        |ua: &str, from: &str| TestClient::with_headers(&app.base, &[("user-agent", ua), ("x-forwarded-for", from)]);

    let first = browser(FIREFOX_LINUX, "203.0.113.7");
    let first_at = app.clock.now();
    assert!(first.login("alice", PASSWORD).await.redirects_to("/"));
    let home = first.get("/").await;
    assert_eq!(
        home.text_of("previous-sign-in").as_deref(),
        Some("This is your first sign-in.")
    );
    assert_eq!(home.text_of("dashboard-mfa-status").as_deref(), Some("Disabled"));
    let profile = first.get("/settings/account").await;
    assert!(
        profile
            .text_of("profile-previous-sign-in")
            .unwrap()
            .contains("first sign-in"),
        "{:?}",
        profile.text_of("profile-previous-sign-in")
    );

    // Ten minutes later (the first session is still live: 30 minutes idle).
    app.clock.advance(600);
    let second = browser(CHROME_WINDOWS, "198.51.100.9");
    let second_at = app.clock.now();
    assert!(second.login("alice", PASSWORD).await.redirects_to("/"));
    let expected = format!("{} · Firefox on Linux · 203.0.113.7", format_time(first_at));
    let home = second.get("/").await;
    assert_eq!(
        home.text_of("previous-sign-in"),
        Some(format!("Previous sign-in: {expected}"))
    );
    assert!(!home.body.contains("This is your first sign-in."));
    let profile = second.get("/settings/account").await;
    assert_eq!(profile.text_of("profile-previous-sign-in"), Some(expected));

    // Each session keeps the sign-in before its own.
    assert_eq!(
        first.get("/").await.text_of("previous-sign-in").as_deref(),
        Some("This is your first sign-in.")
    );
    app.clock.advance(60);
    first.post("/logout", &[]).await;
    assert!(first.login("alice", PASSWORD).await.redirects_to("/"));
    assert_eq!(
        first.get("/").await.text_of("previous-sign-in"),
        Some(format!(
            "Previous sign-in: {} · Chrome on Windows · 198.51.100.9",
            format_time(second_at)
        ))
    );
}

// ------------------------------------------------------------ vocabulary

/// What a person reads in a template: the text between tags, and the
/// attributes that are shown or spoken; askama's tags and expressions gone.
fn visible_text(template: &str) -> String {
    let mut s = template.to_string();
    for (open, close) in [("{%", "%}"), ("{{", "}}"), ("{#", "#}")] {
        while let Some(a) = s.find(open) {
            let b = s[a..].find(close).map_or(s.len(), |b| a + b + close.len());
            s.replace_range(a..b, " ");
        }
    }
    let mut out = String::new();
    let mut rest = s.as_str();
    while let Some(a) = rest.find('<') {
        out.push_str(&rest[..a]);
        let b = rest[a..].find('>').map_or(rest.len(), |b| a + b + 1);
        let tag = &rest[a..b];
        for attr in ["title=\"", "placeholder=\"", "aria-label=\"", "alt=\"", "-hint=\""] {
            let mut t = tag;
            while let Some(i) = t.find(attr) {
                let v = &t[i + attr.len()..];
                let end = v.find('"').unwrap_or(v.len());
                out.push(' ');
                out.push_str(&v[..end]);
                out.push(' ');
                t = &v[end..];
            }
        }
        out.push(' ');
        rest = &rest[b..];
    }
    out.push_str(rest);
    out
}

/// Words the style guide (docs/STYLE-GUIDE.md) keeps out of what people
/// read, except where SPEC fixes them.
fn vocabulary_problems(text: &str) -> Vec<String> {
    let mut problems = vec![];
    let allowed = text
        .replace("Disable MFA", "")
        .replace("Multi-factor authentication", "");
    for (word, why) in [
        ("2FA", "say “two-factor authentication”"),
        (
            "MFA",
            "say “two-factor authentication” (only the Disable MFA button keeps it)",
        ),
        (
            "ulti-factor",
            "say “two-factor authentication” (only the tab keeps its name)",
        ),
        ("second factor", "say “second step”"),
        ("Two-factor ", "“two-factor” goes with “authentication”"),
        ("two-factor ", "“two-factor” goes with “authentication”"),
    ] {
        for (i, _) in allowed.match_indices(word) {
            let after = &allowed[i + word.len()..];
            if word.ends_with(' ') && after.starts_with("authentication") {
                continue;
            }
            problems.push(format!(
                "“{}…”: {why}",
                &allowed[i..(i + 40).min(allowed.len())].trim_end()
            ));
        }
    }
    for w in allowed.split_whitespace() {
        let w = w.trim_matches(|c: char| !c.is_alphanumeric());
        if w.contains('\'') {
            problems.push(format!("“{w}”: use the curly apostrophe ’"));
        }
    }
    problems
}

#[test]
fn the_vocabulary_check_catches_what_it_should() {
    // The page this issue quoted, before: each of these is caught.
    for bad in [
        "<span class=\"badge badge-on\">2FA on</span>",
        "<p>Turn MFA off.</p>",
        "<p>Your profile and multi-factor authentication.</p>",
        "<p>Changes to your account's security.</p>",
        "<p>It asks for the second factor again.</p>",
        "<p>Two-factor codes locked.</p>",
        "<input placeholder=\"Your 2FA code\">",
    ] {
        assert!(!vocabulary_problems(&visible_text(bad)).is_empty(), "{bad}");
    }
    // What SPEC fixes, and what the guide asks for, passes.
    for good in [
        "<a id=\"tab-mfa\" href=\"/settings/account/mfa\">Multi-factor authentication</a>",
        "<a id=\"mfa-disable\" class=\"button danger\" href=\"/settings/account/mfa/disable\">Disable MFA</a>",
        "<p>Two-factor authentication is on. Don’t tick this.</p>",
        "{% if mfa_enabled %}<p class=\"{{ f.class() }}\">Enabled</p>{% endif %}",
    ] {
        assert_eq!(vocabulary_problems(&visible_text(good)), Vec::<String>::new(), "{good}");
    }
}

#[test]
fn every_template_uses_one_vocabulary() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
    let mut files = vec![];
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
        } else {
            files.push(path);
        }
    }
    assert!(files.len() > 20, "templates found: {}", files.len());
    let mut problems = vec![];
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        // The HTML email's inline styles hold no words.
        let text = text.replace("'Segoe UI'", "");
        for p in vocabulary_problems(&visible_text(&text)) {
            problems.push(format!("{}: {p}", path.file_name().unwrap().to_string_lossy()));
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn messages_in_the_code_use_one_vocabulary() {
    // The user-visible strings of the web handlers, the service layer, the
    // security log's words and the emails' words (not the command line).
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![
        root.join("core/notice.rs"),
        root.join("db/events.rs"),
        root.join("web/session.rs"),
    ];
    for dir in ["web/routes", "auth"] {
        files.extend(std::fs::read_dir(root.join(dir)).unwrap().map(|e| e.unwrap().path()));
    }
    // Unit tests, not messages.
    files.retain(|f| !f.ends_with("auth/tests.rs"));
    let mut problems = vec![];
    for path in files {
        let source = std::fs::read_to_string(&path).unwrap();
        for (n, line) in source.lines().enumerate() {
            let line = line.replace("\\\"", "");
            let code = line.trim_start();
            if code.starts_with("//") || code.starts_with("#[") || code.contains("tracing::") {
                continue;
            }
            // The string literals on the line.
            for (i, literal) in line.split('"').enumerate() {
                if i % 2 == 1 && literal.contains(' ') {
                    for p in vocabulary_problems(literal) {
                        problems.push(format!("{}:{}: {p}", path.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
