//! My account settings → Multi-factor authentication: enable (setup page,
//! confirm, recovery codes, Copied), regenerate recovery codes, disable.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::sudo::{Prompt, require};
use super::two_factor::{MAX_CODE_INPUT, malformed_message, refusal_message};
use crate::auth::account::Disable;
use crate::auth::factors::{InputKind, Refusal, Rejected};
use crate::auth::totp::{ConfirmOutcome, TotpSetup};
use crate::auth::webauthn::describe_key;
use crate::core::qr;
use crate::core::recovery::RecoveryCode;
use crate::core::totp;
use crate::db::credentials::CredentialKind;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::{SignedIn, client};
use crate::web::format::format_time;
use crate::web::forms::Posted;
use crate::web::pages::{KeyRow, MfaDisablePage, MfaSetupPage, MfaTabPage, Nav, Page, RecoveryCodesPage, Tab};
use crate::web::responses::{ok, redirect, render};
use crate::web::session::{Flash, SessionExt, keys};

const TAB: &str = "/settings/account/mfa";
const TITLE: &str = "Multi-factor authentication";
const SETUP: &str = "/settings/account/mfa/setup";
const FRESH: &str = "/settings/account/mfa/recovery-codes/new";

fn page(req: &HttpRequest, me: &SignedIn) -> Page {
    Page::signed_in(req, me, Nav::AccountSettings, TITLE)
}

pub async fn tab(req: HttpRequest, me: SignedIn, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let overview = state.auth.mfa_overview(&me.user).await?;
    let totp = overview
        .credentials
        .iter()
        .find(|c| c.kind() == Some(CredentialKind::Totp));
    let keys = overview
        .credentials
        .iter()
        .filter(|c| c.kind() == Some(CredentialKind::WebAuthn))
        .map(|c| KeyRow {
            id: c.id.0,
            name: c.name.clone(),
            added: format_time(c.created_at.0),
            last_used: c.last_used_at.map(format_time),
            synced: describe_key(c).is_some_and(|k| k.synced),
        })
        .collect();
    ok(&MfaTabPage {
        page: page(&req, &me),
        tab: Tab::Mfa,
        totp_since: totp.and_then(|c| c.confirmed_at).map(format_time),
        totp_id: totp.map(|c| c.id.0),
        keys,
        keys_available: state.auth.keys_available(),
        enabled: overview.enabled(),
        enabled_since: overview.enabled_since.map(format_time),
        recovery_codes_left: overview.recovery_codes_left,
        generation: overview.codes_generation,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SudoForm {
    password: Option<String>,
}

/// `POST …/enable`: a fresh secret (replacing any pending one), then the setup page.
pub async fn enable(
    Posted { who: me, form }: Posted<SignedIn, SudoForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if state.auth.has_totp(&me.user).await? {
        me.session
            .set_flash(Flash::info("Your authenticator app is already set up."));
        return Ok(redirect(TAB));
    }
    let prompt = Prompt {
        action: "/settings/account/mfa/enable".into(),
        purpose: "turn on two-factor authentication",
        hidden: vec![],
        in_mfa_tab: true,
        then_get: false,
    };
    if let Some(prompt) = require(&req, &me, &state, form.password, prompt).await? {
        return Ok(prompt);
    }
    if state.auth.start_totp(&me.user, &me.sid).await?.is_none() {
        me.session
            .set_flash(Flash::info("Two-factor authentication is already on."));
        return Ok(redirect(TAB));
    }
    // Post/Redirect/Get: a reload of the setup page shows the same secret
    // and starts nothing new.
    Ok(redirect(SETUP))
}

/// `GET …/setup`: the pending enrolment this session started (QR code,
/// secret, code field), for as long as it is pending.
pub async fn setup(req: HttpRequest, me: SignedIn, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let Some(setup) = state.auth.pending_totp(&me.user, &me.sid).await? else {
        me.session
            .set_flash(Flash::info(if state.auth.has_totp(&me.user).await? {
                "Your authenticator app is already set up."
            } else {
                "There is no setup in progress (it is valid for 10 minutes). Click Enable to start with a new QR code."
            }));
        return Ok(redirect(TAB));
    };
    setup_page(&req, &me, &state, &setup, StatusCode::OK, None)
}

/// `POST …/setup/cancel`: drop the pending secret; nothing else changes.
pub async fn cancel_setup(
    Posted { who: me, form: _ }: Posted<SignedIn, NoFields>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if state.auth.cancel_totp(&me.user, &me.sid).await? {
        me.session.set_flash(Flash::info(if me.mfa_on {
            "Setup cancelled. No authenticator app was added."
        } else {
            "Setup cancelled. Two-factor authentication stays off."
        }));
    }
    Ok(redirect(TAB))
}

fn setup_page(
    req: &HttpRequest,
    me: &SignedIn,
    state: &AppState,
    setup: &TotpSetup,
    status: StatusCode,
    flash: Option<Flash>,
) -> Result<HttpResponse, AppError> {
    let uri = totp::otpauth_uri(&state.auth.settings().issuer, &me.user.username, &setup.secret);
    let qr_svg = qr::svg(
        &uri,
        "mfa-qr",
        "QR code with your setup key: scan it with your authenticator app",
    )
    .ok_or_else(|| AppError::internal(anyhow::anyhow!("otpauth URI too long for a QR code")))?;
    let mut p = page(req, me);
    if let Some(f) = flash {
        p = p.with_flash(f);
    }
    render(
        status,
        &MfaSetupPage {
            page: p,
            tab: Tab::Mfa,
            qr_svg,
            secret_grouped: setup.secret.to_grouped(),
            uri,
            expires: format_time(setup.expires_at.0),
        },
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfirmForm {
    code: String,
}

/// `POST …/confirm`: a correct code from the pending secret turns 2FA on and
/// shows the recovery codes, once.
pub async fn confirm(
    Posted { who: me, form }: Posted<SignedIn, ConfirmForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let code = if form.code.len() <= MAX_CODE_INPUT {
        form.code.as_str()
    } else {
        ""
    };
    let outcome = state.auth.confirm_totp(&me.user, &me.sid, code, &client(&req)).await?;
    let retry = |setup: &TotpSetup, status: StatusCode, message: String| {
        setup_page(&req, &me, &state, setup, status, Some(Flash::error(message)))
    };
    match outcome {
        ConfirmOutcome::Confirmed { codes: Some(codes) } => {
            hold_codes(&me, &state, &codes, true)?;
            Ok(redirect(FRESH))
        }
        ConfirmOutcome::Confirmed { codes: None } => {
            me.session
                .set_flash(Flash::success("Your authenticator app was added."));
            Ok(redirect(TAB))
        }
        ConfirmOutcome::Malformed(setup) => retry(
            &setup,
            StatusCode::BAD_REQUEST,
            "Enter the 6-digit code that your authenticator app shows for Latchkey.".into(),
        ),
        ConfirmOutcome::Wrong(setup) => {
            let left = setup.attempts_left;
            retry(
                &setup,
                StatusCode::UNPROCESSABLE_ENTITY,
                format!(
                    "{} {left} attempt{} left with this QR code.",
                    refusal_message(Refusal::Wrong(InputKind::Totp)),
                    if left == 1 { "" } else { "s" }
                ),
            )
        }
        ConfirmOutcome::Ended => {
            me.session.set_flash(Flash::error(
                "Too many incorrect codes for this setup, so it was cancelled. Click Enable to start again with a new QR code.",
            ));
            Ok(redirect(TAB))
        }
        // Confirmed by a concurrent Confirm of this setup: as below.
        ConfirmOutcome::NotPending if state.auth.has_totp(&me.user).await? => Ok(redirect(FRESH)),
        ConfirmOutcome::NotPending => {
            me.session.set_flash(Flash::error(
                "Your setup expired before it was confirmed (it is valid for 10 minutes), or was replaced. Click Enable to start again with a new QR code.",
            ));
            Ok(redirect(TAB))
        }
        // A second click on Confirm (or twenty at once): the winner's codes
        // wait in the session for their one showing. Send this one there
        // too, and write nothing to the session here: a write from a
        // request that read the session before the winner saved it would
        // drop the waiting codes. The GET shows them, or says they were
        // shown already.
        ConfirmOutcome::AlreadyOn => Ok(redirect(FRESH)),
    }
}

/// Keep new recovery codes for their one showing (`GET …/recovery-codes/new`),
/// sealed with the server key in this session's server-side state.
pub fn hold_codes(me: &SignedIn, state: &AppState, codes: &[RecoveryCode], first_time: bool) -> Result<(), AppError> {
    let plain: Vec<String> = codes.iter().map(RecoveryCode::display).collect();
    let text = serde_json::to_string(&(plain, first_time)).map_err(AppError::internal)?;
    let sealed = state.keys.seal(text.as_bytes(), &format!("fresh-codes:{}", me.sid));
    me.session.insert(keys::FRESH_CODES, sealed).map_err(AppError::internal)
}

/// `GET /settings/account/mfa/recovery-codes/new`: new codes, shown once.
pub async fn fresh_codes(req: HttpRequest, me: SignedIn, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let Some(sealed) = me.session.text(keys::FRESH_CODES) else {
        me.session.set_flash(Flash::info(
            "Recovery codes are shown only once. If you did not keep them, generate a new set.",
        ));
        return Ok(redirect(TAB));
    };
    me.session.remove(keys::FRESH_CODES);
    let text = state
        .keys
        .open(&sealed, &format!("fresh-codes:{}", me.sid))
        .map_err(AppError::internal)?;
    let (codes, first_time): (Vec<String>, bool) = serde_json::from_slice(&text).map_err(AppError::internal)?;
    shown_codes_page(&req, &me, codes, first_time)
}

fn shown_codes_page(
    req: &HttpRequest,
    me: &SignedIn,
    shown: Vec<String>,
    first_time: bool,
) -> Result<HttpResponse, AppError> {
    let text = format!(
        "Latchkey recovery codes for {}\nEach code works once. Keep them somewhere safe.\n\n{}\n",
        me.user.username,
        shown.join("\n")
    );
    let download_href = format!(
        "data:text/plain;charset=utf-8,{}",
        percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC)
    );
    // Which message Copied gives: a first set, or a new set.
    let _ = me.session.insert(keys::CODES_SHOWN, first_time);
    ok(&RecoveryCodesPage {
        page: page(req, me),
        tab: Tab::Mfa,
        codes: shown,
        download_href,
        first_time,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// `POST …/recovery-codes/copied`: the user says they kept the codes.
pub async fn codes_copied(
    Posted { who: me, form: _ }: Posted<SignedIn, NoFields>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let shown = me.session.get::<bool>(keys::CODES_SHOWN).ok().flatten();
    me.session.remove(keys::CODES_SHOWN);
    match shown {
        Some(true) if me.mfa_on => {
            let with = if state.auth.has_totp(&me.user).await? {
                "a code from your app"
            } else {
                "your security key or passkey"
            };
            me.session.set_flash(Flash::success(format!(
                "Two-factor authentication is on. From now on, signing in asks for {with}."
            )));
        }
        Some(false) if me.mfa_on => me.session.set_flash(Flash::success(CODES_REPLACED)),
        _ => {}
    }
    Ok(redirect(TAB))
}

/// Copied, after new codes (not the first set).
pub const CODES_REPLACED: &str = "Your new recovery codes are ready. The earlier ones no longer work.";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegenerateForm {
    password: Option<String>,
    /// The generation of codes the page showed (see `regenerate_recovery_codes`).
    generation: Option<i64>,
}

/// `POST …/recovery-codes`: a new set; the old one stops working at once.
pub async fn regenerate_codes(
    Posted { who: me, form }: Posted<SignedIn, RegenerateForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if !me.mfa_on {
        me.session
            .set_flash(Flash::error("Turn on two-factor authentication first."));
        return Ok(redirect(TAB));
    }
    let generation = form.generation;
    let prompt = Prompt {
        action: "/settings/account/mfa/recovery-codes".into(),
        purpose: "generate new recovery codes",
        hidden: generation
            .map(|g| vec![("generation", g.to_string())])
            .unwrap_or_default(),
        in_mfa_tab: true,
        then_get: false,
    };
    if let Some(prompt) = require(&req, &me, &state, form.password, prompt).await? {
        return Ok(prompt);
    }
    let Some(codes) = state
        .auth
        .regenerate_recovery_codes(&me.user, generation, &client(&req))
        .await?
    else {
        // A second click: the first one's codes wait for their one showing
        // in this session. Go there and write nothing to the session (a
        // write here could drop them).
        if me.session.text(keys::FRESH_CODES).is_some() {
            return Ok(redirect(FRESH));
        }
        me.session.set_flash(Flash::error(
            "Your recovery codes were just replaced by another request (another tab, or another session), so these were not made. Generate a new set now if you did not keep the ones that request made.",
        ));
        return Ok(redirect(TAB));
    };
    hold_codes(&me, &state, &codes, false)?;
    Ok(redirect(FRESH))
}

fn disable_prompt() -> Prompt {
    Prompt {
        action: "/settings/account/mfa/disable".into(),
        purpose: "turn off two-factor authentication",
        hidden: vec![],
        in_mfa_tab: true,
        // A key at the prompt continues to the confirmation page.
        then_get: true,
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableQuery {
    /// `recovery-code`: the field is set up for a recovery code (the
    /// switch's link when JavaScript is off).
    #[serde(rename = "use")]
    with: Option<String>,
}

/// Whether a typed code looks like a recovery code rather than six digits.
fn looks_like_recovery_code(code: &str) -> bool {
    code.chars().any(|c| c.is_ascii_alphabetic())
}

/// `GET …/disable`: the confirmation page (after the password, if stale).
pub async fn disable_form(
    req: HttpRequest,
    me: SignedIn,
    state: web::Data<AppState>,
    query: web::Query<DisableQuery>,
) -> Result<HttpResponse, AppError> {
    let recovery = match query.with.as_deref() {
        None => false,
        Some("recovery-code") => true,
        Some(_) => {
            return Err(AppError::BadRequest(
                "The address asked for a kind of code this page does not know.".into(),
            ));
        }
    };
    if !me.mfa_on {
        me.session
            .set_flash(Flash::info("Two-factor authentication is already off."));
        return Ok(redirect(TAB));
    }
    if let Some(prompt) = require(&req, &me, &state, None, disable_prompt()).await? {
        return Ok(prompt);
    }
    ok(&MfaDisablePage {
        page: page(&req, &me),
        tab: Tab::Mfa,
        has_keys: state.auth.keys_available() && state.auth.has_keys(me.user.id).await?,
        recovery,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisableForm {
    code: Option<String>,
    password: Option<String>,
}

/// `POST …/disable`: with a current code, 2FA goes off, and so does every
/// other session of the user.
pub async fn disable(
    Posted { who: me, form }: Posted<SignedIn, DisableForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if !me.mfa_on {
        me.session
            .set_flash(Flash::info("Two-factor authentication is already off."));
        return Ok(redirect(TAB));
    }
    let had_password = form.password.is_some();
    if let Some(prompt) = require(&req, &me, &state, form.password, disable_prompt()).await? {
        return Ok(prompt);
    }
    if had_password && form.code.is_none() {
        // The password prompt was answered: on to the confirmation page.
        return Ok(redirect("/settings/account/mfa/disable"));
    }
    let has_keys = state.auth.keys_available() && state.auth.has_keys(me.user.id).await?;
    let code = form.code.unwrap_or_default();
    let recovery = looks_like_recovery_code(&code);
    let again = |status: StatusCode, message: &str| {
        render(
            status,
            &MfaDisablePage {
                page: page(&req, &me).with_flash(Flash::error(message)),
                tab: Tab::Mfa,
                has_keys,
                recovery,
            },
        )
    };
    if code.trim().is_empty() || code.len() > MAX_CODE_INPUT {
        return again(
            StatusCode::BAD_REQUEST,
            "Enter a current code from your authenticator app, or a recovery code, to confirm.",
        );
    }
    match state.auth.disable_mfa(&me.user, &code, &client(&req)).await? {
        Disable::Done { epoch } => {
            me.session.rekey();
            let _ = me.session.insert(keys::EPOCH, epoch.0);
            me.session.set_flash(Flash::success(
                "Two-factor authentication is off. Its secret and recovery codes were deleted, and your other sessions were signed out.",
            ));
            Ok(redirect(TAB))
        }
        Disable::AlreadyOff => {
            me.session.set_flash(Flash::info(
                "Two-factor authentication had already been turned off or changed; nothing was done.",
            ));
            Ok(redirect(TAB))
        }
        Disable::Refused(Rejected::Throttled(wait)) => Err(AppError::Throttled {
            retry_after: wait,
            message: "Too many incorrect codes.".into(),
        }),
        Disable::Refused(Rejected::Refused(Refusal::Malformed)) => {
            again(StatusCode::BAD_REQUEST, malformed_message(&code))
        }
        Disable::Refused(Rejected::Refused(refusal)) => again(StatusCode::UNAUTHORIZED, refusal_message(refusal)),
    }
}
