//! The dashboard, `/settings` (which opens My account settings), and
//! My account settings →
//! Profile, Password, Sessions and Security log.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::auth::Actor;
use crate::auth::account::PasswordChange;
use crate::core::password;
use crate::core::types::{BrowserId, Password};
use crate::db::events::SignInFacts;
use crate::web::AppState;
use crate::web::cookies::{browser_cookie, remember_cookie};
use crate::web::error::AppError;
use crate::web::extract::{SignedIn, client};
use crate::web::format::{describe_user_agent, format_time};
use crate::web::forms::Posted;
use crate::web::pages::{
    AccountLogPage, BrowserRow, DashboardPage, LogRow, Nav, Page, PasswordPage, PreviousSignIn, ProfilePage,
    RememberedRow, SessionRow, SessionsPage, Tab,
};
use crate::web::responses::{ok, redirect, render};
use crate::web::session::{Flash, SessionExt, SessionInfo, keys};

pub async fn dashboard(req: HttpRequest, me: SignedIn, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    // The recovery codes and the previous sign-in in one read: this is the
    // page people land on.
    let noted = noted_previous(&me);
    let seen = state.auth.dashboard(me.user.id, noted.filter(|id| *id != 0)).await?;
    let page = Page::signed_in(&req, &me, Nav::Dashboard, "Dashboard");
    ok(&DashboardPage {
        page,
        mfa_enabled: me.mfa_on,
        recovery_codes_left: seen.recovery_codes_left,
        previous: shown_previous(noted, seen.previous),
    })
}

/// The sign-in before this session's, noted in the session at sign-in (0:
/// there was none).
fn noted_previous(me: &SignedIn) -> Option<i64> {
    me.session.get::<i64>(keys::PREVIOUS_SIGN_IN).ok().flatten()
}

/// How the previous sign-in is shown: what was noted, and its log row if
/// it is found (and this user's).
fn shown_previous(noted: Option<i64>, found: Option<SignInFacts>) -> PreviousSignIn {
    match (noted, found) {
        (Some(0), _) => PreviousSignIn::None,
        (Some(_), Some(s)) => PreviousSignIn::Known {
            time: format_time(s.at),
            browser: describe_user_agent(s.user_agent.as_deref().unwrap_or_default()),
            address: s.address.unwrap_or_else(|| "unknown address".into()),
        },
        _ => PreviousSignIn::Unknown,
    }
}

/// The previous sign-in, read on its own (the Profile tab).
async fn previous_sign_in(state: &AppState, me: &SignedIn) -> Result<PreviousSignIn, AppError> {
    let noted = noted_previous(me);
    let found = match noted {
        Some(id) if id != 0 => state.auth.sign_in_event(me.user.id, id).await?,
        _ => None,
    };
    Ok(shown_previous(noted, found))
}

/// `GET /settings`: Settings has one section, so it opens it (the sidebar's
/// Settings link goes there directly).
pub async fn settings(_me: SignedIn) -> HttpResponse {
    redirect("/settings/account")
}

pub async fn profile(req: HttpRequest, me: SignedIn, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let page = Page::signed_in(&req, &me, Nav::AccountSettings, "My account settings");
    ok(&ProfilePage {
        page,
        tab: Tab::Profile,
        username: me.user.username.clone(),
        role: if me.user.is_admin { "Administrator" } else { "Member" },
        created: format_time(me.user.created_at.0),
        previous: previous_sign_in(&state, &me).await?,
        mail_enabled: state.mail_enabled,
        email: me.user.email.clone().unwrap_or_default(),
        email_verified: me.user.email_verified_at.is_some(),
        notify_new_browser: me.user.notify_new_browser,
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
    let changed = state
        .auth
        .change_password(
            &me.user,
            (&me.sid, me.epoch),
            Password::new(form.current_password),
            Password::new(form.new_password),
            &client(&req),
        )
        .await?;
    let (epoch, token) = match changed {
        PasswordChange::Changed { epoch, browser_token } => (epoch, browser_token),
        PasswordChange::WrongPassword => {
            return again(StatusCode::UNAUTHORIZED, "Your current password is not correct.".into());
        }
        PasswordChange::Throttled(wait) => {
            return Err(AppError::Throttled {
                retry_after: wait,
                message: "Too many incorrect passwords.".into(),
            });
        }
        PasswordChange::SessionRevoked => {
            me.session.purge();
            return Err(AppError::LoginRequired { next: None });
        }
    };
    // Every session of this user ended; this one continues under a new key.
    me.session.rekey();
    let _ = me.session.insert(keys::EPOCH, epoch.0);
    let _ = me.session.insert(keys::PASSWORD_AT, state.clock.now());
    me.session.set_flash(Flash::success(
        "Your password was changed. You were signed out everywhere else.",
    ));
    let mut resp = redirect("/settings/account/password");
    resp.add_cookie(&browser_cookie(&token, state.secure_cookies))
        .map_err(AppError::internal)?;
    Ok(resp)
}

/// `GET /settings/account/sessions`: where this account is signed in, and
/// the browsers it has signed in from.
pub async fn sessions_tab(
    req: HttpRequest,
    me: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let rows = state.auth.sessions_of(me.user.id).await?;
    let sessions = rows
        .iter()
        .filter_map(|(st, _, expires)| SessionInfo::from_state(st, *expires))
        .map(|s| SessionRow {
            current: !me.sid.is_empty() && s.sid == me.sid,
            browser: s.browser,
            address: s.address,
            signed_in: format_time(s.signed_in_at),
            last_active: format_time(s.last_active),
        })
        .collect();
    let client = client(&req);
    let this_browser = state
        .auth
        .is_known_browser(me.user.id, client.browser_token.as_deref())
        .await?;
    let rows = state.auth.known_browsers(me.user.id).await?;
    let policy = state.auth.mfa_policy().await?;
    let now = state.clock.now();
    let this_remembered = state.auth.remembered_browser(&me.user, &client).await?;
    let remembered = rows
        .iter()
        .filter_map(|b| {
            let at = b.remembered_at?;
            let until = at + policy.remember_days * 86_400;
            (b.remembered_epoch == Some(me.user.mfa_epoch) && policy.remember_days > 0 && until > now).then(|| {
                RememberedRow {
                    id: b.id.0,
                    current: this_remembered == Some(b.id),
                    browser: describe_user_agent(b.user_agent.as_deref().unwrap_or("")),
                    address: b.client_address.clone().unwrap_or_else(|| "—".into()),
                    remembered: format_time(at),
                    until: format_time(until),
                    last_used: format_time(b.last_used_at.0),
                }
            })
        })
        .collect();
    let browsers = rows
        .into_iter()
        .map(|b| BrowserRow {
            id: b.id.0,
            current: this_browser == Some(b.id),
            browser: describe_user_agent(b.user_agent.as_deref().unwrap_or("")),
            address: b.client_address.unwrap_or_else(|| "—".into()),
            first_seen: format_time(b.created_at.0),
            last_used: format_time(b.last_used_at.0),
        })
        .collect();
    ok(&SessionsPage {
        page: Page::signed_in(&req, &me, Nav::AccountSettings, "Sessions"),
        tab: Tab::Sessions,
        sessions,
        browsers,
        remembered,
    })
}

/// A form with no fields but its CSRF token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// `POST /settings/account/sessions/revoke-others`: every other session ends.
pub async fn revoke_other_sessions(
    Posted { who: me, form: _ }: Posted<SignedIn, NoFields>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some(revoked) = state
        .auth
        .revoke_other_sessions(&me.user, me.epoch, &client(&req))
        .await?
    else {
        me.session.purge();
        return Err(AppError::LoginRequired { next: None });
    };
    // All rows went, this one included; it continues under a new key.
    me.session.rekey();
    let _ = me.session.insert(keys::EPOCH, revoked.epoch.0);
    let others = revoked.ended.saturating_sub(1);
    me.session.set_flash(Flash::success(format!(
        "Signed out {others} other session{}.",
        if others == 1 { "" } else { "s" }
    )));
    Ok(redirect("/settings/account/sessions"))
}

/// `POST /settings/account/browsers/{id}/forget`: this browser no longer
/// counts as known (its next sign-in is a new browser's).
pub async fn forget_browser(
    Posted { who: me, form: _ }: Posted<SignedIn, NoFields>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let n = state
        .auth
        .forget_browsers(&me.user, Some(BrowserId(path.into_inner())), &client(&req))
        .await?;
    me.session.set_flash(if n == 1 {
        Flash::success("That browser was forgotten.")
    } else {
        Flash::info("That browser was already forgotten.")
    });
    Ok(redirect("/settings/account/sessions"))
}

/// `POST /settings/account/browsers/forget`: forget every known browser.
pub async fn forget_all_browsers(
    Posted { who: me, form: _ }: Posted<SignedIn, NoFields>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let n = state.auth.forget_browsers(&me.user, None, &client(&req)).await?;
    me.session.set_flash(Flash::success(format!(
        "Forgot {n} browser{}.",
        if n == 1 { "" } else { "s" }
    )));
    Ok(redirect("/settings/account/sessions"))
}

/// `POST /settings/account/remembered/{id}/forget`: that browser asks for
/// the second factor again.
pub async fn forget_remembered(
    Posted { who: me, form: _ }: Posted<SignedIn, NoFields>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let client = client(&req);
    let which = BrowserId(path.into_inner());
    let this_one = state.auth.remembered_browser(&me.user, &client).await? == Some(which);
    let n = state
        .auth
        .forget_remembered(&me.user, Some(which), Actor::User { client: &client })
        .await?;
    me.session.set_flash(if n == 1 {
        Flash::success("That browser will ask for the second step again.")
    } else {
        Flash::info("That browser was not remembered.")
    });
    let mut resp = redirect("/settings/account/sessions");
    if this_one {
        drop_remember_cookie(&mut resp, &state)?;
    }
    Ok(resp)
}

/// This browser's remember cookie is of no use any more: remove it.
fn drop_remember_cookie(resp: &mut HttpResponse, state: &AppState) -> Result<(), AppError> {
    let mut gone = remember_cookie("", 0, state.secure_cookies);
    gone.make_removal();
    resp.add_cookie(&gone).map_err(AppError::internal)
}

/// `POST /settings/account/remembered/forget`: forget every remembered browser.
pub async fn forget_all_remembered(
    Posted { who: me, form: _ }: Posted<SignedIn, NoFields>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let client = client(&req);
    let n = state
        .auth
        .forget_remembered(&me.user, None, Actor::User { client: &client })
        .await?;
    me.session.set_flash(Flash::success(format!(
        "Forgot {n} remembered browser{}: each asks for the second step again.",
        if n == 1 { "" } else { "s" }
    )));
    let mut resp = redirect("/settings/account/sessions");
    if client.remember_token.is_some() {
        drop_remember_cookie(&mut resp, &state)?;
    }
    Ok(resp)
}

/// `GET /settings/account/security-log`: this account's recent events.
pub async fn security_log_tab(
    req: HttpRequest,
    me: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let (rows, _) = state.auth.security_log(Some(me.user.id), None, 0, 50).await?;
    ok(&AccountLogPage {
        page: Page::signed_in(&req, &me, Nav::AccountSettings, "Security log"),
        tab: Tab::SecurityLog,
        rows: rows.into_iter().map(LogRow::from).collect(),
    })
}
