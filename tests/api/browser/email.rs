//! Security emails in Chromium, with and without JavaScript: the Profile
//! tab's address and its verification link, then "This wasn't me" from a
//! real message (through the SMTP test server), and the new password the
//! next sign-in asks for first.

use std::sync::Arc;

use thirtyfour::prelude::*;

use super::{Mode, Ui, with_browser};
use crate::email::sink::Sink;
use crate::helpers::{PASSWORD, TestApp, TestClient};

const NEW_PASSWORD: &str = "a fresh and much better passphrase";

#[tokio::test]
async fn browser_email_with_javascript() {
    email(Mode::Default).await;
}

#[tokio::test]
async fn browser_email_without_javascript() {
    email(Mode::NoJs).await;
}

async fn email(mode: Mode) {
    let sink = Arc::new(Sink::start());
    let app = Arc::new(TestApp::spawn_with_mail(&sink.url()).await);
    app.create_user("alice", false).await;
    let base = app.base.clone();
    with_browser(
        "email",
        &base,
        mode,
        move |ui| async move { walk(&app, &sink, &ui).await },
    )
    .await;
}

async fn sign_in(ui: &Ui, password: &str) -> WebDriverResult<()> {
    ui.goto("/login").await?;
    ui.el("login-submit").await?;
    ui.type_into("username", "alice").await?;
    ui.type_into("password", password).await?;
    ui.click("login-submit").await
}

async fn walk(app: &TestApp, sink: &Sink, ui: &Ui) -> WebDriverResult<()> {
    // Profile tab: type the address, save; it waits for its link.
    sign_in(ui, PASSWORD).await?;
    ui.el("nav-settings").await?;
    ui.click("nav-settings").await?;
    ui.click("nav-account-settings").await?;
    ui.type_into("profile-email", "alice@example.com").await?;
    ui.click("profile-email-save").await?;
    assert_eq!(ui.text("email-status").await?, "Not verified");
    assert!(ui.text("flash").await?.contains("alice@example.com"));
    ui.check_page("profile-email").await?;
    let verify = sink
        .wait_for_subject("alice@example.com", "Verify your email address")
        .await;
    ui.goto(&verify.link("verify").unwrap()).await?;
    ui.check_page("email-verify").await?;
    ui.click("email-verify-confirm").await?;
    assert!(ui.text("flash").await?.contains("verified"));
    ui.goto("/settings/account").await?;
    assert_eq!(ui.text("email-status").await?, "Verified");

    // Someone signs in from a new browser: the message says so, and its
    // "This wasn't me" secures the account — opened in this browser.
    let other = TestClient::new(&app.base);
    assert!(other.login("alice", PASSWORD).await.redirects_to("/"));
    let m = sink
        .wait_for_subject(
            "alice@example.com",
            "New sign-in to your Latchkey Test account from a new browser",
        )
        .await;
    ui.goto(&m.link("not-me").unwrap()).await?;
    ui.el("not-me-confirm").await?;
    ui.check_page("not-me").await?;
    ui.click("not-me-confirm").await?;
    assert!(ui.text("flash").await?.contains("signed out"));
    ui.check_page("not-me-done").await?;
    assert!(
        other.get("/").await.location.unwrap().starts_with("/login"),
        "the other session ended"
    );

    // The next sign-in: a new password before anything else.
    sign_in(ui, PASSWORD).await?;
    ui.el("new_password").await?;
    assert_eq!(ui.path().await?, "/settings/account/password");
    ui.type_into("current_password", PASSWORD).await?;
    ui.type_into("new_password", NEW_PASSWORD).await?;
    ui.type_into("new_password_confirm", NEW_PASSWORD).await?;
    ui.click("password-submit").await?;
    // Wait for the answer's success message (the form's page had a flash
    // of its own: waiting for any flash could leave before the POST did).
    let changed = ui
        .driver
        .query(By::Css("#flash.flash-success"))
        .desc("the password-changed message")
        .first()
        .await?;
    assert!(changed.text().await?.contains("password was changed"));
    ui.goto("/").await?;
    ui.el("nav-settings").await?;
    assert_eq!(ui.path().await?, "/");
    sink.wait_for_subject("alice@example.com", "Your password was changed")
        .await;
    Ok(())
}
