//! `/admin/…`: users, their 2FA, admin rights, the 2FA policy and the
//! security log. Every route takes `Admin`, so anyone else gets 403.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use base64::Engine;
use serde::Deserialize;

use crate::core::policy::{DEFAULT_GRACE_DAYS, MfaPolicy};
use crate::core::username::Username;
use crate::db::events::{self, Kind};
use crate::db::users::{self, AdminChange, CreateError};
use crate::db::{mfa, sessions, settings, throttles};
use crate::web::AppState;
use crate::web::auth::{Admin, Client, hash_password};
use crate::web::error::AppError;
use crate::web::forms::Posted;
use crate::web::pages::{
    AdminResetPage, AdminUserCreatedPage, AdminUserRow, AdminUsersPage, LogRow, Nav, Page, SecurityLogPage,
    format_time, ok, redirect, render,
};
use crate::web::session::{Flash, SessionExt};

const USERS: &str = "/admin/users";

/// Administration changes accounts: like the user's own sensitive actions,
/// it needs the password entered in the last ten minutes (a stolen admin
/// cookie alone is not enough). Returns the detour, if one is needed.
fn needs_password(me: &Admin, state: &AppState, back_to: &str) -> Option<HttpResponse> {
    if me.0.sudo_fresh(state.clock.now()) {
        return None;
    }
    me.0.session
        .set_flash(Flash::info("Confirm your password to continue."));
    Some(crate::web::sudo::redirect_to_prompt(back_to))
}

/// One's own 2FA goes off through the normal disable flow, which asks for a
/// current code.
fn own_account(me: &Admin, user: &users::User) -> Option<HttpResponse> {
    if user.id != me.0.user.id {
        return None;
    }
    me.0.session.set_flash(Flash::info(
        "To turn off your own two-factor authentication, use Disable MFA here; it asks for a current code.",
    ));
    Some(redirect("/settings/account/mfa"))
}
const PAGE_SIZE: i64 = 50;

fn admin_event(client: &Client, kind: Kind, target: &users::User, by: &users::User) -> events::Event {
    let mut e = client.event(kind, Some(target));
    e.detail = Some(format!("by {}", by.username));
    e
}

async fn users_page(
    req: &HttpRequest,
    me: &Admin,
    state: &AppState,
    status: StatusCode,
    flash: Option<Flash>,
    new_username: &str,
) -> Result<HttpResponse, AppError> {
    let now = state.clock.now();
    let keys = state.keys.clone();
    let key_of = move |name: &str| crate::web::auth::account_key_with(&keys, name);
    let (rows, policy) = state
        .db
        .read(move |c| {
            let mut rows = Vec::new();
            for u in users::all(c)? {
                let left = if u.mfa_enabled() {
                    mfa::remaining_recovery_codes(c, u.id)?
                } else {
                    0
                };
                let locked = throttles::account_locked_until(c, u.id, &key_of(&u.username), now)?;
                rows.push((u, left, locked));
            }
            Ok((rows, settings::mfa_policy(c)?))
        })
        .await?;
    let users = rows
        .into_iter()
        .map(|(u, left, locked)| AdminUserRow {
            id: u.id,
            is_self: u.id == me.0.user.id,
            mfa_since: u.totp_enabled_at.filter(|_| u.mfa_enabled()).map(format_time),
            recovery_codes_left: left,
            last_login: u.last_login_at.map(format_time),
            locked_until: locked.map(format_time),
            username: u.username,
            is_admin: u.is_admin,
            must_change_password: u.must_change_password,
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
            return users_page(
                &req,
                &me,
                &state,
                StatusCode::BAD_REQUEST,
                Some(Flash::error(e.to_string())),
                "",
            )
            .await;
        }
    };
    let is_admin = matches!(form.admin.as_deref(), Some("1" | "on" | "true"));
    // 120 bits, readable: the user types it once and then chooses their own.
    let temporary = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(crate::core::random_bytes::<15>());
    let hash = hash_password(&state, temporary.clone()).await?;
    let now = state.clock.now();
    let client = Client::of(&req);
    let admin_user = me.0.user.clone();
    let username = name.as_str().to_string();
    let created = state
        .db
        .run(move |c| {
            Ok(
                match users::create_with_temporary_password(c, &username, &hash, is_admin, now) {
                    Ok(user) => {
                        events::record(
                            c,
                            &admin_event(&client, Kind::AdminCreatedUser, &user, &admin_user),
                            now,
                        )?;
                        Ok(user)
                    }
                    Err(CreateError::Db(e)) => return Err(e),
                    Err(e) => Err(e),
                },
            )
        })
        .await?;
    match created {
        Ok(user) => ok(&AdminUserCreatedPage {
            page: Page::signed_in(&req, &me.0, Nav::AdminUsers, "User created"),
            username: user.username,
            is_admin: user.is_admin,
            temporary_password: temporary,
        }),
        Err(e) => {
            users_page(
                &req,
                &me,
                &state,
                StatusCode::CONFLICT,
                Some(Flash::error(format!("{e}."))),
                name.as_str(),
            )
            .await
        }
    }
}

async fn target(state: &AppState, id: i64) -> Result<users::User, AppError> {
    state
        .db
        .read(move |c| users::find(c, id))
        .await?
        .ok_or(AppError::NotFound)
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
    if !user.mfa_enabled() {
        me.0.session.set_flash(Flash::info(format!(
            "Two-factor authentication is already off for {}.",
            user.username
        )));
        return Ok(redirect(USERS));
    }
    ok(&AdminResetPage {
        page: Page::signed_in(&req, &me.0, Nav::AdminUsers, "Reset 2FA"),
        id: user.id,
        username: user.username,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyForm {}

/// The account whose 2FA is to be reset — or the detour first: one's own
/// account goes through the normal disable flow, and a stale password
/// through the prompt.
async fn reset_target(me: &Admin, state: &AppState, id: i64) -> Result<Result<users::User, HttpResponse>, AppError> {
    let user = target(state, id).await?;
    if let Some(detour) = own_account(me, &user) {
        return Ok(Err(detour));
    }
    if let Some(detour) = needs_password(me, state, &format!("/admin/users/{}/reset-mfa", user.id)) {
        return Ok(Err(detour));
    }
    Ok(Ok(user))
}

/// `POST /admin/users/{id}/reset-mfa`: 2FA off (lost phone), sessions ended.
pub async fn reset(
    Posted { who: me, form: _ }: Posted<Admin, EmptyForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let user = match reset_target(&me, &state, path.into_inner()).await? {
        Ok(user) => user,
        Err(detour) => return Ok(detour),
    };
    let now = state.clock.now();
    let event = admin_event(&Client::of(&req), Kind::MfaResetByAdmin, &user, &me.0.user);
    let id = user.id;
    let was_on = state
        .db
        .run(move |c| {
            let was_on = mfa::disable(c, id, None)?;
            sessions::revoke_all(c, id, None)?;
            if was_on {
                events::record(c, &event, now)?;
            }
            Ok(was_on)
        })
        .await?;
    me.0.session.set_flash(Flash::success(if was_on {
        format!(
            "Two-factor authentication is now off for {}, and their sessions were ended.",
            user.username
        )
    } else {
        format!("Two-factor authentication was already off for {}.", user.username)
    }));
    Ok(redirect(USERS))
}

/// `POST /admin/users/{id}/unlock`: forget the failures that locked an account.
pub async fn unlock(
    Posted { who: me, form: _ }: Posted<Admin, EmptyForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    if let Some(detour) = needs_password(&me, &state, USERS) {
        return Ok(detour);
    }
    let user = target(&state, path.into_inner()).await?;
    let now = state.clock.now();
    let event = admin_event(&Client::of(&req), Kind::AdminUnlocked, &user, &me.0.user);
    let (id, name) = (user.id, crate::web::auth::account_key(&state, &user.username));
    state
        .db
        .run(move |c| {
            throttles::unlock_account(c, id, &name)?;
            events::record(c, &event, now)
        })
        .await?;
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
    let now = state.clock.now();
    let kind = if grant { Kind::AdminGranted } else { Kind::AdminRevoked };
    let event = admin_event(&Client::of(&req), kind, &user, &me.0.user);
    let id = user.id;
    let outcome = state
        .db
        .run(move |c| {
            let outcome = users::set_admin(c, id, grant)?;
            if outcome == AdminChange::Done {
                events::record(c, &event, now)?;
            }
            Ok(outcome)
        })
        .await?;
    match outcome {
        AdminChange::Done => {
            me.0.session.set_flash(Flash::success(if grant {
                format!("{} is now an administrator.", user.username)
            } else {
                format!("{} is no longer an administrator.", user.username)
            }));
            Ok(redirect(if !grant && id == me.0.user.id { "/" } else { USERS }))
        }
        AdminChange::LastAdmin => {
            let flash = Flash::error(format!(
                "{} is the last administrator. Make someone else an administrator first.",
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
    let required = matches!(form.required.as_deref(), Some("1" | "on" | "true"));
    let now = state.clock.now();
    let mut event = Client::of(&req).event(Kind::PolicyChanged, Some(&me.0.user));
    event.detail = Some(if required {
        format!("2FA required, {grace_days} days' grace")
    } else {
        "2FA optional".into()
    });
    let saved = state
        .db
        .run(move |c| {
            let old = settings::mfa_policy(c)?;
            // Keep the start of the grace period when only its length changes.
            let since = if old.required && required { old.since } else { now };
            let policy = MfaPolicy {
                required,
                since,
                grace_days,
            };
            settings::set_mfa_policy(c, &policy, now)?;
            events::record(c, &event, now)?;
            Ok(policy)
        })
        .await?;
    me.0.session.set_flash(Flash::success(if saved.required {
        format!(
            "Two-factor authentication is now required. Accounts without it must turn it on by {}.",
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
    let name = user_filter.clone();
    let result = state
        .db
        .run(move |c| {
            let user_id = match &name {
                Some(n) => match Username::parse(n).ok() {
                    Some(n) => match users::find_by_name(c, n.as_str())? {
                        Some(u) => Some(u.id),
                        None => return Ok(None),
                    },
                    None => return Ok(None),
                },
                None => None,
            };
            Ok(Some(events::page(
                c,
                user_id,
                kind,
                (page_no - 1) * PAGE_SIZE,
                PAGE_SIZE,
            )?))
        })
        .await?;
    let (rows, total) = result.unwrap_or_default();
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
