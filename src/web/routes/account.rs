//! The dashboard, the settings overview, and My account settings → Profile
//! and Password.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use diesel::Connection;
use serde::Deserialize;

use crate::core::password;
use crate::db::events::{self, Kind};
use crate::db::{mfa, sessions, users};
use crate::web::AppState;
use crate::web::auth::{Client, PasswordCheck, SignedIn, check_password, hash_password};
use crate::web::error::AppError;
use crate::web::forms::Posted;
use crate::web::pages::{
    AccountLogPage, DashboardPage, LogRow, Nav, Page, PasswordPage, ProfilePage, SessionRow, SessionsPage,
    SettingsPage, Tab, format_time, ok, redirect, render,
};
use crate::web::session::{Flash, SessionExt, SessionInfo, keys};

pub async fn dashboard(req: HttpRequest, me: SignedIn, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let id = me.user.id;
    let left = state.db.read(move |c| mfa::remaining_recovery_codes(c, id)).await?;
    let page = Page::signed_in(&req, &me, Nav::Dashboard, "Dashboard");
    ok(&DashboardPage {
        page,
        mfa_enabled: me.user.mfa_enabled(),
        recovery_codes_left: left,
        last_login: me.user.last_login_at.map(format_time),
    })
}

pub async fn settings(req: HttpRequest, me: SignedIn) -> Result<HttpResponse, AppError> {
    let page = Page::signed_in(&req, &me, Nav::Settings, "Settings");
    ok(&SettingsPage { page })
}

pub async fn profile(req: HttpRequest, me: SignedIn) -> Result<HttpResponse, AppError> {
    let page = Page::signed_in(&req, &me, Nav::AccountSettings, "My account settings");
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
    let page = Page::signed_in(&req, &me, Nav::AccountSettings, "Change password");
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
        let page =
            Page::signed_in(&req, &me, Nav::AccountSettings, "Change password").with_flash(Flash::error(message));
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
    let hash = hash_password(&state, form.new_password).await?;
    let now = state.clock.now();
    let id = me.user.id;
    let event = client.event(Kind::PasswordChanged, Some(&me.user));
    let epoch = me.user.session_epoch;
    let changed = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                // Every session of this user ends, this one included (it
                // continues under a new key below) — unless this one was
                // itself revoked a moment ago, and then nothing changes.
                let Some((_, new_epoch)) = sessions::revoke_all(c, id, Some(epoch))? else {
                    return Ok(None);
                };
                users::set_password(c, id, &hash)?;
                events::record(c, &event, now)?;
                Ok(Some(new_epoch))
            })
        })
        .await?;
    let Some(new_epoch) = changed else {
        me.session.purge();
        return Err(AppError::LoginRequired { next: None });
    };
    me.session.rekey();
    let _ = me.session.insert(keys::EPOCH, new_epoch);
    let _ = me.session.insert(keys::PASSWORD_AT, now);
    me.session.set_flash(Flash::success(
        "Your password was changed. You were signed out everywhere else.",
    ));
    Ok(redirect("/settings/account/password"))
}

/// `GET /settings/account/sessions`: where this account is signed in.
pub async fn sessions_tab(
    req: HttpRequest,
    me: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let (id, now) = (me.user.id, state.clock.now());
    let rows = state.db.read(move |c| sessions::list_for_user(c, id, now)).await?;
    let current = me.session.get::<String>(keys::SID).ok().flatten().unwrap_or_default();
    let sessions = rows
        .iter()
        .filter_map(|(st, _, expires)| SessionInfo::from_state(st, *expires))
        .map(|s| SessionRow {
            current: !current.is_empty() && s.sid == current,
            browser: s.browser,
            address: s.address,
            signed_in: format_time(s.signed_in_at),
            last_active: format_time(s.last_active),
        })
        .collect();
    ok(&SessionsPage {
        page: Page::signed_in(&req, &me, Nav::AccountSettings, "Sessions"),
        tab: Tab::Sessions,
        sessions,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyForm {}

/// `POST /settings/account/sessions/revoke-others`: every other session ends.
pub async fn revoke_other_sessions(
    Posted { who: me, form: _ }: Posted<SignedIn, EmptyForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let (id, now) = (me.user.id, state.clock.now());
    let event = Client::of(&req).event(Kind::SessionsRevoked, Some(&me.user));
    let epoch = me.user.session_epoch;
    let revoked = state
        .db
        .run(move |c| {
            // Only while this session is itself still valid: a stolen
            // session racing the owner's revoke cannot outlive it.
            let revoked = sessions::revoke_all(c, id, Some(epoch))?;
            if revoked.is_some() {
                events::record(c, &event, now)?;
            }
            Ok(revoked)
        })
        .await?;
    let Some((ended, new_epoch)) = revoked else {
        me.session.purge();
        return Err(AppError::LoginRequired { next: None });
    };
    // All rows went, this one included; it continues under a new key.
    me.session.rekey();
    let _ = me.session.insert(keys::EPOCH, new_epoch);
    let others = ended.saturating_sub(1);
    me.session.set_flash(Flash::success(format!(
        "Signed out {others} other session{}.",
        if others == 1 { "" } else { "s" }
    )));
    Ok(redirect("/settings/account/sessions"))
}

/// `GET /settings/account/security-log`: this account's recent events.
pub async fn security_log_tab(
    req: HttpRequest,
    me: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = me.user.id;
    let (rows, _) = state.db.read(move |c| events::page(c, Some(id), None, 0, 50)).await?;
    ok(&AccountLogPage {
        page: Page::signed_in(&req, &me, Nav::AccountSettings, "Security log"),
        tab: Tab::SecurityLog,
        rows: rows.into_iter().map(LogRow::from).collect(),
    })
}
