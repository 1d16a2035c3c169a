//! Security keys and passkeys: the pages and the JSON requests of the
//! ceremonies, which the page's script (static/app.js) sends. Every JSON
//! request carries the page's CSRF token in a header (`JsonPosted`).
//!
//! - adding a key: `POST …/mfa/webauthn/add` (a form: its name; sudo first)
//!   shows a page that starts the ceremony; `…/register/start|finish`;
//! - renaming and removing: forms on the MFA tab;
//! - the second step: `/login/two-factor/webauthn/start|finish`;
//! - a passkey alone: `/login/passkey/start|finish`;
//! - the sudo prompt and Disable MFA: `…/sudo/webauthn/…`, `…/disable/webauthn/…`.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::mfa::hold_codes;
use super::sudo::{Prompt, require};
use crate::auth::account::{Disable, Removed};
use crate::auth::sign_in::CodeStep;
use crate::auth::webauthn::{Challenge, KeyRefusal};
use crate::core::types::CredentialId;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::{PendingLogin, SignedIn, Visitor, client};
use crate::web::forms::{JsonPosted, Posted};
use crate::web::pages::{Nav, Page, Tab, WebauthnAddPage};
use crate::web::responses::{json, ok, redirect};
use crate::web::session::{Flash, SessionExt, keys};

const TAB: &str = "/settings/account/mfa";
/// Longest key name kept (it is shown in lists and emails).
const MAX_NAME: usize = 64;

fn refusal_message(r: KeyRefusal) -> &'static str {
    match r {
        KeyRefusal::Unavailable => "Security keys and passkeys are not available on this server.",
        KeyRefusal::NoKeys => "There is no security key or passkey on this account.",
        KeyRefusal::Expired => "That took too long, or was already used. Try again.",
        KeyRefusal::Refused => "That key was not accepted. Use a key registered to this account.",
        KeyRefusal::PossibleClone => {
            "That key was refused: its signature counter went backwards, which can mean the key was copied. Use another sign-in method, and remove the key if you do not know why."
        }
        KeyRefusal::NotVerified => {
            "This key cannot sign you in on its own: it did not verify you with a PIN or biometric. Enter your username and password, then use the key."
        }
        KeyRefusal::AlreadyRegistered => "This key is already registered.",
    }
}

fn refused(r: KeyRefusal) -> HttpResponse {
    let status = match r {
        KeyRefusal::Unavailable | KeyRefusal::NoKeys => StatusCode::CONFLICT,
        KeyRefusal::Expired => StatusCode::GONE,
        KeyRefusal::AlreadyRegistered => StatusCode::CONFLICT,
        _ => StatusCode::UNAUTHORIZED,
    };
    json(status, &json!({ "error": refusal_message(r) }))
}

fn challenge(c: Result<Challenge, KeyRefusal>) -> HttpResponse {
    match c {
        Ok(c) => json(StatusCode::OK, &c),
        Err(r) => refused(r),
    }
}

fn go(to: &str) -> HttpResponse {
    json(StatusCode::OK, &json!({ "redirect": to }))
}

/// A key name as typed: trimmed, not empty, not too long, no control characters.
fn key_name(typed: &str) -> Result<String, &'static str> {
    let name = typed.trim();
    if name.is_empty() {
        return Err("Give the key a name, like “YubiKey” or “Work laptop”.");
    }
    if name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err("A key name can be up to 64 characters, without control characters.");
    }
    Ok(name.to_string())
}

// ------------------------------------------------------------ adding a key

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddForm {
    name: String,
    password: Option<String>,
}

/// `POST /settings/account/mfa/webauthn/add`: after the password (sudo),
/// the page that asks the browser for the key.
pub async fn add(
    Posted { who: me, form }: Posted<SignedIn, AddForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if !state.auth.keys_available() {
        return Err(AppError::BadRequest(refusal_message(KeyRefusal::Unavailable).into()));
    }
    let name = match key_name(&form.name) {
        Ok(n) => n,
        Err(message) => {
            me.session.set_flash(Flash::error(message));
            return Ok(redirect(TAB));
        }
    };
    let prompt = Prompt {
        action: "/settings/account/mfa/webauthn/add".into(),
        purpose: "add a security key or passkey",
        hidden: vec![("name", name.clone())],
        in_mfa_tab: true,
        then_get: false,
    };
    if let Some(prompt) = require(&req, &me, &state, form.password, prompt).await? {
        return Ok(prompt);
    }
    ok(&WebauthnAddPage {
        page: Page::signed_in(&req, &me, Nav::AccountSettings, "Add a security key or passkey"),
        tab: Tab::Mfa,
        name,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterStart {
    name: String,
}

pub async fn register_start(
    JsonPosted { who: me, body }: JsonPosted<SignedIn, RegisterStart>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if !me.sudo_fresh(state.clock.time()) {
        return Ok(json(
            StatusCode::FORBIDDEN,
            &json!({ "error": "Confirm your password first.", "redirect": TAB }),
        ));
    }
    let name = match key_name(&body.name) {
        Ok(n) => n,
        Err(message) => return Ok(json(StatusCode::BAD_REQUEST, &json!({ "error": message }))),
    };
    Ok(challenge(
        state.auth.start_key_registration(&me.user, &me.sid, &name).await?,
    ))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterFinish {
    ceremony: String,
    credential: RegisterPublicKeyCredential,
}

pub async fn register_finish(
    JsonPosted { who: me, body }: JsonPosted<SignedIn, RegisterFinish>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if !me.sudo_fresh(state.clock.time()) {
        return Ok(json(
            StatusCode::FORBIDDEN,
            &json!({ "error": "Confirm your password first.", "redirect": TAB }),
        ));
    }
    let done = state
        .auth
        .finish_key_registration(&me.user, &me.sid, &body.ceremony, &body.credential, &client(&req))
        .await?;
    match done {
        Ok(registered) => match registered.codes {
            Some(codes) => {
                hold_codes(&me, &state, &codes, true)?;
                Ok(go("/settings/account/mfa/recovery-codes/new"))
            }
            None => {
                me.session.set_flash(Flash::success("Your security key was added."));
                Ok(go(TAB))
            }
        },
        Err(r) => Ok(refused(r)),
    }
}

// --------------------------------------------------- renaming and removing

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameForm {
    name: String,
}

/// `POST /settings/account/mfa/factors/{id}/rename`
pub async fn rename(
    Posted { who: me, form }: Posted<SignedIn, RenameForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let name = match key_name(&form.name) {
        Ok(n) => n,
        Err(message) => {
            me.session.set_flash(Flash::error(message));
            return Ok(redirect(TAB));
        }
    };
    let id = CredentialId(path.into_inner());
    let done = state.auth.rename_key(&me.user, id, &name, &client(&req)).await?;
    me.session.set_flash(if done {
        Flash::success(format!("Renamed to “{name}”."))
    } else {
        Flash::error("That sign-in method is not on your account.")
    });
    Ok(redirect(TAB))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveForm {
    password: Option<String>,
}

/// `POST /settings/account/mfa/factors/{id}/remove` (sudo first). Removing
/// the last factor turns 2FA off.
pub async fn remove(
    Posted { who: me, form }: Posted<SignedIn, RemoveForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<i64>,
) -> Result<HttpResponse, AppError> {
    let id = path.into_inner();
    let prompt = Prompt {
        action: format!("/settings/account/mfa/factors/{id}/remove"),
        purpose: "remove this sign-in method",
        hidden: vec![],
        in_mfa_tab: true,
        then_get: false,
    };
    if let Some(prompt) = require(&req, &me, &state, form.password, prompt).await? {
        return Ok(prompt);
    }
    match state
        .auth
        .remove_factor(&me.user, CredentialId(id), &client(&req))
        .await?
    {
        Removed::Removed => me.session.set_flash(Flash::success("That sign-in method was removed.")),
        Removed::LastOne { epoch } => {
            me.session.rekey();
            let _ = me.session.insert(keys::EPOCH, epoch.0);
            me.session.set_flash(Flash::success(
                "That was your last sign-in method, so two-factor authentication is now off, its recovery codes were deleted, and your other sessions were signed out.",
            ));
        }
        Removed::NotFound => me
            .session
            .set_flash(Flash::info("That sign-in method was already removed.")),
    }
    Ok(redirect(TAB))
}

// ----------------------------------------------------------- the second step

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nothing {}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finish {
    ceremony: String,
    credential: PublicKeyCredential,
    /// The code prompt's "Remember this browser" checkbox.
    #[serde(default)]
    remember: bool,
}

pub async fn second_step_start(
    JsonPosted { who: pending, body: _ }: JsonPosted<PendingLogin, Nothing>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    Ok(challenge(state.auth.start_key_second_step(&pending.pending).await?))
}

pub async fn second_step_finish(
    JsonPosted { who: pending, body }: JsonPosted<PendingLogin, Finish>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let client = client(&req);
    let step = state
        .auth
        .finish_key_second_step(
            &pending.pending,
            &body.ceremony,
            &body.credential,
            &client,
            body.remember,
        )
        .await?;
    let session = &pending.session;
    let start_over = |message: &str| {
        session.clear();
        session.set_flash(Flash::error(message));
        go("/login")
    };
    Ok(match step {
        CodeStep::SignedIn(done) => {
            let next = session.text(keys::NEXT);
            let resp = super::login::finish_sign_in(
                &state,
                session,
                &done,
                &client.address.shown,
                &client.user_agent,
                next.as_deref(),
            )?;
            let to = resp
                .headers()
                .get(actix_web::http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("/")
                .to_string();
            let mut answer = go(&to);
            for cookie in resp.cookies() {
                answer.add_cookie(&cookie).map_err(AppError::internal)?;
            }
            answer
        }
        CodeStep::KeyRefused { refusal, attempts_left } if attempts_left > 0 => refused(refusal),
        CodeStep::KeyRefused { .. } | CodeStep::Ended => {
            start_over("Too many attempts. For your security, enter your username and password again.")
        }
        CodeStep::Gone | CodeStep::Refused { .. } | CodeStep::Throttled(_) => {
            start_over("Your sign-in took too long to finish. Enter your username and password again.")
        }
    })
}

// ------------------------------------------------------ a passkey alone

/// The owner of a signed-out browser's passkey ceremony: a nonce its
/// session keeps.
fn passkey_owner(session: &Session) -> String {
    if let Some(nonce) = session.text(keys::PASSKEY_NONCE) {
        return nonce;
    }
    let nonce = crate::core::keys::hex(&crate::core::random_bytes::<16>());
    let _ = session.insert(keys::PASSKEY_NONCE, &nonce);
    nonce
}

pub async fn passkey_start(
    JsonPosted {
        who: Visitor(session),
        body: _,
    }: JsonPosted<Visitor, Nothing>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let owner = passkey_owner(&session);
    Ok(challenge(state.auth.start_passkey_sign_in(&owner).await?))
}

pub async fn passkey_finish(
    JsonPosted {
        who: Visitor(session),
        body,
    }: JsonPosted<Visitor, Finish>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let owner = passkey_owner(&session);
    let client = client(&req);
    match state
        .auth
        .finish_passkey_sign_in(&owner, &body.ceremony, &body.credential, &client)
        .await?
    {
        Ok(done) => {
            let resp =
                super::login::finish_sign_in(&state, &session, &done, &client.address.shown, &client.user_agent, None)?;
            let mut answer = go("/");
            for cookie in resp.cookies() {
                answer.add_cookie(&cookie).map_err(AppError::internal)?;
            }
            Ok(answer)
        }
        Err(r) => Ok(refused(r)),
    }
}

// ------------------------------------- sudo mode and Disable MFA with a key

pub async fn sudo_start(
    JsonPosted { who: me, body: _ }: JsonPosted<SignedIn, Nothing>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    Ok(challenge(state.auth.start_key_confirmation(&me.user, &me.sid).await?))
}

/// A key in place of the password: the sudo window opens, and the page's
/// script continues with the action it was protecting.
pub async fn sudo_finish(
    JsonPosted { who: me, body }: JsonPosted<SignedIn, Finish>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let done = state
        .auth
        .finish_key_confirmation(
            &me.user,
            &me.sid,
            &body.ceremony,
            &body.credential,
            &client(&req),
            |_| Ok(()),
        )
        .await?;
    match done {
        Ok(()) => {
            let _ = me.session.insert(keys::PASSWORD_AT, state.clock.now());
            Ok(json(StatusCode::OK, &json!({ "confirmed": true })))
        }
        Err(r) => Ok(refused(r)),
    }
}

pub async fn disable_finish(
    JsonPosted { who: me, body }: JsonPosted<SignedIn, Finish>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if !me.sudo_fresh(state.clock.time()) {
        return Ok(json(
            StatusCode::FORBIDDEN,
            &json!({ "error": "Confirm your password first.", "redirect": "/settings/account/mfa/disable" }),
        ));
    }
    match state
        .auth
        .disable_mfa_with_key(&me.user, &me.sid, &body.ceremony, &body.credential, &client(&req))
        .await?
    {
        Ok(Disable::Done { epoch }) => {
            me.session.rekey();
            let _ = me.session.insert(keys::EPOCH, epoch.0);
            me.session.set_flash(Flash::success(
                "Two-factor authentication is off. Your security keys, authenticator app and recovery codes were removed, and your other sessions were signed out.",
            ));
            Ok(go(TAB))
        }
        Ok(_) => Ok(go(TAB)),
        Err(r) => Ok(refused(r)),
    }
}
