//! `/admin/…`: users, their 2FA, admin rights, the 2FA policy and the
//! security log. Every route takes `Admin`, so anyone else gets 403.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde::Deserialize;

use super::sudo::redirect_to_prompt;
use crate::auth::admin::{Created, Locks, Reset};
use crate::auth::{Actor, Client};
use crate::core::policy::{DEFAULT_GRACE_DAYS, MAX_REMEMBER_DAYS};
use crate::core::types::{Password, UserId};
use crate::core::username::Username;
use crate::db::events::Kind;
use crate::db::users::{AdminChange, User};
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::{Admin, client};
use crate::web::format::format_time;
use crate::web::forms::Posted;
use crate::web::pages::{
    AdminResetPage, AdminUserCreatedPage, AdminUserRow, AdminUsersPage, LogRow, Nav, Page, SecurityLogPage,
};
use crate::web::responses::{ok, redirect, render};
use crate::web::session::{Flash, SessionExt, keys};

const USERS: &str = "/admin/users";
const CREATED: &str = "/admin/users/created";
const PAGE_SIZE: i64 = 50;

/// Administration changes accounts: like the user's own sensitive actions,
/// it needs the password entered in the last ten minutes (a stolen admin
/// cookie alone is not enough). Returns the detour, if one is needed.
fn needs_password(me: &Admin, state: &AppState, back_to: &str) -> Option<HttpResponse> {
    if me.0.sudo_fresh(state.clock.time()) {
        return None;
    }
    me.0.session
        .set_flash(Flash::info("Confirm your password to continue."));
    Some(redirect_to_prompt(back_to))
}

/// One's own 2FA goes off through the normal disable flow, which asks for a
/// current code.
fn own_account(me: &Admin, user: &User) -> Option<HttpResponse> {
    if user.id != me.0.user.id {
        return None;
    }
    me.0.session.set_flash(Flash::info(
        "To turn off your own two-factor authentication, use Disable MFA here; it asks for a current code.",
    ));
    Some(redirect("/settings/account/mfa"))
}

fn actor<'a>(me: &'a Admin, client: &'a Client) -> Actor<'a> {
    Actor::Admin {
        admin: &me.0.user,
        client,
    }
}

/// Every lock that applies, in words.
fn describe_locks(locks: &Locks) -> Vec<String> {
    let mut out = vec![];
    if let Some(t) = locks.second_factor_until {
        out.push(format!("Codes at the second step locked until {}", format_time(t)));
    }
    if let Some(t) = locks.protected_until {
        out.push(format!(
            "Many failed sign-ins: new browsers need the second step too, until {}",
            format_time(t)
        ));
    }
    if locks.networks > 0 {
        out.push(format!(
            "{} network{} locked out until {}",
            locks.networks,
            if locks.networks == 1 { "" } else { "s" },
            locks.networks_until.map(format_time).unwrap_or_default()
        ));
    }
    if locks.browsers > 0 {
        out.push(format!(
            "{} of their browsers or sessions locked until {}",
            locks.browsers,
            locks.browsers_until.map(format_time).unwrap_or_default()
        ));
    }
    out
}

/// "authenticator app, 2 security keys".
fn describe_factors(kinds: &[String]) -> String {
    let apps = kinds.iter().filter(|k| *k == "totp").count();
    let keys = kinds.iter().filter(|k| *k == "webauthn").count();
    let mut parts = vec![];
    if apps > 0 {
        parts.push("authenticator app".to_string());
    }
    match keys {
        0 => {}
        1 => parts.push("1 security key".into()),
        n => parts.push(format!("{n} security keys")),
    }
    parts.join(", ")
}

async fn users_page(
    req: &HttpRequest,
    me: &Admin,
    state: &AppState,
    status: StatusCode,
    flash: Option<Flash>,
    new_username: &str,
) -> Result<HttpResponse, AppError> {
    let overview = state.auth.users_overview().await?;
    let policy = state.auth.mfa_policy().await?;
    let admins = overview.iter().filter(|u| u.user.is_admin).count();
    let users = overview
        .into_iter()
        .map(|o| AdminUserRow {
            factors: describe_factors(&o.factors),
            id: o.user.id.0,
            is_self: o.user.id == me.0.user.id,
            mfa_since: o.mfa_since.filter(|_| o.mfa_on()).map(format_time),
            recovery_codes_left: o.recovery_codes_left,
            last_login: o.user.last_login_at.map(format_time),
            locked: o.locks.any(),
            locks: describe_locks(&o.locks),
            last_admin: o.user.is_admin && admins == 1,
            remembered_browsers: o.remembered_browsers,
            username: o.user.username,
            is_admin: o.user.is_admin,
            must_change_password: o.user.must_change_password,
        })
        .collect();
    let mut page = Page::signed_in(req, &me.0, Nav::AdminUsers, "Users");
    if let Some(f) = flash {
        page = page.with_flash(f);
    }
    render(
        status,
        &AdminUsersPage {
            page,
            users,
            policy_required: policy.required,
            policy_keys_only: policy.keys_only,
            remember_days: policy.remember_days,
            mail_enabled: state.mail_enabled,
            policy_deadline: policy.required.then(|| format_time(policy.deadline_for(0))),
            grace_days: if policy.required {
                policy.grace_days
            } else {
                DEFAULT_GRACE_DAYS
            },
            new_username: new_username.to_string(),
        },
    )
}

pub async fn list(req: HttpRequest, me: Admin, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    users_page(&req, &me, &state, StatusCode::OK, None, "").await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateForm {
    username: String,
    admin: Option<String>,
    /// Their address for security emails (counts as verified: the
    /// administrator vouches for it). Only offered when email is on.
    email: Option<String>,
}

/// `POST /admin/users`: a new account with a one-time temporary password.
pub async fn create(
    Posted { who: me, form }: Posted<Admin, CreateForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if let Some(detour) = needs_password(&me, &state, USERS) {
        return Ok(detour);
    }
    let name = match Username::parse(&form.username) {
        Ok(n) => n,
        Err(e) => {
            let flash = Flash::error(e.to_string());
            return users_page(&req, &me, &state, StatusCode::BAD_REQUEST, Some(flash), "").await;
        }
    };
    let email = form.email.as_deref().map(str::trim).filter(|e| !e.is_empty());
    if let Some(e) = email
        && (!state.mail_enabled || !crate::core::notice::plausible_address(e) || e.parse::<lettre::Address>().is_err())
    {
        let flash = Flash::error("That is not an email address. Use one like name@example.com, or leave it empty.");
        return users_page(&req, &me, &state, StatusCode::BAD_REQUEST, Some(flash), name.as_str()).await;
    }
    let is_admin = matches!(form.admin.as_deref(), Some("1" | "on" | "true"));
    // 120 bits, readable: the user types it once and then chooses their own.
    let temporary = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::core::random_bytes::<15>());
    let client = client(&req);
    let created = state
        .auth
        .create_user(actor(&me, &client), &name, Password::new(temporary.clone()), is_admin)
        .await?;
    if let (Created::Done(user), Some(e)) = (&created, email) {
        state.auth.set_email_as_admin(user, e, actor(&me, &client)).await?;
    }
    match created {
        Created::Done(user) => {
            // Post/Redirect/Get: the temporary password waits, sealed in
            // this session's server-side state, for its one showing.
            let text = serde_json::to_string(&(user.username, user.is_admin, temporary)).map_err(AppError::internal)?;
            let sealed = state.keys.seal(text.as_bytes(), &created_context(&me));
            me.0.session
                .insert(keys::CREATED_USER, sealed)
                .map_err(AppError::internal)?;
            Ok(redirect(CREATED))
        }
        // A second click on Create: the first one made the account and its
        // temporary password waits for its one showing in this session.
        Created::Exists if held_for(&me, &state, name.as_str()) => Ok(redirect(CREATED)),
        Created::Exists => {
            let flash = Flash::error(format!("A user named “{name}” already exists."));
            users_page(&req, &me, &state, StatusCode::CONFLICT, Some(flash), name.as_str()).await
        }
    }
}

/// Whether this session holds the temporary password of `username`.
fn held_for(me: &Admin, state: &AppState, username: &str) -> bool {
    me.0.session
        .text(keys::CREATED_USER)
        .and_then(|sealed| state.keys.open(&sealed, &created_context(me)).ok())
        .and_then(|text| serde_json::from_slice::<(String, bool, String)>(&text).ok())
        .is_some_and(|(held, _, _)| held == username)
}

fn created_context(me: &Admin) -> String {
    format!("created-user:{}", me.0.sid)
}

/// `GET /admin/users/created`: the new account's temporary password, once.
pub async fn created(req: HttpRequest, me: Admin, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let Some(sealed) = me.0.session.text(keys::CREATED_USER) else {
        me.0.session.set_flash(Flash::info(
            "A temporary password is shown only once, right after the account is created.",
        ));
        return Ok(redirect(USERS));
    };
    me.0.session.remove(keys::CREATED_USER);
    let text = state
        .keys
        .open(&sealed, &created_context(&me))
        .map_err(AppError::internal)?;
    let (username, is_admin, temporary_password): (String, bool, String) =
        serde_json::from_slice(&text).map_err(AppError::internal)?;
    ok(&AdminUserCreatedPage {
        page: Page::signed_in(&req, &me.0, Nav::AdminUsers, "User created"),
        username,
        is_admin,
        temporary_password,
    })
}

async fn target(state: &AppState, id: i64) -> Result<User, AppError> {
    state.auth.find_user(UserId(id)).await?.ok_or(AppError::NotFound)
}

/// The account whose 2FA is to be reset — or the detour first: one's own
/// account goes through the normal disable flow, and a stale password
/// through the prompt.
async fn reset_target(me: &Admin, state: &AppState, id: i64) -> Result<Result<User, HttpResponse>, AppError> {
    let user = target(state, id).await?;
    if let Some(detour) = own_account(me, &user) {
        return Ok(Err(detour));
    }
    if let Some(detour) = needs_password(me, state, &format!("/admin/users/{}/reset-mfa", user.id)) {
        return Ok(Err(detour));
    }
    Ok(Ok(user))
}

/// `GET /admin/users/{id}/reset-mfa`: the confirmation page.
pub async fn reset_form(
    req: HttpRequest,
    me: Admin,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let user = match reset_target(&me, &state, path.into_inner()).await? {
        Ok(user) => user,
        Err(detour) => return Ok(detour),
    };
    if !state.auth.mfa_overview(&user).await?.enabled() {
        me.0.session.set_flash(Flash::info(format!(
            "Two-factor authentication is already off for {}.",
            user.username
        )));
        return Ok(redirect(USERS));
    }
    ok(&AdminResetPage {
        page: Page::signed_in(&req, &me.0, Nav::AdminUsers, "Reset two-factor authentication"),
        id: user.id.0,
        username: user.username,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// `POST /admin/users/{id}/reset-mfa`: 2FA off (lost phone), sessions ended.
pub async fn reset(
    Posted { who: me, form: _ }: Posted<Admin, NoFields>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let user = match reset_target(&me, &state, path.into_inner()).await? {
        Ok(user) => user,
        Err(detour) => return Ok(detour),
    };
    let client = client(&req);
    let outcome = state.auth.reset_mfa(actor(&me, &client), user.id).await?;
    me.0.session.set_flash(Flash::success(match outcome {
        Some(Reset::Done { .. }) => format!(
            "Two-factor authentication is now off for {}, and their sessions were ended.",
            user.username
        ),
        _ => format!("Two-factor authentication was already off for {}.", user.username),
    }));
    Ok(redirect(USERS))
}

/// `POST /admin/users/{id}/forget-browsers`: the user's remembered browsers
/// ask for the second factor again.
pub async fn forget_browsers(
    Posted { who: me, form: _ }: Posted<Admin, NoFields>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    if let Some(detour) = needs_password(&me, &state, USERS) {
        return Ok(detour);
    }
    let user = target(&state, path.into_inner()).await?;
    let client = client(&req);
    let n = state.auth.forget_remembered(&user, None, actor(&me, &client)).await?;
    me.0.session.set_flash(Flash::success(format!(
        "Forgot {n} remembered browser{} of {}: they ask for the second step again.",
        if n == 1 { "" } else { "s" },
        user.username
    )));
    Ok(redirect(USERS))
}

/// `POST /admin/users/{id}/unlock`: clear every lock on an account.
pub async fn unlock(
    Posted { who: me, form: _ }: Posted<Admin, NoFields>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    if let Some(detour) = needs_password(&me, &state, USERS) {
        return Ok(detour);
    }
    let user = target(&state, path.into_inner()).await?;
    let client = client(&req);
    state.auth.unlock(actor(&me, &client), &user).await?;
    me.0.session
        .set_flash(Flash::success(format!("{} can sign in again.", user.username)));
    Ok(redirect(USERS))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminForm {
    admin: String,
}

/// `POST /admin/users/{id}/admin` with `admin=1` or `admin=0`.
pub async fn set_admin(
    Posted { who: me, form }: Posted<Admin, AdminForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    if let Some(detour) = needs_password(&me, &state, USERS) {
        return Ok(detour);
    }
    let grant = match form.admin.as_str() {
        "1" => true,
        "0" => false,
        _ => {
            return Err(AppError::BadRequest(
                "Choose whether to grant or remove administrator rights.".into(),
            ));
        }
    };
    let user = target(&state, path.into_inner()).await?;
    let client = client(&req);
    match state.auth.set_admin(actor(&me, &client), &user, grant).await? {
        AdminChange::Done => {
            me.0.session.set_flash(Flash::success(if grant {
                format!("Administrator rights granted to {}.", user.username)
            } else {
                format!("Administrator rights removed from {}.", user.username)
            }));
            Ok(redirect(if !grant && user.id == me.0.user.id { "/" } else { USERS }))
        }
        AdminChange::LastAdmin => {
            let flash = Flash::error(format!(
                "Administrator rights can’t be removed from {}: they are the last administrator. Make someone else an administrator first.",
                user.username
            ));
            users_page(&req, &me, &state, StatusCode::CONFLICT, Some(flash), "").await
        }
        AdminChange::NoSuchUser => Err(AppError::NotFound),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyForm {
    required: Option<String>,
    grace_days: String,
    keys_only: Option<String>,
    remember_days: Option<String>,
}

/// `POST /admin/policy`: require 2FA for everyone, with a grace period.
pub async fn set_policy(
    Posted { who: me, form }: Posted<Admin, PolicyForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if let Some(detour) = needs_password(&me, &state, USERS) {
        return Ok(detour);
    }
    let grace_days = match form.grace_days.trim().parse::<i64>() {
        Ok(d) if (0..=365).contains(&d) => d,
        _ => {
            let flash = Flash::error("The grace period is a number of days from 0 to 365.");
            return users_page(&req, &me, &state, StatusCode::BAD_REQUEST, Some(flash), "").await;
        }
    };
    let remember_days = match form.remember_days.as_deref().map(str::trim) {
        None => state.auth.mfa_policy().await?.remember_days,
        Some(d) => match d.parse::<i64>() {
            Ok(d) if (0..=MAX_REMEMBER_DAYS).contains(&d) => d,
            _ => {
                let flash = Flash::error(format!(
                    "Browsers can be remembered for 0 to {MAX_REMEMBER_DAYS} days (0 turns it off)."
                ));
                return users_page(&req, &me, &state, StatusCode::BAD_REQUEST, Some(flash), "").await;
            }
        },
    };
    let required = matches!(form.required.as_deref(), Some("1" | "on" | "true"));
    let keys_only = matches!(form.keys_only.as_deref(), Some("1" | "on" | "true"));
    let saved = state
        .auth
        .set_policy(
            &me.0.user,
            &client(&req),
            required,
            grace_days,
            keys_only,
            remember_days,
        )
        .await?;
    me.0.session.set_flash(Flash::success(if saved.required {
        format!(
            "{} is now required. Accounts without it must set it up by {}.",
            if saved.keys_only {
                "A security key or passkey"
            } else {
                "Two-factor authentication"
            },
            format_time(saved.deadline_for(0))
        )
    } else {
        "Two-factor authentication is now optional.".to_string()
    }));
    Ok(redirect(USERS))
}

#[derive(Deserialize)]
pub struct LogQuery {
    user: Option<String>,
    kind: Option<String>,
    page: Option<i64>,
}

/// `GET /admin/security-log?user=&kind=&page=`
pub async fn security_log(
    req: HttpRequest,
    me: Admin,
    state: web::Data<AppState>,
    query: web::Query<LogQuery>,
) -> Result<HttpResponse, AppError> {
    let user_filter = query.user.clone().filter(|u| !u.trim().is_empty());
    let kind_filter = query.kind.clone().filter(|k| !k.is_empty());
    let kind = match &kind_filter {
        Some(k) => Some(Kind::parse(k).ok_or_else(|| AppError::BadRequest("Unknown event type.".into()))?),
        None => None,
    };
    let page_no = query.page.unwrap_or(1).clamp(1, 100_000);
    // A filter by a name that is not a user shows nothing.
    let user_id = match &user_filter {
        Some(n) => match Username::parse(n).ok() {
            Some(n) => state.auth.find_user_by_name(n.as_str()).await?.map(|u| u.id),
            None => None,
        },
        None => None,
    };
    let (rows, total) = if user_filter.is_some() && user_id.is_none() {
        (vec![], 0)
    } else {
        state
            .auth
            .security_log(user_id, kind, (page_no - 1) * PAGE_SIZE, PAGE_SIZE)
            .await?
    };
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    let link = |p: i64| {
        let mut q = vec![("page", p.to_string())];
        if let Some(u) = &user_filter {
            q.push(("user", u.clone()));
        }
        if let Some(k) = &kind_filter {
            q.push(("kind", k.clone()));
        }
        format!(
            "/admin/security-log?{}",
            serde_urlencoded::to_string(q).unwrap_or_default()
        )
    };
    ok(&SecurityLogPage {
        page: Page::signed_in(&req, &me.0, Nav::AdminLog, "Security log"),
        admin_view: true,
        rows: rows.into_iter().map(LogRow::from).collect(),
        kinds: Kind::ALL.iter().map(|k| (k.as_str(), k.describe())).collect(),
        user_filter: user_filter.clone().unwrap_or_default(),
        kind_filter: kind_filter.clone().unwrap_or_default(),
        page_no,
        pages,
        prev: (page_no > 1).then(|| link(page_no - 1)),
        next: (page_no < pages).then(|| link(page_no + 1)),
        total,
    })
}
