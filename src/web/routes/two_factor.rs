//! `GET/POST /login/two-factor`: the second step of signing in.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::db::users;
use crate::web::AppState;
use crate::web::auth::{
    Client, CodeUse, FactorCheck, PendingLogin, check_second_factor, factor_message, finish_sign_in,
};
use crate::web::error::AppError;
use crate::web::forms::Posted;
use crate::web::pages::{Nav, Page, TwoFactorPage, ok, redirect, render};
use crate::web::session::{self, Flash, SessionExt, keys};

/// Longest input worth looking at: a recovery code with generous spacing.
const MAX_CODE_INPUT: usize = 64;

pub async fn form(req: HttpRequest, pending: PendingLogin) -> Result<HttpResponse, AppError> {
    let page = Page::new(&req, &pending.session, None, Nav::None, "Two-factor authentication");
    ok(&TwoFactorPage { page })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeForm {
    code: String,
}

pub async fn submit(
    Posted { who: pending, form }: Posted<PendingLogin, CodeForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let session = &pending.session;
    let again = |status: StatusCode, message: &str| {
        let page =
            Page::new(&req, session, None, Nav::None, "Two-factor authentication").with_flash(Flash::error(message));
        render(status, &TwoFactorPage { page })
    };
    if form.code.len() > MAX_CODE_INPUT {
        return again(StatusCode::BAD_REQUEST, factor_message(&FactorCheck::Malformed));
    }
    let user_id = pending.user_id;
    let user = state.db.read(move |c| users::find(c, user_id)).await?;
    // The account went away, its 2FA was reset, or all its sessions were
    // revoked (password change) since the password was checked.
    let Some(user) = user.filter(|u| u.mfa_enabled() && u.session_epoch == pending.epoch) else {
        // The account went away or its 2FA was reset meanwhile: start over.
        session.clear();
        session.set_flash(Flash::info("Please sign in again."));
        return Ok(redirect("/login"));
    };
    let client = Client::of(&req);
    let check = check_second_factor(&state, &user, &form.code, &client, CodeUse::SignIn).await?;
    match check {
        FactorCheck::Totp | FactorCheck::Recovery => {
            if check == FactorCheck::Recovery {
                session.set_flash(Flash::info(
                    "You signed in with a recovery code. It cannot be used again; check how many you have left under Settings.",
                ));
            }
            let next = session.get::<String>(keys::NEXT).ok().flatten();
            let password_at = session.int(keys::PASSWORD_AT);
            // The sign-in was recorded with the code's acceptance.
            let now = state.clock.now();
            finish_sign_in(&state, session, &user, &client, now, password_at, next.as_deref())
        }
        FactorCheck::Throttled(wait) => Err(AppError::Throttled {
            retry_after: wait,
            message: "Too many incorrect codes for this account.".into(),
        }),
        FactorCheck::Malformed => again(StatusCode::BAD_REQUEST, factor_message(&check)),
        FactorCheck::Wrong | FactorCheck::Replayed => {
            let failures = session.int(keys::PENDING_FAILURES) + 1;
            if failures >= i64::from(session::PENDING_MAX_FAILURES) {
                session.clear();
                session.set_flash(Flash::error(
                    "Too many incorrect codes. For your security, enter your username and password again.",
                ));
                return Ok(redirect("/login"));
            }
            let _ = session.insert(keys::PENDING_FAILURES, failures);
            again(StatusCode::UNAUTHORIZED, factor_message(&check))
        }
    }
}
