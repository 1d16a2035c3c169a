//! Routes by area. The paths are the contract of SPEC §5.2.

mod account;
mod admin;
mod assets;
mod email;
mod fallback;
mod health;
mod login;
mod mfa;
mod setup;
mod sudo;
mod two_factor;
mod webauthn;

use actix_web::web;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(health::healthz))
        .route("/static/{version}/{name}", web::get().to(assets::serve))
        .route("/login", web::get().to(login::form))
        .route("/login", web::post().to(login::submit))
        .route("/login/two-factor", web::get().to(two_factor::form))
        .route("/login/two-factor", web::post().to(two_factor::submit))
        .route("/logout", web::post().to(login::logout))
        .route(
            "/login/two-factor/webauthn/start",
            web::post().to(webauthn::second_step_start),
        )
        .route(
            "/login/two-factor/webauthn/finish",
            web::post().to(webauthn::second_step_finish),
        )
        .route("/login/passkey/start", web::post().to(webauthn::passkey_start))
        .route("/login/passkey/finish", web::post().to(webauthn::passkey_finish))
        .route("/setup/{token}", web::get().to(setup::form))
        .route("/setup/{token}", web::post().to(setup::submit))
        .route("/", web::get().to(account::dashboard))
        .route("/settings", web::get().to(account::settings))
        .route("/settings/account", web::get().to(account::profile))
        .route("/settings/account/email", web::post().to(email::set_email))
        .route("/settings/account/email/resend", web::post().to(email::resend))
        .route("/settings/account/notifications", web::post().to(email::notifications))
        .route("/email/verify/{token}", web::get().to(email::verify_form))
        .route("/email/verify/{token}", web::post().to(email::verify))
        .route("/email/not-me/{token}", web::get().to(email::not_me_form))
        .route("/email/not-me/{token}", web::post().to(email::not_me))
        .route("/settings/account/password", web::get().to(account::password_form))
        .route("/settings/account/password", web::post().to(account::change_password))
        .route("/settings/account/mfa", web::get().to(mfa::tab))
        .route("/settings/account/mfa/enable", web::post().to(mfa::enable))
        .route("/settings/account/mfa/setup", web::get().to(mfa::setup))
        .route("/settings/account/mfa/setup/cancel", web::post().to(mfa::cancel_setup))
        .route("/settings/account/mfa/confirm", web::post().to(mfa::confirm))
        .route(
            "/settings/account/mfa/recovery-codes/copied",
            web::post().to(mfa::codes_copied),
        )
        .route(
            "/settings/account/mfa/recovery-codes",
            web::post().to(mfa::regenerate_codes),
        )
        .route(
            "/settings/account/mfa/recovery-codes/new",
            web::get().to(mfa::fresh_codes),
        )
        .route("/settings/account/mfa/webauthn/add", web::post().to(webauthn::add))
        .route(
            "/settings/account/mfa/webauthn/register/start",
            web::post().to(webauthn::register_start),
        )
        .route(
            "/settings/account/mfa/webauthn/register/finish",
            web::post().to(webauthn::register_finish),
        )
        .route(
            "/settings/account/mfa/factors/{id}/rename",
            web::post().to(webauthn::rename),
        )
        .route(
            "/settings/account/mfa/factors/{id}/remove",
            web::post().to(webauthn::remove),
        )
        .route(
            "/settings/account/mfa/disable/webauthn/finish",
            web::post().to(webauthn::disable_finish),
        )
        .route(
            "/settings/account/webauthn/confirm/start",
            web::post().to(webauthn::sudo_start),
        )
        .route(
            "/settings/account/webauthn/confirm/finish",
            web::post().to(webauthn::sudo_finish),
        )
        .route("/settings/account/mfa/disable", web::get().to(mfa::disable_form))
        .route("/settings/account/mfa/disable", web::post().to(mfa::disable))
        .route("/settings/account/sudo", web::get().to(sudo::prompt_form))
        .route("/settings/account/sudo", web::post().to(sudo::prompt_submit))
        .route("/settings/account/sessions", web::get().to(account::sessions_tab))
        .route(
            "/settings/account/sessions/revoke-others",
            web::post().to(account::revoke_other_sessions),
        )
        .route(
            "/settings/account/browsers/{id}/forget",
            web::post().to(account::forget_browser),
        )
        .route(
            "/settings/account/browsers/forget",
            web::post().to(account::forget_all_browsers),
        )
        .route(
            "/settings/account/remembered/{id}/forget",
            web::post().to(account::forget_remembered),
        )
        .route(
            "/settings/account/remembered/forget",
            web::post().to(account::forget_all_remembered),
        )
        .route(
            "/settings/account/security-log",
            web::get().to(account::security_log_tab),
        )
        .route("/admin/users", web::get().to(admin::list))
        .route("/admin/users", web::post().to(admin::create))
        .route("/admin/users/created", web::get().to(admin::created))
        .route("/admin/users/{id}/reset-mfa", web::get().to(admin::reset_form))
        .route("/admin/users/{id}/reset-mfa", web::post().to(admin::reset))
        .route("/admin/users/{id}/unlock", web::post().to(admin::unlock))
        .route(
            "/admin/users/{id}/forget-browsers",
            web::post().to(admin::forget_browsers),
        )
        .route("/admin/users/{id}/admin", web::post().to(admin::set_admin))
        .route("/admin/policy", web::post().to(admin::set_policy))
        .route("/admin/security-log", web::get().to(admin::security_log))
        // Last: any other path is "Page not found", in the app's layout for
        // a signed-in visitor (a path that exists answers a wrong method
        // with 405 before it gets here).
        .route("/{rest:.*}", web::route().to(fallback::not_found));
}

pub use setup::token_hash as setup_token_hash;
