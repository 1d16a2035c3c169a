//! The seed's journeys, clicked through in Chromium: first-run setup, enable
//! 2FA, sign in with a code and with a recovery code, remember the browser,
//! sudo mode, disable 2FA.
//! With JavaScript, without it, and in the dark colour scheme.

use std::sync::Arc;

use thirtyfour::prelude::*;

use super::{Mode, Ui, with_browser};
use crate::helpers::{TestApp, oathtool, wrong_code};

const ADMIN: &str = "root";
const ADMIN_PASSWORD: &str = "a long and quite good passphrase";

#[tokio::test]
async fn browser_journey_with_javascript() {
    journey(Mode::Default).await;
}

#[tokio::test]
async fn browser_journey_without_javascript() {
    journey(Mode::NoJs).await;
}

/// The same journey in the dark colour scheme, so axe checks its contrast.
#[tokio::test]
async fn browser_journey_in_the_dark_theme() {
    journey(Mode::Dark).await;
}

async fn journey(mode: Mode) {
    let app = Arc::new(TestApp::spawn().await);
    let setup_url = app.setup_url.clone().expect("an empty database arms a setup link");
    let base = app.base.clone();
    with_browser("journey", &base, mode, move |ui| async move {
        walk(&app, &ui, &setup_url).await
    })
    .await;
}

async fn sign_in(ui: &Ui, password: &str) -> WebDriverResult<()> {
    ui.el("login-submit").await?;
    ui.type_into("username", ADMIN).await?;
    ui.type_into("password", password).await?;
    ui.click("login-submit").await
}

async fn sign_out(ui: &Ui) -> WebDriverResult<()> {
    ui.click("logout").await?;
    ui.el("login-submit").await?;
    assert_eq!(ui.path().await?, "/login");
    Ok(())
}

/// From the dashboard: Settings → My account settings → Multi-factor authentication.
async fn open_mfa_tab(ui: &Ui) -> WebDriverResult<()> {
    ui.click("nav-settings").await?;
    ui.click("nav-account-settings").await?;
    ui.click("tab-mfa").await?;
    ui.el("mfa-status").await?;
    assert_eq!(ui.path().await?, "/settings/account/mfa");
    Ok(())
}

async fn walk(app: &TestApp, ui: &Ui, setup_url: &str) -> WebDriverResult<()> {
    // First start: the one-time link creates the administrator.
    ui.driver.goto(setup_url).await?;
    let dark: bool = ui
        .driver
        .execute("return matchMedia('(prefers-color-scheme: dark)').matches;", Vec::new())
        .await?
        .convert()?;
    assert_eq!(dark, ui.mode == Mode::Dark, "the colour scheme this run is about");
    ui.el("setup-submit").await?;
    ui.check_page("first-run-setup").await?;
    ui.type_into("username", ADMIN).await?;
    ui.type_into("password", ADMIN_PASSWORD).await?;
    ui.type_into("password_confirm", ADMIN_PASSWORD).await?;
    ui.click("setup-submit").await?;
    ui.el("login-submit").await?;
    assert!(ui.text("flash").await?.contains("created"), "setup says it worked");
    ui.check_page("login").await?;

    // Log in (2FA off): straight to the dashboard.
    sign_in(ui, ADMIN_PASSWORD).await?;
    ui.el("nav-settings").await?;
    assert_eq!(ui.path().await?, "/");
    ui.check_page("dashboard").await?;

    // Settings → My account settings → Multi-factor authentication.
    ui.click("nav-settings").await?;
    ui.el("nav-account-settings").await?;
    ui.check_page("settings").await?;
    ui.click("nav-account-settings").await?;
    ui.el("tab-mfa").await?;
    ui.check_page("account-settings").await?;
    ui.click("tab-mfa").await?;
    assert_eq!(ui.text("mfa-status").await?, "Disabled");
    ui.check_page("mfa-disabled").await?;

    // Enable → the QR code and the secret as text.
    ui.click("mfa-enable").await?;
    let grouped = ui.text("mfa-secret").await?;
    let qr = ui.el("mfa-qr").await?;
    assert_eq!(qr.tag_name().await?, "svg");
    assert!(qr.is_displayed().await?, "the QR code is visible");
    ui.check_page("mfa-setup").await?;
    let secret = grouped.replace(' ', "");
    assert_eq!(secret.len(), 32, "{grouped}");

    // Type a code computed by oathtool → Confirm → ten recovery codes.
    ui.type_into("code", &oathtool(&secret, app.clock.now())).await?;
    ui.click("mfa-confirm").await?;
    ui.el("recovery-codes-copied").await?;
    let mut codes = vec![];
    for li in ui.driver.find_all(By::Css("#recovery-codes li")).await? {
        codes.push(li.text().await?.trim().to_string());
    }
    assert_eq!(codes.len(), 10, "{codes:?}");
    // The copy and print buttons are JavaScript's; the download link is not.
    let copy = ui.driver.find(By::Css("[data-copy-target='recovery-codes']")).await?;
    assert_eq!(copy.is_displayed().await?, ui.mode != Mode::NoJs);
    assert!(ui.el("recovery-codes-download").await?.is_displayed().await?);
    ui.check_page("recovery-codes").await?;

    // Copied → the tab says Enabled, ten codes left.
    ui.click("recovery-codes-copied").await?;
    assert_eq!(ui.text("mfa-status").await?, "Enabled");
    assert_eq!(ui.text("recovery-codes-remaining").await?, "10");
    assert!(ui.exists("mfa-disable").await?);
    ui.check_page("mfa-enabled").await?;

    // Log out; log in with a TOTP code (from a new time step: the
    // confirming step is spent). A wrong code first: the error is shown.
    sign_out(ui).await?;
    app.clock.advance(30);
    sign_in(ui, ADMIN_PASSWORD).await?;
    ui.el("two-factor-submit").await?;
    assert_eq!(ui.path().await?, "/login/two-factor");
    ui.check_page("two-factor").await?;
    ui.type_into("code", &wrong_code(&secret, app.clock.now())).await?;
    ui.click("two-factor-submit").await?;
    let flash = ui.el("flash").await?;
    assert_eq!(flash.attr("role").await?.as_deref(), Some("alert"));
    let message = flash.text().await?;
    assert!(message.contains("not accepted"), "{message}");
    ui.check_page("two-factor-wrong-code").await?;
    ui.type_into("code", &oathtool(&secret, app.clock.now())).await?;
    ui.click("two-factor-submit").await?;
    ui.el("nav-settings").await?;
    assert_eq!(ui.path().await?, "/");
    ui.check_page("dashboard-with-2fa").await?;

    // Log out; log in with a recovery code: one fewer left.
    sign_out(ui).await?;
    sign_in(ui, ADMIN_PASSWORD).await?;
    ui.el("two-factor-submit").await?;
    ui.driver
        .find(By::Css("#use-recovery-code summary"))
        .await?
        .click()
        .await?;
    ui.check_page("two-factor-recovery").await?;
    ui.type_into("code", &codes[0]).await?;
    ui.click("two-factor-submit").await?;
    ui.el("nav-settings").await?;
    open_mfa_tab(ui).await?;
    assert_eq!(ui.text("recovery-codes-remaining").await?, "9");

    // Remember this browser: ticked at the code prompt, the password alone
    // signs in here afterwards, and the Sessions tab lists it.
    sign_out(ui).await?;
    app.clock.advance(30);
    sign_in(ui, ADMIN_PASSWORD).await?;
    ui.el("two-factor-submit").await?;
    let label = ui
        .driver
        .find(By::Css("label[for='remember-browser']"))
        .await?
        .text()
        .await?;
    assert!(label.contains("Remember this browser for 30 days"), "{label}");
    ui.click("remember-browser").await?;
    ui.type_into("code", &oathtool(&secret, app.clock.now())).await?;
    ui.click("two-factor-submit").await?;
    ui.el("nav-settings").await?;
    ui.click("nav-settings").await?;
    ui.click("nav-account-settings").await?;
    ui.click("tab-sessions").await?;
    ui.el("remembered-browsers").await?;
    let items = ui.driver.find_all(By::Css("#remembered-browsers li")).await?;
    assert_eq!(items.len(), 1);
    assert!(items[0].text().await?.contains("this browser"));
    ui.check_page("sessions-remembered").await?;
    sign_out(ui).await?;
    sign_in(ui, ADMIN_PASSWORD).await?;
    ui.el("nav-settings").await?;
    assert_eq!(ui.path().await?, "/", "no code asked on a remembered browser");
    open_mfa_tab(ui).await?;

    // Eleven minutes later the password is stale: Disable MFA asks for it
    // first (sudo mode), then shows the confirmation page.
    app.clock.advance(11 * 60);
    ui.click("mfa-disable").await?;
    ui.el("sudo-submit").await?;
    ui.check_page("sudo-prompt").await?;
    assert!(!ui.exists("mfa-disable-confirm").await?);
    ui.type_into("password", ADMIN_PASSWORD).await?;
    ui.click("sudo-submit").await?;
    ui.el("mfa-disable-confirm").await?;
    ui.check_page("mfa-disable").await?;

    // Confirm with a current code → 2FA off.
    ui.type_into("code", &oathtool(&secret, app.clock.now())).await?;
    ui.click("mfa-disable-confirm").await?;
    ui.el("mfa-enable").await?;
    assert_eq!(ui.text("mfa-status").await?, "Disabled");
    ui.check_page("mfa-disabled-again").await?;

    // Log out; the password alone is enough again.
    sign_out(ui).await?;
    sign_in(ui, ADMIN_PASSWORD).await?;
    ui.el("nav-settings").await?;
    assert_eq!(ui.path().await?, "/");
    ui.check_page("dashboard-password-only").await?;
    Ok(())
}
