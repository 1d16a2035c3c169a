//! Messages that fit the moment, in Chromium: switching the code prompt to
//! a recovery code clears the error about the code typed before.

use std::sync::Arc;

use thirtyfour::prelude::*;

use super::{Mode, with_browser};
use crate::helpers::{PASSWORD, TestApp, enrol, oathtool, signed_in, wrong_code};

#[tokio::test]
async fn browser_recovery_code_switch_clears_the_code_error() {
    let app = Arc::new(TestApp::spawn().await);
    app.create_user("kim", false).await;
    // 2FA is turned on over HTTP (the click-through is the journey's job).
    let enrolled = enrol(&app, signed_in(&app, "kim").await).await;
    app.clock.advance(30);
    let base = app.base.clone();
    with_browser("messages", &base, Mode::Default, move |ui| async move {
        ui.goto("/login").await?;
        ui.type_into("username", "kim").await?;
        ui.type_into("password", PASSWORD).await?;
        ui.click("login-submit").await?;
        ui.el("two-factor-submit").await?;

        // A wrong code from the app: the error says so, with the clock hint.
        ui.type_into("code", &wrong_code(&enrolled.secret, app.clock.now()))
            .await?;
        ui.click("two-factor-submit").await?;
        let flash = ui.el("flash").await?;
        assert_eq!(flash.attr("role").await?.as_deref(), Some("alert"));
        assert!(flash.text().await?.contains("30 seconds"));

        // "Use a recovery code": the hint changes and the old error goes.
        ui.driver
            .find(By::Css("#use-recovery-code summary"))
            .await?
            .click()
            .await?;
        ui.driver.query(By::Id("flash")).wait_until_gone().await?;
        let hint = ui.text("code-hint").await?;
        assert!(hint.starts_with("Enter one of your recovery codes"), "{hint}");
        assert_eq!(ui.el("code").await?.attr("inputmode").await?.as_deref(), Some("text"));
        ui.check_page("two-factor-recovery-switched").await?;

        // A wrong recovery code gets its own message, not the clock hint.
        ui.type_into("code", "ABCDE-FGHJK-LMNPQ").await?;
        ui.click("two-factor-submit").await?;
        let message = ui.el("flash").await?.text().await?;
        assert!(message.starts_with("That recovery code was not accepted."), "{message}");
        assert!(!message.contains("30 seconds"), "{message}");

        // Signed in, the Disable page: a refused recovery code comes back
        // with the field still switched to recovery codes, and its error
        // stays; switching back to the app's code clears it.
        ui.type_into("code", &oathtool(&enrolled.secret, app.clock.now()))
            .await?;
        ui.click("two-factor-submit").await?;
        ui.el("nav-settings").await?;
        ui.goto("/settings/account/mfa/disable").await?;
        ui.type_into("code", "ABCDE-FGHJK-LMNPQ").await?;
        ui.click("mfa-disable-confirm").await?;
        let message = ui.el("flash").await?.text().await?;
        assert!(message.starts_with("That recovery code was not accepted."), "{message}");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert!(ui.exists("flash").await?, "the error survives the page's own switch");
        ui.driver
            .find(By::Css("#use-recovery-code summary"))
            .await?
            .click()
            .await?;
        ui.driver.query(By::Id("flash")).wait_until_gone().await?;
        Ok(())
    })
    .await;
}
