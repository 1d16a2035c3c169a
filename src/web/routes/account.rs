//! The dashboard, the settings overview, and My account settings → Profile
//! and Password.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::core::password;
use crate::db::events::{self, Kind};
use crate::db::{mfa, sessions, users};
use crate::web::AppState;
use crate::web::auth::{Client, PasswordCheck, SignedIn, check_password};
use crate::web::error::AppError;
use crate::web::forms::Posted;
use crate::web::pages::{
    DashboardPage, Nav, Page, PasswordPage, ProfilePage, SettingsPage, Tab, format_time, ok, redirect, render,
};
use crate::web::session::{Flash, SessionExt, keys};

pub async fn dashboard(req: HttpRequest, me: SignedIn, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let id = me.user.id;
    let left = state.db.run(move |c| mfa::remaining_recovery_codes(c, id)).await?;
    let page = Page::new(&req, &me.session, Some(&me.user), Nav::Dashboard, "Dashboard");
    ok(&DashboardPage {
        page,
        mfa_enabled: me.user.mfa_enabled(),
        recovery_codes_left: left,
        last_login: me.user.last_login_at.map(format_time),
    })
}

pub async fn settings(req: HttpRequest, me: SignedIn) -> Result<HttpResponse, AppError> {
    let page = Page::new(&req, &me.session, Some(&me.user), Nav::Settings, "Settings");
    ok(&SettingsPage { page })
}

pub async fn profile(req: HttpRequest, me: SignedIn) -> Result<HttpResponse, AppError> {
    let page = Page::new(
        &req,
        &me.session,
        Some(&me.user),
        Nav::AccountSettings,
        "My account settings",
    );
    ok(&ProfilePage {
        page,
        tab: Tab::Profile,
        username: me.user.username.clone(),
        role: if me.user.is_admin { "Administrator" } else { "Member" },
        created: format_time(me.user.created_at),
        last_login: me.user.last_login_at.map(format_time),
    })
}

pub async fn password_form(req: HttpRequest, me: SignedIn) -> Result<HttpResponse, AppError> {
    let page = Page::new(
        &req,
        &me.session,
        Some(&me.user),
        Nav::AccountSettings,
        "Change password",
    );
    ok(&PasswordPage {
        page,
        tab: Tab::Password,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
    new_password_confirm: String,
}

pub async fn change_password(
    Posted { who: me, form }: Posted<SignedIn, PasswordForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let again = |status: StatusCode, message: String| {
        let page = Page::new(
            &req,
            &me.session,
            Some(&me.user),
            Nav::AccountSettings,
            "Change password",
        )
        .with_flash(Flash::error(message));
        render(
            status,
            &PasswordPage {
                page,
                tab: Tab::Password,
            },
        )
    };
    if form.current_password.len() > password::MAX_LEN {
        return again(StatusCode::BAD_REQUEST, "Your current password is not correct.".into());
    }
    if let Err(e) = password::check_policy(&form.new_password) {
        return again(StatusCode::BAD_REQUEST, e.to_string());
    }
    if form.new_password != form.new_password_confirm {
        return again(StatusCode::BAD_REQUEST, "The two new passwords do not match.".into());
    }
    let client = Client::of(&req);
    let account = me.user.username.clone();
    match check_password(
        &state,
        &account,
        Some(&me.user),
        form.current_password,
        &client,
        Kind::SudoFailed,
    )
    .await?
    {
        PasswordCheck::Throttled(wait) => {
            return Err(AppError::Throttled {
                retry_after: wait,
                message: "Too many incorrect passwords.".into(),
            });
        }
        PasswordCheck::Wrong => return again(StatusCode::UNAUTHORIZED, "Your current password is not correct.".into()),
        PasswordCheck::Correct => {}
    }
    let cost = state.bcrypt_cost;
    let pw = form.new_password;
    let hash = web::block(move || password::hash(&pw, cost))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)?;
    let now = state.clock.now();
    let id = me.user.id;
    let event = client.event(Kind::PasswordChanged, Some(&me.user));
    state
        .db
        .run(move |c| {
            users::set_password(c, id, &hash)?;
            // Every session of this user ends, this one included; this one
            // continues under a new key below.
            sessions::delete_for_user(c, id)?;
            events::record(c, &event, now)
        })
        .await?;
    me.session.renew();
    let _ = me.session.insert(keys::PASSWORD_AT, now);
    me.session.set_flash(Flash::success(
        "Your password was changed. You were signed out everywhere else.",
    ));
    Ok(redirect("/settings/account/password"))
}
