//! Administration, clicked through in Chromium as an administrator would:
//! the Users page, creating a user, resetting a user's 2FA, the 2FA policy,
//! the security log and its filters, the account's Sessions and Security log
//! tabs; then the new user's first sign-in with the temporary password.

use std::sync::Arc;

use thirtyfour::components::SelectElement;
use thirtyfour::prelude::*;

use super::{Mode, Ui, with_browser};
use crate::helpers::{PASSWORD, TestApp, enrol, signed_in};

const CAROL_PASSWORD: &str = "carol's very own passphrase";

#[tokio::test]
async fn browser_administration() {
    let app = Arc::new(TestApp::spawn().await);
    app.create_user("root", true).await;
    let bob = app.create_user("bob", false).await;
    // Bob's 2FA is turned on over HTTP, so the Users page has someone to
    // reset (the click-through of enrolment is the journey's job).
    enrol(&app, signed_in(&app, "bob").await).await;
    let base = app.base.clone();
    with_browser(
        "admin",
        &base,
        Mode::Default,
        move |ui| async move { walk(&ui, bob).await },
    )
    .await;
}

async fn sign_in(ui: &Ui, username: &str, password: &str) -> WebDriverResult<()> {
    ui.el("login-submit").await?;
    ui.type_into("username", username).await?;
    ui.type_into("password", password).await?;
    ui.click("login-submit").await
}

async fn sign_out(ui: &Ui) -> WebDriverResult<()> {
    ui.click("logout").await?;
    ui.el("login-submit").await?;
    assert_eq!(ui.path().await?, "/login");
    Ok(())
}

/// The first element matching `css`, waiting for it to appear.
async fn css(ui: &Ui, css: &str) -> WebDriverResult<WebElement> {
    ui.driver.query(By::Css(css)).desc(css).first().await
}

/// The text of every cell in column `n` (from 1) of the security log.
async fn log_column(ui: &Ui, n: usize) -> WebDriverResult<Vec<String>> {
    let mut cells = vec![];
    let selector = format!("#security-log tbody tr td:nth-child({n})");
    for td in ui.driver.find_all(By::Css(selector)).await? {
        cells.push(td.text().await?.trim().to_string());
    }
    Ok(cells)
}

async fn walk(ui: &Ui, bob: crate::helpers::UserId) -> WebDriverResult<()> {
    // The administrator signs in: Users and Security log are in the sidebar.
    ui.goto("/login").await?;
    sign_in(ui, "root", PASSWORD).await?;
    ui.el("nav-admin-log").await?;
    assert_eq!(ui.path().await?, "/");
    ui.check_page("admin-dashboard").await?;

    // Users: bob has 2FA on, with all ten recovery codes left.
    ui.click("nav-admin-users").await?;
    ui.el("admin-users").await?;
    assert_eq!(ui.path().await?, "/admin/users");
    let row = ui.text("user-bob").await?;
    assert!(ui.exists("user-root").await?);
    assert!(
        ui.driver
            .find(By::Css("#user-bob .badge-on"))
            .await?
            .is_displayed()
            .await?,
        "{row}"
    );
    assert!(row.contains("10 recovery codes left"), "{row}");
    ui.check_page("users").await?;

    // Create carol: her temporary password is shown once.
    ui.type_into("new-username", "carol").await?;
    ui.click("create-user").await?;
    let temporary = ui.text("temporary-password").await?;
    assert!(temporary.len() >= 20, "{temporary}");
    ui.check_page("user-created").await?;

    // Back to users: carol is listed, still on her temporary password.
    ui.driver.find(By::LinkText("Back to users")).await?.click().await?;
    let row = ui.text("user-carol").await?;
    assert!(row.contains("Temporary password"), "{row}");
    assert!(ui.exists("user-bob").await?);

    // Reset 2FA in bob's row → the confirmation page.
    let reset = css(ui, "#user-bob a[href$='/reset-mfa']").await?;
    assert_eq!(reset.text().await?.trim(), "Reset two-factor authentication");
    let href = reset.attr("href").await?.unwrap_or_default();
    assert_eq!(href, format!("/admin/users/{bob}/reset-mfa"));
    reset.click().await?;
    ui.el("admin-reset-confirm").await?;
    assert_eq!(ui.path().await?, format!("/admin/users/{bob}/reset-mfa"));
    assert!(ui.text("main").await?.contains("bob"));
    ui.check_page("reset-2fa-confirm").await?;

    // Confirm → back on Users: bob's 2FA is off.
    ui.click("admin-reset-confirm").await?;
    ui.el("admin-users").await?;
    assert_eq!(ui.path().await?, "/admin/users");
    let flash = ui.text("flash").await?;
    assert!(flash.contains("now off for bob"), "{flash}");
    let row = ui.text("user-bob").await?;
    assert!(
        ui.driver
            .find(By::Css("#user-bob .badge-off"))
            .await?
            .is_displayed()
            .await?,
        "{row}"
    );
    assert!(!row.contains("recovery codes"), "{row}");
    assert!(
        !ui.driver
            .query(By::Css("#user-bob a[href$='/reset-mfa']"))
            .nowait()
            .exists()
            .await?
    );
    ui.check_page("users-after-reset").await?;

    // The 2FA policy: optional, then required with a 7-day grace period.
    let status = ui.text("policy-status").await?;
    assert!(status.starts_with("Optional"), "{status}");
    let required = css(ui, "input[type='checkbox'][name='required']").await?;
    assert!(!required.is_selected().await?);
    required.click().await?;
    ui.type_into("grace-days", "7").await?;
    ui.click("save-policy").await?;
    // The page after saving has the box ticked in its markup.
    css(ui, "input[name='required'][checked]").await?;
    let status = ui.text("policy-status").await?;
    assert!(status.starts_with("Required for everyone"), "{status}");
    let flash = ui.text("flash").await?;
    assert!(flash.contains("now required"), "{flash}");
    // The administrator has no 2FA either: the banner is theirs too.
    assert!(ui.exists("policy-notice").await?);
    ui.check_page("policy-required").await?;

    // The security log: everyone's events.
    ui.click("nav-admin-log").await?;
    ui.el("security-log").await?;
    assert_eq!(ui.path().await?, "/admin/security-log");
    let users = log_column(ui, 2).await?;
    assert!(users.iter().any(|u| u == "root"), "{users:?}");
    assert!(users.iter().any(|u| u == "bob"), "{users:?}");
    ui.check_page("security-log").await?;

    // Filter by user bob (all events): only rows about bob.
    ui.type_into("filter-user", "bob").await?;
    SelectElement::new(&ui.el("filter-kind").await?)
        .await?
        .select_by_value("")
        .await?;
    css(ui, "form.filters button[type='submit']").await?.click().await?;
    css(ui, "#filter-user[value='bob']").await?;
    let users = log_column(ui, 2).await?;
    assert!(!users.is_empty());
    assert!(users.iter().all(|u| u == "bob"), "{users:?}");
    let events = log_column(ui, 3).await?;
    for event in [
        "Two-factor authentication turned on",
        "Two-factor authentication reset by an administrator",
    ] {
        assert!(events.iter().any(|e| e.starts_with(event)), "{event}: {events:?}");
    }
    ui.check_page("security-log-bob").await?;

    // …and by the kind of event: the one reset.
    SelectElement::new(&ui.el("filter-kind").await?)
        .await?
        .select_by_value("mfa_reset")
        .await?;
    css(ui, "form.filters button[type='submit']").await?.click().await?;
    css(ui, "#filter-kind option[value='mfa_reset'][selected]").await?;
    assert_eq!(ui.el("filter-user").await?.value().await?.as_deref(), Some("bob"));
    assert_eq!(log_column(ui, 2).await?, vec!["bob".to_string()]);
    let events = log_column(ui, 3).await?;
    assert_eq!(events.len(), 1);
    assert!(
        events[0].starts_with("Two-factor authentication reset by an administrator"),
        "{events:?}"
    );
    // The count only: the sentence around it is the template's to word.
    assert!(ui.text("log-total").await?.starts_with("1 event"));
    ui.check_page("security-log-bob-reset").await?;

    // Settings → My account settings → Sessions: this browser, marked.
    ui.click("nav-settings").await?;
    ui.click("nav-account-settings").await?;
    ui.click("tab-sessions").await?;
    ui.el("session-current").await?;
    assert_eq!(ui.path().await?, "/settings/account/sessions");
    assert!(ui.text("session-current").await?.contains("this session"));
    assert!(ui.el("sessions").await?.is_displayed().await?);
    ui.check_page("sessions").await?;

    // The account's own security log: root's events, no User column.
    ui.click("tab-security-log").await?;
    ui.el("security-log").await?;
    assert_eq!(ui.path().await?, "/settings/account/security-log");
    let events = log_column(ui, 2).await?;
    for event in ["Signed in", "Two-factor authentication policy changed"] {
        assert!(events.iter().any(|e| e.starts_with(event)), "{event}: {events:?}");
    }
    ui.check_page("my-security-log").await?;

    // Carol's first sign-in: the temporary password leads only to the
    // password form.
    sign_out(ui).await?;
    sign_in(ui, "carol", &temporary).await?;
    ui.el("password-submit").await?;
    assert_eq!(ui.path().await?, "/settings/account/password");
    let flash = ui.text("flash").await?;
    assert!(flash.contains("temporary password"), "{flash}");
    ui.check_page("choose-password").await?;
    ui.type_into("current_password", &temporary).await?;
    ui.type_into("new_password", CAROL_PASSWORD).await?;
    ui.type_into("new_password_confirm", CAROL_PASSWORD).await?;
    ui.click("password-submit").await?;
    let flash = css(ui, "#flash.flash-success").await?.text().await?;
    assert!(flash.contains("password was changed"), "{flash}");
    assert_eq!(ui.path().await?, "/settings/account/password");
    ui.check_page("password-chosen").await?;

    // The dashboard now: the policy wants 2FA, within the grace period.
    ui.driver.find(By::LinkText("Dashboard")).await?.click().await?;
    ui.el("security-heading").await?;
    assert_eq!(ui.path().await?, "/");
    let notice = ui.text("policy-notice").await?;
    assert!(notice.contains("requires two-factor authentication"), "{notice}");
    assert!(notice.contains("before"), "{notice}");
    ui.check_page("dashboard-policy-notice").await?;
    Ok(())
}
