//! Issue 19's polish, checked in Chromium: no resubmits (Post/Redirect/Get,
//! recovery codes shown once), the setup page's Cancel, the Disable page's
//! recovery-code switch, the Users page's actions, a tab strip that does not
//! shift, the 404 page of a signed-in user, and every page at 390 px wide
//! (no sideways scrolling, one-line timestamps). Each page is audited by
//! axe and photographed; `scripts/screenshots` keeps the phone pictures.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use thirtyfour::prelude::*;

use super::webauthn::raw;
use super::{Mode, Ui, with_browser};
use crate::helpers::{PASSWORD, TestApp, enrol, oathtool, signed_in};

#[tokio::test]
async fn browser_polish() {
    let app = Arc::new(TestApp::spawn().await);
    app.create_user("root", true).await;
    app.create_user("bob", false).await;
    // Bob has 2FA on (a Reset two-factor authentication button and timestamps on the Users page).
    enrol(&app, signed_in(&app, "bob").await).await;
    let base = app.base.clone();
    with_browser("polish", &base, Mode::Default, move |ui| async move {
        walk(&app, &ui).await
    })
    .await;
}

const TABS: [&str; 5] = [
    "/settings/account",
    "/settings/account/password",
    "/settings/account/mfa",
    "/settings/account/sessions",
    "/settings/account/security-log",
];

/// A Chrome DevTools Protocol command, through chromedriver.
async fn cdp(ui: &Ui, cmd: &str, params: Value) -> WebDriverResult<Value> {
    raw(
        &ui.driver,
        http::Method::POST,
        "/goog/cdp/execute".into(),
        Some(json!({ "cmd": cmd, "params": params })),
    )
    .await
}

async fn js<T: serde::de::DeserializeOwned>(ui: &Ui, script: &str) -> WebDriverResult<T> {
    ui.driver.execute(script, Vec::new()).await?.convert()
}

/// Wait (up to 30 s) until `condition`, a JavaScript expression, is true.
async fn wait_for(ui: &Ui, condition: &str) -> WebDriverResult<()> {
    let script = format!("return !!({condition});");
    for _ in 0..300 {
        if js::<bool>(ui, &script).await? {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("still not true after 30 s: {condition}");
}

/// A phone's viewport (390 × 844 CSS px, as an iPhone 12–15), or back to
/// the desktop window.
async fn phone(ui: &Ui, on: bool) -> WebDriverResult<()> {
    if on {
        cdp(
            ui,
            "Emulation.setDeviceMetricsOverride",
            json!({ "width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": true }),
        )
        .await?;
        assert_eq!(js::<i64>(ui, "return window.innerWidth;").await?, 390);
    } else {
        cdp(ui, "Emulation.clearDeviceMetricsOverride", json!({})).await?;
    }
    Ok(())
}

/// Nothing sticks out sideways, and no timestamp takes more than one line.
async fn fits_a_phone(ui: &Ui) -> WebDriverResult<()> {
    let path = ui.path().await?;
    let (scroll, inner): (i64, i64) =
        js(ui, "return [document.documentElement.scrollWidth, window.innerWidth];").await?;
    assert!(scroll <= inner, "{path} scrolls sideways at 390 px: {scroll} > {inner}");
    let lines: Vec<(String, i64)> = js(
        ui,
        "return Array.from(document.querySelectorAll('.time')).map(function (el) { \
           var r = document.createRange(); r.selectNodeContents(el); \
           var tops = new Set(Array.from(r.getClientRects()).map(function (b) { return Math.round(b.top); })); \
           return [el.textContent.trim(), tops.size]; });",
    )
    .await?;
    for (text, n) in &lines {
        assert!(*n <= 1, "{path}: the timestamp {text:?} wraps onto {n} lines");
    }
    Ok(())
}

/// Where every account tab sits in the strip, and how wide it is.
async fn tab_boxes(ui: &Ui) -> WebDriverResult<Vec<(f64, f64, f64)>> {
    js(
        ui,
        "var strip = document.querySelector('nav.tabs').getBoundingClientRect(); \
         return Array.from(document.querySelectorAll('nav.tabs a')).map(function (a) { \
           var r = a.getBoundingClientRect(); return [r.left - strip.left, r.top - strip.top, r.width]; });",
    )
    .await
}

/// Visit every account tab: each tab keeps its place and width whichever
/// one is current (and so bold).
async fn tabs_hold_still(ui: &Ui) -> WebDriverResult<()> {
    let mut first: Option<Vec<(f64, f64, f64)>> = None;
    for path in TABS {
        ui.goto(path).await?;
        ui.el("tab-mfa").await?;
        let current: String = js(
            ui,
            "return document.querySelector('nav.tabs a[aria-current]').textContent;",
        )
        .await?;
        assert!(!current.is_empty(), "{path} marks its tab");
        let boxes = tab_boxes(ui).await?;
        assert_eq!(boxes.len(), 5);
        match &first {
            None => first = Some(boxes),
            Some(f) => {
                for (a, b) in f.iter().zip(&boxes) {
                    assert!(
                        (a.0 - b.0).abs() < 0.5 && (a.1 - b.1).abs() < 0.5 && (a.2 - b.2).abs() < 0.5,
                        "the tab strip shifts on {path}: {f:?} vs {boxes:?}"
                    );
                }
            }
        }
    }
    Ok(())
}

async fn walk(app: &TestApp, ui: &Ui) -> WebDriverResult<()> {
    ui.goto("/login").await?;
    ui.el("login-submit").await?;
    ui.type_into("username", "root").await?;
    ui.type_into("password", PASSWORD).await?;
    ui.click("login-submit").await?;
    ui.el("nav-settings").await?;

    // Settings opens My account settings straight away.
    ui.click("nav-settings").await?;
    ui.el("tab-mfa").await?;
    assert_eq!(ui.path().await?, "/settings/account");
    assert!(ui.exists("nav-account-settings").await?);
    ui.goto("/settings").await?;
    ui.el("tab-mfa").await?;
    assert_eq!(ui.path().await?, "/settings/account", "the old address leads there");

    // The tab strip does not move when the bold tab changes.
    tabs_hold_still(ui).await?;

    // A wrong address, signed in: the app's layout, no "Sign in".
    ui.goto("/no/such/page").await?;
    ui.el("not-found-dashboard").await?;
    assert!(ui.exists("nav-settings").await? && ui.exists("logout").await?);
    assert!(ui.text("flash").await?.contains("nothing at this address"));
    let sign_in_links = ui.driver.find_all(By::Css("a[href='/login']")).await?;
    assert!(sign_in_links.is_empty(), "no Sign in link for a signed-in user");
    ui.check_page("not-found").await?;

    // Enable → the setup page at an address of its own; Cancel drops it.
    ui.goto("/settings/account/mfa").await?;
    ui.click("mfa-enable").await?;
    ui.el("mfa-secret").await?;
    assert_eq!(
        ui.path().await?,
        "/settings/account/mfa/setup",
        "a GET page after the POST"
    );
    ui.check_page("mfa-setup-with-cancel").await?;
    ui.click("mfa-setup-cancel").await?;
    ui.el("mfa-status").await?;
    assert_eq!(ui.path().await?, "/settings/account/mfa");
    assert_eq!(ui.text("mfa-status").await?, "Disabled");
    assert!(ui.text("flash").await?.contains("cancelled"));

    // The rest on a phone.
    phone(ui, true).await?;
    tabs_hold_still(ui).await?;
    ui.goto("/settings/account/mfa").await?;
    ui.click("mfa-enable").await?;
    let secret = ui.text("mfa-secret").await?;
    assert_eq!(ui.path().await?, "/settings/account/mfa/setup");
    fits_a_phone(ui).await?;
    ui.check_page("phone-mfa-setup").await?;
    // A reload shows the same setup; it starts nothing new.
    ui.driver.refresh().await?;
    assert_eq!(ui.text("mfa-secret").await?, secret);

    // Confirm → the codes, on a GET page.
    ui.type_into("code", &oathtool(&secret.replace(' ', ""), app.clock.now()))
        .await?;
    ui.click("mfa-confirm").await?;
    ui.el("recovery-codes-copied").await?;
    assert_eq!(ui.path().await?, "/settings/account/mfa/recovery-codes/new");
    let codes = ui.driver.find_all(By::Css("#recovery-codes li")).await?;
    assert_eq!(codes.len(), 10);
    let first_code = codes[0].text().await?;
    // The continue button reads as the next step; the clipboard button says
    // something else when it has copied.
    let next = ui.text("recovery-codes-copied").await?;
    assert!(next.starts_with("Copied") && next.contains("finish setup"), "{next}");
    assert_eq!(ui.text("recovery-codes-copy").await?, "Copy to clipboard");
    cdp(
        ui,
        "Browser.grantPermissions",
        json!({ "origin": ui.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"] }),
    )
    .await?;
    ui.click("recovery-codes-copy").await?;
    wait_for(
        ui,
        "document.getElementById('recovery-codes-copy').textContent === 'Now on your clipboard'",
    )
    .await?;
    fits_a_phone(ui).await?;
    ui.check_page("phone-recovery-codes").await?;
    // A reload does not show them again, and changes nothing.
    ui.driver.refresh().await?;
    ui.el("mfa-status").await?;
    assert_eq!(ui.path().await?, "/settings/account/mfa");
    assert!(!ui.exists("recovery-codes").await?);
    assert!(ui.text("flash").await?.contains("shown only once"));
    assert_eq!(ui.text("mfa-status").await?, "Enabled");
    assert_eq!(ui.text("recovery-codes-remaining").await?, "10");
    let page: String = js(ui, "return document.body.textContent;").await?;
    assert!(!page.contains(&first_code));
    fits_a_phone(ui).await?;
    ui.check_page("phone-mfa-enabled").await?;

    // Regenerate: a GET page too; Copied goes back to the tab.
    ui.click("recovery-codes-regenerate").await?;
    ui.el("recovery-codes-copied").await?;
    assert_eq!(ui.path().await?, "/settings/account/mfa/recovery-codes/new");
    assert!(ui.text("recovery-codes-copied").await?.contains("back to settings"));
    ui.click("recovery-codes-copied").await?;
    ui.el("mfa-status").await?;
    assert_eq!(ui.path().await?, "/settings/account/mfa");

    // Disable: the field switches to a recovery code (letters) like the
    // sign-in prompt's.
    ui.click("mfa-disable").await?;
    ui.el("mfa-disable-confirm").await?;
    let mode = || async { ui.el("code").await?.attr("inputmode").await };
    assert_eq!(mode().await?.as_deref(), Some("numeric"));
    ui.driver
        .find(By::Css("#use-recovery-code summary"))
        .await?
        .click()
        .await?;
    wait_for(
        ui,
        "document.getElementById('code').getAttribute('inputmode') === 'text'",
    )
    .await?;
    assert!(ui.text("code-hint").await?.contains("recovery codes"));
    fits_a_phone(ui).await?;
    ui.check_page("phone-mfa-disable").await?;

    // Every other page fits a phone: tables become labelled rows.
    for (path, step) in [
        ("/", "phone-dashboard"),
        ("/settings/account", "phone-profile"),
        ("/settings/account/sessions", "phone-sessions"),
        ("/settings/account/security-log", "phone-security-log"),
        ("/admin/users", "phone-admin-users"),
        ("/admin/security-log", "phone-admin-security-log"),
        ("/no/such/page", "phone-not-found"),
    ] {
        ui.goto(path).await?;
        ui.el("main").await?;
        fits_a_phone(ui).await?;
        ui.check_page(step).await?;
    }
    // The security log's rows are stacked, each line labelled.
    ui.goto("/admin/security-log").await?;
    ui.el("security-log").await?;
    let (display, label): (String, String) = js(
        ui,
        "var td = document.querySelector('#security-log tbody td'); \
         return [getComputedStyle(td).display, getComputedStyle(td, '::before').content];",
    )
    .await?;
    assert_eq!((display.as_str(), label.as_str()), ("block", "\"Time\""));

    // The Users page on a desktop: the Actions cells line up with their
    // rows, Reset two-factor authentication is as small as the buttons beside it, and the last
    // administrator is not offered Remove admin.
    phone(ui, false).await?;
    ui.goto("/admin/users").await?;
    ui.el("admin-users").await?;
    let offsets: Vec<(f64, f64)> = js(
        ui,
        "return Array.from(document.querySelectorAll('#admin-users tbody tr')).map(function (tr) { \
           var r = tr.getBoundingClientRect(), c = tr.lastElementChild.getBoundingClientRect(); \
           return [c.top - r.top, c.bottom - r.bottom]; });",
    )
    .await?;
    assert_eq!(offsets.len(), 2);
    for (top, bottom) in &offsets {
        assert!(
            top.abs() < 1.0 && bottom.abs() < 1.0,
            "Actions cell off its row: {offsets:?}"
        );
    }
    let heights: Vec<f64> = js(
        ui,
        "return ['#user-bob a.button.small', '#user-bob .make-admin'].map(function (s) { \
           return document.querySelector(s).getBoundingClientRect().height; });",
    )
    .await?;
    assert!(
        (heights[0] - heights[1]).abs() < 1.0,
        "Reset two-factor authentication vs Make admin: {heights:?}"
    );
    assert!(
        ui.driver
            .find_all(By::Css("#user-root .remove-admin"))
            .await?
            .is_empty(),
        "the last administrator cannot be removed, so it is not offered"
    );
    assert!(ui.text("user-root").await?.contains("Only administrator"));
    ui.check_page("admin-users").await?;
    // With a second administrator, either may step down.
    ui.driver.find(By::Css("#user-bob .make-admin")).await?.click().await?;
    // The answer's page (the page before it may have had a flash too).
    let mut offered = 0;
    for _ in 0..100 {
        offered = ui.driver.find_all(By::Css("#admin-users .remove-admin")).await?.len();
        if offered == 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    assert_eq!(offered, 2, "Remove admin offered to both administrators");
    Ok(())
}
