//! My account settings → Multi-factor authentication: enable (setup page,
//! confirm, recovery codes, Copied), regenerate recovery codes, disable.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use crate::core::qr;
use crate::core::recovery::RecoveryCode;
use crate::core::totp::{self, TotpCode, TotpSecret};
use crate::db::events::{self, Kind};
use crate::db::mfa::{self, ConfirmOutcome};
use crate::db::sessions;
use crate::web::AppState;
use crate::web::auth::{Client, CodeUse, FactorCheck, SignedIn, check_second_factor, factor_message, secret_context};
use crate::web::error::AppError;
use crate::web::forms::Posted;
use crate::web::pages::{
    MfaDisablePage, MfaSetupPage, MfaTabPage, Nav, Page, RecoveryCodesPage, Tab, format_time, ok, redirect, render,
};
use crate::web::session::{Flash, SessionExt, keys};

/// An unconfirmed secret is good for this long.
pub const ENROLMENT_SECONDS: i64 = 10 * 60;
const TAB: &str = "/settings/account/mfa";
const TITLE: &str = "Multi-factor authentication";
const MAX_CODE_INPUT: usize = 64;

fn page(req: &HttpRequest, me: &SignedIn) -> Page {
    Page::signed_in(req, me, Nav::AccountSettings, TITLE)
}

pub async fn tab(req: HttpRequest, me: SignedIn, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let id = me.user.id;
    let left = state.db.read(move |c| mfa::remaining_recovery_codes(c, id)).await?;
    ok(&MfaTabPage {
        page: page(&req, &me),
        tab: Tab::Mfa,
        enabled: me.user.mfa_enabled(),
        enabled_since: me
            .user
            .totp_enabled_at
            .filter(|_| me.user.mfa_enabled())
            .map(format_time),
        recovery_codes_left: left,
        generation: me.user.recovery_codes_generation,
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
    if me.user.mfa_enabled() {
        me.session
            .set_flash(Flash::info("Two-factor authentication is already on."));
        return Ok(redirect(TAB));
    }
    if let Some(prompt) = crate::web::sudo::require(
        &req,
        &me,
        &state,
        form.password,
        crate::web::sudo::Prompt {
            action: "/settings/account/mfa/enable".into(),
            purpose: "turn on two-factor authentication",
            hidden: vec![],
            in_mfa_tab: true,
        },
    )
    .await?
    {
        return Ok(prompt);
    }
    let secret = TotpSecret::generate();
    let sealed = state.keys.seal(secret.as_bytes(), &secret_context(me.user.id));
    let now = state.clock.now();
    let id = me.user.id;
    state.db.run(move |c| mfa::start_enrolment(c, id, &sealed, now)).await?;
    setup_page(&req, &me, &state, &secret, now, StatusCode::OK, None)
}

fn setup_page(
    req: &HttpRequest,
    me: &SignedIn,
    state: &AppState,
    secret: &TotpSecret,
    started: i64,
    status: StatusCode,
    flash: Option<Flash>,
) -> Result<HttpResponse, AppError> {
    let uri = totp::otpauth_uri(&state.issuer, &me.user.username, secret);
    let qr_svg = qr::svg(
        &uri,
        "mfa-qr",
        "QR code with your two-factor secret: scan it with your authenticator app",
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
            secret_grouped: secret.to_grouped(),
            uri,
            expires: format_time(started + ENROLMENT_SECONDS),
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
    if me.user.mfa_enabled() {
        me.session
            .set_flash(Flash::info("Two-factor authentication is already on."));
        return Ok(redirect(TAB));
    }
    let now = state.clock.now();
    let id = me.user.id;
    let not_before = now - ENROLMENT_SECONDS;
    let Some(enrolment) = state
        .db
        .read(move |c| mfa::pending_enrolment(c, id, not_before))
        .await?
    else {
        me.session.set_flash(Flash::error(
            "Your setup expired before it was confirmed (it is valid for 10 minutes). Click Enable to start again with a new QR code.",
        ));
        return Ok(redirect(TAB));
    };
    let bytes = state
        .keys
        .open(&enrolment.secret_sealed, &secret_context(id))
        .map_err(AppError::internal)?;
    let secret = TotpSecret::from_bytes(&bytes)
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("pending secret has the wrong length")))?;
    let retry = |status: StatusCode, message: &str| {
        setup_page(
            &req,
            &me,
            &state,
            &secret,
            enrolment.created_at,
            status,
            Some(Flash::error(message)),
        )
    };
    let code = match (form.code.len() <= MAX_CODE_INPUT)
        .then(|| TotpCode::parse(&form.code))
        .flatten()
    {
        Some(c) => c,
        None => {
            return retry(
                StatusCode::BAD_REQUEST,
                "Enter the 6-digit code that your authenticator app shows for Latchkey.",
            );
        }
    };
    let Some(step) = secret.verify(&code, now, state.totp_skew) else {
        return retry(StatusCode::UNPROCESSABLE_ENTITY, factor_message(&FactorCheck::Wrong));
    };
    let step = i64::try_from(step).map_err(AppError::internal)?;
    let codes = RecoveryCode::generate_set();
    let hashes: Vec<String> = codes.iter().map(|c| state.keys.recovery_hash(c.canonical())).collect();
    let sealed = enrolment.secret_sealed.clone();
    let event = Client::of(&req).event(Kind::MfaEnabled, Some(&me.user));
    let outcome = state
        .db
        .run(move |c| {
            let outcome = mfa::confirm_enrolment(c, id, &sealed, not_before, step, &hashes, now)?;
            if outcome == ConfirmOutcome::Enabled {
                events::record(c, &event, now)?;
            }
            Ok(outcome)
        })
        .await?;
    match outcome {
        ConfirmOutcome::Enabled => codes_page(&req, &me, &codes, true),
        ConfirmOutcome::AlreadyEnabled => {
            me.session
                .set_flash(Flash::info("Two-factor authentication is already on."));
            Ok(redirect(TAB))
        }
        ConfirmOutcome::NoLongerPending => {
            me.session.set_flash(Flash::error(
                "That setup is no longer pending (it expired or was replaced). Click Enable to start again.",
            ));
            Ok(redirect(TAB))
        }
    }
}

fn codes_page(
    req: &HttpRequest,
    me: &SignedIn,
    codes: &[RecoveryCode],
    first_time: bool,
) -> Result<HttpResponse, AppError> {
    let shown: Vec<String> = codes.iter().map(RecoveryCode::display).collect();
    let text = format!(
        "Latchkey recovery codes for {}\nEach code works once. Keep them somewhere safe.\n\n{}\n",
        me.user.username,
        shown.join("\n")
    );
    let download_href = format!(
        "data:text/plain;charset=utf-8,{}",
        percent_encoding::utf8_percent_encode(&text, percent_encoding::NON_ALPHANUMERIC)
    );
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
pub struct PlainForm {}

/// `POST …/recovery-codes/copied`: the user says they kept the codes.
pub async fn codes_copied(Posted { who: me, form: _ }: Posted<SignedIn, PlainForm>) -> Result<HttpResponse, AppError> {
    if me.user.mfa_enabled() {
        me.session.set_flash(Flash::success(
            "Two-factor authentication is on. From now on, signing in asks for a code from your app.",
        ));
    }
    Ok(redirect(TAB))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegenerateForm {
    password: Option<String>,
    /// The generation of codes the page showed (see `mfa::replace_recovery_codes`).
    generation: Option<i64>,
}

/// `POST …/recovery-codes`: a new set; the old one stops working at once.
pub async fn regenerate_codes(
    Posted { who: me, form }: Posted<SignedIn, RegenerateForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if !me.user.mfa_enabled() {
        me.session
            .set_flash(Flash::error("Turn on two-factor authentication first."));
        return Ok(redirect(TAB));
    }
    let generation = form.generation;
    let prompt = crate::web::sudo::Prompt {
        action: "/settings/account/mfa/recovery-codes".into(),
        purpose: "generate new recovery codes",
        hidden: generation
            .map(|g| vec![("generation", g.to_string())])
            .unwrap_or_default(),
        in_mfa_tab: true,
    };
    if let Some(prompt) = crate::web::sudo::require(&req, &me, &state, form.password, prompt).await? {
        return Ok(prompt);
    }
    let codes = RecoveryCode::generate_set();
    let hashes: Vec<String> = codes.iter().map(|c| state.keys.recovery_hash(c.canonical())).collect();
    let now = state.clock.now();
    let id = me.user.id;
    let event = Client::of(&req).event(Kind::RecoveryCodesRegenerated, Some(&me.user));
    let replaced = state
        .db
        .run(move |c| {
            let replaced = mfa::replace_recovery_codes(c, id, generation, &hashes, now)?;
            if replaced {
                events::record(c, &event, now)?;
            }
            Ok(replaced)
        })
        .await?;
    if !replaced {
        me.session.set_flash(Flash::error(
            "Your recovery codes were just replaced by another request (a second click, or another tab), so these were not made. Use the codes that request showed, or generate a new set now.",
        ));
        return Ok(redirect(TAB));
    }
    codes_page(&req, &me, &codes, false)
}

/// `GET …/disable`: the confirmation page (after the password, if stale).
pub async fn disable_form(
    req: HttpRequest,
    me: SignedIn,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if !me.user.mfa_enabled() {
        me.session
            .set_flash(Flash::info("Two-factor authentication is already off."));
        return Ok(redirect(TAB));
    }
    if let Some(prompt) = crate::web::sudo::require(
        &req,
        &me,
        &state,
        None,
        crate::web::sudo::Prompt {
            action: "/settings/account/mfa/disable".into(),
            purpose: "turn off two-factor authentication",
            hidden: vec![],
            in_mfa_tab: true,
        },
    )
    .await?
    {
        return Ok(prompt);
    }
    ok(&MfaDisablePage {
        page: page(&req, &me),
        tab: Tab::Mfa,
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
    if !me.user.mfa_enabled() {
        me.session
            .set_flash(Flash::info("Two-factor authentication is already off."));
        return Ok(redirect(TAB));
    }
    let action = "/settings/account/mfa/disable";
    let purpose = "turn off two-factor authentication";
    let had_password = form.password.is_some();
    if let Some(prompt) = crate::web::sudo::require(
        &req,
        &me,
        &state,
        form.password,
        crate::web::sudo::Prompt {
            action: action.into(),
            purpose,
            hidden: vec![],
            in_mfa_tab: true,
        },
    )
    .await?
    {
        return Ok(prompt);
    }
    if had_password && form.code.is_none() {
        // The password prompt was answered: on to the confirmation page.
        return Ok(redirect(action));
    }
    let again = |status: StatusCode, message: &str| {
        render(
            status,
            &MfaDisablePage {
                page: page(&req, &me).with_flash(Flash::error(message)),
                tab: Tab::Mfa,
            },
        )
    };
    let code = form.code.unwrap_or_default();
    if code.trim().is_empty() || code.len() > MAX_CODE_INPUT {
        return again(
            StatusCode::BAD_REQUEST,
            "Enter a current code from your authenticator app, or a recovery code, to confirm.",
        );
    }
    let client = Client::of(&req);
    match check_second_factor(&state, &me.user, &code, &client, CodeUse::Confirm).await? {
        FactorCheck::Totp | FactorCheck::Recovery => {}
        FactorCheck::Throttled(wait) => {
            return Err(AppError::Throttled {
                retry_after: wait,
                message: "Too many incorrect codes.".into(),
            });
        }
        FactorCheck::Malformed => return again(StatusCode::BAD_REQUEST, factor_message(&FactorCheck::Malformed)),
        other => return again(StatusCode::UNAUTHORIZED, factor_message(&other)),
    }
    let now = state.clock.now();
    let id = me.user.id;
    let event = client.event(Kind::MfaDisabled, Some(&me.user));
    let verified_secret = me.user.totp_secret_sealed.clone();
    let disabled = state
        .db
        .run(move |c| {
            if !mfa::disable(c, id, verified_secret.as_deref())? {
                return Ok(None);
            }
            events::record(c, &event, now)?;
            // Sign the user out everywhere; this session goes on under a new key.
            Ok(sessions::revoke_all(c, id, None)?.map(|(_, epoch)| epoch))
        })
        .await?;
    let Some(new_epoch) = disabled else {
        me.session.set_flash(Flash::info(
            "Two-factor authentication had already been turned off or changed; nothing was done.",
        ));
        return Ok(redirect(TAB));
    };
    me.session.rekey();
    let _ = me.session.insert(keys::EPOCH, new_epoch);
    me.session.set_flash(Flash::success(
        "Two-factor authentication is off. Its secret and recovery codes were deleted, and your other sessions were signed out.",
    ));
    Ok(redirect(TAB))
}
