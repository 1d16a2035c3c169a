//! Signing in with the keyboard alone: no clicks, only keys sent to whatever
//! has the focus, through the login form and the code form.

use std::sync::Arc;

use thirtyfour::prelude::*;

use super::{Mode, Ui, with_browser};
use crate::helpers::{PASSWORD, TestApp, enrol, oathtool, signed_in};

/// Type `keys` as a keyboard would: into the focused element.
async fn press(ui: &Ui, keys: impl Into<TypingData>) -> WebDriverResult<()> {
    ui.driver.action_chain().send_keys(keys).perform().await
}

/// The id of the element that has the focus.
async fn focused(ui: &Ui) -> WebDriverResult<String> {
    Ok(ui.driver.active_element().await?.id().await?.unwrap_or_default())
}

#[tokio::test]
async fn browser_keyboard_only_sign_in_with_a_code() {
    let app = Arc::new(TestApp::spawn().await);
    app.create_user("kim", false).await;
    // 2FA is turned on over HTTP (the click-through is the journey's job).
    let enrolled = enrol(&app, signed_in(&app, "kim").await).await;
    app.clock.advance(30);
    let base = app.base.clone();
    with_browser("keyboard", &base, Mode::Default, move |ui| async move {
        ui.goto("/login").await?;
        ui.el("login-submit").await?;
        ui.check_page("login").await?;
        // The username field has the focus on arrival; Tab moves through
        // the form in order and Enter on the button submits it.
        assert_eq!(focused(&ui).await?, "username");
        press(&ui, "kim").await?;
        press(&ui, Key::Tab).await?;
        assert_eq!(focused(&ui).await?, "password");
        press(&ui, PASSWORD).await?;
        press(&ui, Key::Tab).await?;
        assert_eq!(focused(&ui).await?, "login-submit");
        press(&ui, Key::Enter).await?;

        // The code prompt: the field has the focus, Tab reaches "Remember
        // this browser", then Verify.
        ui.el("two-factor-submit").await?;
        assert_eq!(ui.path().await?, "/login/two-factor");
        ui.check_page("two-factor").await?;
        assert_eq!(focused(&ui).await?, "code");
        press(&ui, oathtool(&enrolled.secret, app.clock.now())).await?;
        press(&ui, Key::Tab).await?;
        assert_eq!(focused(&ui).await?, "remember-browser");
        press(&ui, Key::Tab).await?;
        assert_eq!(focused(&ui).await?, "two-factor-submit");
        press(&ui, Key::Enter).await?;

        // Signed in: the dashboard, with the keyboard alone.
        ui.el("nav-settings").await?;
        assert_eq!(ui.path().await?, "/");
        // On every signed-in page the first Tab reaches the skip link.
        press(&ui, Key::Tab).await?;
        let skip = ui.driver.active_element().await?;
        assert_eq!(skip.text().await?, "Skip to content");
        ui.check_page("dashboard").await?;
        Ok(())
    })
    .await;
}
