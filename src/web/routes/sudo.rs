//! Sudo mode (SPEC §1.4): sensitive actions need the password entered in
//! the last ten minutes. Otherwise a password prompt comes first, and the
//! action continues after it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::auth::account::Confirmed;
use crate::core::password;
use crate::core::types::Password;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::{SignedIn, client};
use crate::web::forms::Posted;
use crate::web::pages::{Nav, Page, SudoPage, Tab};
use crate::web::responses::{redirect, render};
use crate::web::session::{Flash, keys, safe_next};

/// The generic prompt's own address; it continues to `next`.
pub const PROMPT_PATH: &str = "/settings/account/sudo";

/// What the prompt says and where its form goes.
pub struct Prompt {
    /// Where the form posts: the action itself, which continues after the
    /// password is checked.
    pub action: String,
    /// "turn on two-factor authentication" — completes "To …, enter your password".
    pub purpose: &'static str,
    /// Fields to carry through to the action.
    pub hidden: Vec<(&'static str, String)>,
    /// Shown inside My account settings → Multi-factor authentication.
    pub in_mfa_tab: bool,
    /// After a key at the prompt, go to `action` (a page) rather than post
    /// the form to it.
    pub then_get: bool,
}

/// `None` to go on; or the page to show instead (the prompt, or the prompt
/// again after a wrong password).
pub async fn require(
    req: &HttpRequest,
    me: &SignedIn,
    state: &AppState,
    password: Option<String>,
    prompt: Prompt,
) -> Result<Option<HttpResponse>, AppError> {
    let now = state.clock.time();
    if me.sudo_fresh(now) {
        return Ok(None);
    }
    let keys = state.auth.keys_available() && state.auth.has_keys(me.user.id).await?;
    let show = |status: StatusCode, flash: Option<Flash>| {
        let nav = if prompt.in_mfa_tab {
            Nav::AccountSettings
        } else {
            Nav::None
        };
        let mut page = Page::signed_in(req, me, nav, "Confirm your password");
        if let Some(f) = flash {
            page = page.with_flash(f);
        }
        render(
            status,
            &SudoPage {
                page,
                keys,
                tab: Tab::Mfa,
                show_tabs: prompt.in_mfa_tab,
                action: prompt.action.clone(),
                purpose: prompt.purpose,
                hidden: prompt.hidden.clone(),
                then_get: prompt.then_get,
            },
        )
        .map(Some)
    };
    let Some(password) = password else {
        return show(StatusCode::OK, None);
    };
    if password.len() > password::MAX_LEN {
        return show(
            StatusCode::BAD_REQUEST,
            Some(Flash::error("That password is not correct.")),
        );
    }
    match state
        .auth
        .confirm_password(&me.user, &me.sid, Password::new(password), &client(req))
        .await?
    {
        Confirmed::Yes => {
            let _ = me.session.insert(keys::PASSWORD_AT, now.0);
            Ok(None)
        }
        Confirmed::WrongPassword => show(
            StatusCode::UNAUTHORIZED,
            Some(Flash::error("That password is not correct.")),
        ),
        Confirmed::Throttled(wait) => Err(AppError::Throttled {
            retry_after: wait,
            message: "Too many incorrect passwords.".into(),
        }),
    }
}

/// For actions whose forms cannot simply be posted again (administration):
/// send the user to the generic prompt, which comes back to `back_to`.
pub fn redirect_to_prompt(back_to: &str) -> HttpResponse {
    let next = percent_encoding::utf8_percent_encode(back_to, percent_encoding::NON_ALPHANUMERIC);
    redirect(&format!("{PROMPT_PATH}?next={next}"))
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// `GET /settings/account/sudo?next=…`: the prompt on its own.
pub async fn prompt_form(
    req: HttpRequest,
    me: SignedIn,
    state: web::Data<AppState>,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, AppError> {
    let next = safe_next(query.next.as_deref()).unwrap_or_else(|| "/".into());
    if me.sudo_fresh(state.clock.time()) {
        return Ok(redirect(&next));
    }
    let prompt = Prompt {
        action: PROMPT_PATH.into(),
        purpose: "continue",
        hidden: vec![("next", next)],
        in_mfa_tab: false,
        then_get: false,
    };
    Ok(require(&req, &me, &state, None, prompt)
        .await?
        .unwrap_or_else(|| redirect("/")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PromptForm {
    password: String,
    next: Option<String>,
}

/// `POST /settings/account/sudo`: check the password, then back to `next`.
pub async fn prompt_submit(
    Posted { who: me, form }: Posted<SignedIn, PromptForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let next = safe_next(form.next.as_deref()).unwrap_or_else(|| "/".into());
    let prompt = Prompt {
        action: PROMPT_PATH.into(),
        purpose: "continue",
        hidden: vec![("next", next.clone())],
        in_mfa_tab: false,
        then_get: false,
    };
    match require(&req, &me, &state, Some(form.password), prompt).await? {
        Some(page) => Ok(page),
        None => Ok(redirect(&next)),
    }
}
