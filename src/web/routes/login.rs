//! `GET/POST /login` and `POST /logout`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::auth::password::ThrottleReason;
use crate::auth::sign_in::{PasswordStep, SignedIn};
use crate::core::password;
use crate::core::types::Password;
use crate::core::username;
use crate::db::events::Kind;
use crate::web::AppState;
use crate::web::cookies::{browser_cookie, remember_cookie};
use crate::web::error::AppError;
use crate::web::extract::client;
use crate::web::forms::Protected;
use crate::web::pages::{LoginPage, Nav, Page};
use crate::web::responses::{ok, redirect, render};
use crate::web::session::{Flash, SessionExt, SignInAs, Stage, safe_next};

const GENERIC_FAILURE: &str = "Incorrect username or password.";

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

pub async fn form(
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, AppError> {
    if session.stage() == Some(Stage::SignedIn) {
        return Ok(redirect(
            &safe_next(query.next.as_deref()).unwrap_or_else(|| "/".into()),
        ));
    }
    let mut page = Page::new(&req, &session, None, Nav::None, "Sign in");
    if query.signed_out.is_some() && page.flash.is_none() {
        page = page.with_flash(Flash::success("You have been signed out."));
    }
    ok(&LoginPage {
        page,
        passkeys: state.auth.keys_available(),
        username: String::new(),
        next: safe_next(query.next.as_deref()),
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginForm {
    username: String,
    password: String,
    next: Option<String>,
}

pub async fn submit(
    Protected(form): Protected<LoginForm>,
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let next = safe_next(form.next.as_deref());
    let again = |status: StatusCode, message: &str, username: &str| {
        let page = Page::new(&req, &session, None, Nav::None, "Sign in").with_flash(Flash::error(message));
        render(
            status,
            &LoginPage {
                page,
                passkeys: state.auth.keys_available(),
                username: username.to_string(),
                next: next.clone(),
            },
        )
    };
    if form.username.len() > username::MAX_LEN * 4 || form.password.len() > password::MAX_LEN {
        return again(StatusCode::BAD_REQUEST, "That username or password is too long.", "");
    }
    if form.username.trim().is_empty() || form.password.is_empty() {
        return again(
            StatusCode::BAD_REQUEST,
            "Enter your username and password.",
            form.username.trim(),
        );
    }
    let client = client(&req);
    let step = state
        .auth
        .sign_in_with_password(&form.username, Password::new(form.password), &client)
        .await?;
    match step {
        PasswordStep::Throttled { retry_after, reason } => Err(AppError::Throttled {
            retry_after,
            message: throttle_message(reason).into(),
        }),
        PasswordStep::Wrong => again(StatusCode::UNAUTHORIZED, GENERIC_FAILURE, form.username.trim()),
        PasswordStep::SecondStep { pending, protected } => {
            session.begin_second_factor(&pending, protected, next.as_deref());
            Ok(redirect("/login/two-factor"))
        }
        PasswordStep::SignedIn(done) => finish_sign_in(
            &state,
            &session,
            &done,
            &client.address.shown,
            &client.user_agent,
            next.as_deref(),
        ),
    }
}

/// The words for a refused sign-in, by reason.
pub fn throttle_message(reason: ThrottleReason) -> &'static str {
    match reason {
        ThrottleReason::AccountFromNetwork => "Too many sign-in attempts for this account from your network.",
        ThrottleReason::NetworkBusy => "Too many sign-in attempts from your network right now.",
        ThrottleReason::AccountProtected => {
            "This account is protected after many failed sign-in attempts from elsewhere, and this network has failed too. Sign in from a browser you have used before, or turn on two-factor authentication: with it, a protected account still lets you in."
        }
        ThrottleReason::ThisBrowser => "Too many incorrect passwords from this browser.",
        ThrottleReason::ThisSession => "Too many incorrect passwords.",
    }
}

/// The last step of every sign-in, whatever the factors were: the session
/// re-keyed and signed in, the known-browser cookie set, and on to `next`
/// (a same-site path) or the dashboard.
pub fn finish_sign_in(
    state: &AppState,
    session: &Session,
    done: &SignedIn,
    address: &str,
    user_agent: &Option<String>,
    next: Option<&str>,
) -> Result<HttpResponse, AppError> {
    session.sign_in(
        &SignInAs {
            user: done.user.id,
            epoch: done.user.session_epoch,
            password_at: done.password_at,
            address,
            user_agent: user_agent.as_deref(),
            previous_sign_in: done.previous_sign_in,
        },
        state.clock.time(),
    );
    signed_in_response(state, done, next)
}

/// Where a signed-in browser goes, with its known-browser (and remember)
/// cookies; the session is signed in already.
pub fn signed_in_response(state: &AppState, done: &SignedIn, next: Option<&str>) -> Result<HttpResponse, AppError> {
    let to = safe_next(next).unwrap_or_else(|| "/".into());
    let mut resp = redirect(&to);
    resp.add_cookie(&browser_cookie(&done.browser_token, state.secure_cookies))
        .map_err(AppError::internal)?;
    if let Some((token, max_age)) = &done.remember {
        resp.add_cookie(&remember_cookie(token, *max_age, state.secure_cookies))
            .map_err(AppError::internal)?;
    }
    Ok(resp)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogoutForm {}

pub async fn logout(
    Protected(_form): Protected<LogoutForm>,
    req: HttpRequest,
    session: Session,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if let Some(uid) = session.user_id() {
        let mut event = client(&req).event(Kind::LoggedOut, None);
        event.user_id = Some(uid);
        state.auth.record_event(event).await?;
    }
    if let Some(pending) = session.text(crate::web::session::keys::PENDING) {
        state.auth.cancel_sign_in(&pending).await?;
    }
    // Deletes the server-side row: a copy of the cookie is worthless now.
    session.purge();
    Ok(redirect("/login?signed_out=1"))
}
