//! `GET/POST /login/two-factor`: the second step of signing in.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::auth::factors::{InputKind, Refusal};
use crate::auth::sign_in::CodeStep;
use crate::core::limits::PENDING_MAX_ATTEMPTS;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::{PendingLogin, client};
use crate::web::forms::Posted;
use crate::web::pages::{Nav, Page, TwoFactorPage};
use crate::web::responses::{ok, redirect, render};
use crate::web::session::{Flash, SessionExt, keys};

/// Longest input worth looking at: a recovery code with generous spacing.
pub const MAX_CODE_INPUT: usize = 64;

const TITLE: &str = "Two-factor authentication";

fn start_over(pending: &PendingLogin, message: &str) -> HttpResponse {
    pending.session.clear();
    pending.session.set_flash(Flash::error(message));
    redirect("/login")
}

const TOO_SLOW: &str = "Your sign-in took too long to finish. Enter your username and password again.";

/// Which factors the prompt offers: (keys, keys first). A protected
/// sign-in offers a key to everyone (its challenge names no key), so the
/// page says nothing about the password or the account.
async fn offer(state: &AppState, pending: &PendingLogin) -> Result<Option<(bool, bool)>, AppError> {
    let Some(row) = state.auth.pending_sign_in(&pending.pending).await? else {
        return Ok(None);
    };
    if !state.auth.keys_available() {
        return Ok(Some((false, false)));
    }
    if row.protected {
        return Ok(Some((true, false)));
    }
    let Some(user) = row.user() else {
        return Ok(Some((false, false)));
    };
    let keys = state.auth.has_keys(user).await?;
    let totp = match state.auth.find_user(user).await? {
        Some(u) => state.auth.has_totp(&u).await?,
        None => false,
    };
    Ok(Some((keys, keys && !totp)))
}

pub async fn form(
    req: HttpRequest,
    pending: PendingLogin,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let Some((keys, keys_first)) = offer(&state, &pending).await? else {
        return Ok(start_over(&pending, TOO_SLOW));
    };
    let page = Page::new(&req, &pending.session, None, Nav::None, TITLE);
    ok(&TwoFactorPage {
        page,
        keys,
        keys_first,
        protected: pending.protected,
        remember_days: state.auth.mfa_policy().await?.remember_days,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeForm {
    code: String,
    /// The "Remember this browser" checkbox (`on` when ticked).
    remember_browser: Option<String>,
}

/// The prompt again, with why the code was not accepted. What it offers is
/// read only here: an accepted code (the common case) needs none of it.
async fn again(
    state: &AppState,
    req: &HttpRequest,
    pending: &PendingLogin,
    status: StatusCode,
    message: String,
) -> Result<HttpResponse, AppError> {
    let (keys, _) = offer(state, pending).await?.unwrap_or((false, false));
    let remember_days = state.auth.mfa_policy().await?.remember_days;
    let page = Page::new(req, &pending.session, None, Nav::None, TITLE).with_flash(Flash::error(message));
    render(
        status,
        &TwoFactorPage {
            page,
            keys,
            keys_first: false,
            protected: pending.protected,
            remember_days,
        },
    )
}

pub async fn submit(
    Posted { who: pending, form }: Posted<PendingLogin, CodeForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let session = &pending.session;
    if form.code.len() > MAX_CODE_INPUT {
        let message = refusal_message(Refusal::Malformed).into();
        return again(&state, &req, &pending, StatusCode::BAD_REQUEST, message).await;
    }
    let client = client(&req);
    let remember = form.remember_browser.as_deref() == Some("on");
    // The session is signed in by the commit that accepts the code.
    let (moving, ticket) = match session.prepare_move(
        &client.address.shown,
        client.user_agent.as_deref(),
        state.clock.time(),
        |done| done.recovery_codes_left.map(recovery_code_used),
    ) {
        Some((m, t)) => (Some(m), Some(t)),
        None => (None, None),
    };
    match state
        .auth
        .submit_code_moving(&pending.pending, &form.code, &client, remember, moving)
        .await?
    {
        CodeStep::SignedIn(done) => {
            let next = session.text(keys::NEXT);
            if ticket.as_ref().is_some_and(|t| session.finish_move(t)) {
                return super::login::signed_in_response(&state, &done, next.as_deref());
            }
            if let Some(left) = done.recovery_codes_left {
                session.set_flash(recovery_code_used(left));
            }
            super::login::finish_sign_in(
                &state,
                session,
                &done,
                &client.address.shown,
                &client.user_agent,
                next.as_deref(),
            )
        }
        CodeStep::Throttled(wait) => Err(AppError::Throttled {
            retry_after: wait,
            message: "Too many incorrect codes for this account.".into(),
        }),
        CodeStep::Refused {
            refusal: Refusal::Malformed,
            ..
        } => {
            let message = malformed_message(&form.code).into();
            again(&state, &req, &pending, StatusCode::BAD_REQUEST, message).await
        }
        CodeStep::Refused { refusal, attempts_left } => {
            let mut message = refusal_message(refusal).to_string();
            if attempts_left < PENDING_MAX_ATTEMPTS - 1 {
                message.push_str(&format!(
                    " {attempts_left} attempt{} left before you must sign in again.",
                    if attempts_left == 1 { "" } else { "s" }
                ));
            }
            again(&state, &req, &pending, StatusCode::UNAUTHORIZED, message).await
        }
        CodeStep::Ended => Ok(start_over(
            &pending,
            "Too many incorrect codes. For your security, enter your username and password again.",
        )),
        CodeStep::Gone | CodeStep::KeyRefused { .. } => Ok(start_over(&pending, TOO_SLOW)),
    }
}

/// What a session signed in with a recovery code is told first.
fn recovery_code_used(left: i64) -> Flash {
    Flash::info(format!(
        "You signed in with a recovery code. It cannot be used again; you have {left} left. Generate new ones under Settings → My account settings → Multi-factor authentication."
    ))
}

/// The message for input that is no kind of code. A recovery code with a
/// character no recovery code has (a zero for an O, say) gets its own.
pub fn malformed_message(input: &str) -> &'static str {
    let cleaned: Vec<char> = input.chars().filter(|c| *c != ' ' && *c != '-').collect();
    if cleaned.len() == crate::core::recovery::LEN && cleaned.iter().all(char::is_ascii_alphanumeric) {
        "That recovery code has a character no recovery code has (0, 1, I or O). Check it against your saved list."
    } else {
        refusal_message(Refusal::Malformed)
    }
}

/// The message for a refused code, the same on every page that asks for
/// one, and fitting what was typed.
pub fn refusal_message(refusal: Refusal) -> &'static str {
    match refusal {
        Refusal::Malformed => {
            "Enter the 6-digit code from your authenticator app, or one of your recovery codes (like ABCDE-FGHJK-LMNPQ)."
        }
        Refusal::Replayed => "That code was already used. Wait for the next code to appear in your app, then enter it.",
        Refusal::Wrong(InputKind::RecoveryCode) => {
            "That recovery code was not accepted. Check it against your saved list: each code works only once."
        }
        Refusal::Wrong(_) => {
            "That code was not accepted. Codes change every 30 seconds: enter the one your app shows now, and check that your phone sets its time automatically."
        }
    }
}
