//! Email: the address on the Profile tab (sudo), the new-browser setting,
//! and the two links messages carry — verification, and "This wasn't me".
//! Both links open a confirmation page first (mail scanners fetch links;
//! only a person's POST acts), and both work signed out.

use actix_session::Session;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;

use super::sudo::{Prompt, require};
use crate::auth::email::{EmailChange, LinkRefusal};
use crate::core::notice::Notice;
use crate::web::AppState;
use crate::web::error::AppError;
use crate::web::extract::{SignedIn, Visitor, client};
use crate::web::format::format_time;
use crate::web::forms::Posted;
use crate::web::pages::{EmailLinkPage, Nav, Page};
use crate::web::responses::{ok, redirect, render};
use crate::web::session::{Flash, SessionExt};

const PROFILE: &str = "/settings/account";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailForm {
    email: String,
    /// The sudo prompt's password, when it was asked for.
    password: Option<String>,
}

/// `POST /settings/account/email`: set, change or (empty) remove the
/// address. A new one is sent a verification link.
pub async fn set_email(
    Posted { who: me, form }: Posted<SignedIn, EmailForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if !state.mail_enabled {
        return Err(AppError::NotFound);
    }
    if form.email.len() > 320 {
        return Err(AppError::BadRequest("That email address is too long.".into()));
    }
    let prompt = Prompt {
        action: "/settings/account/email".into(),
        purpose: "change your email address",
        hidden: vec![("email", form.email.clone())],
        in_mfa_tab: false,
        then_get: false,
    };
    if let Some(page) = require(&req, &me, &state, form.password, prompt).await? {
        return Ok(page);
    }
    let outcome = state.auth.set_own_email(&me.user, &form.email, &client(&req)).await?;
    let flash = match outcome {
        EmailChange::VerificationSent => Flash::success(format!(
            "We sent a link to {} to verify it. Until you open it, that address gets no notifications.",
            form.email.trim()
        )),
        EmailChange::Verified => Flash::success("Your email address was saved."),
        EmailChange::Removed => Flash::success("Your email address was removed. You will get no security emails."),
        EmailChange::Unchanged => Flash::info("Your email address is unchanged."),
        EmailChange::Invalid => {
            return Err(AppError::BadRequest(
                "That is not an email address. Use one like name@example.com.".into(),
            ));
        }
        EmailChange::TooMany => {
            return Err(AppError::Throttled {
                retry_after: 24 * 60 * 60,
                message: "Too many verification emails today.".into(),
            });
        }
    };
    me.session.set_flash(flash);
    Ok(redirect(PROFILE))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFields {}

/// `POST /settings/account/email/resend`: the verification link again.
pub async fn resend(
    Posted { who: me, form: _ }: Posted<SignedIn, NoFields>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if !state.mail_enabled {
        return Err(AppError::NotFound);
    }
    let flash = match state.auth.resend_verification(&me.user, &client(&req)).await? {
        EmailChange::VerificationSent => Flash::success("We sent the verification link again."),
        EmailChange::TooMany => {
            return Err(AppError::Throttled {
                retry_after: 24 * 60 * 60,
                message: "Too many verification emails today.".into(),
            });
        }
        _ => Flash::info("There is no address waiting to be verified."),
    };
    me.session.set_flash(flash);
    Ok(redirect(PROFILE))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotifyForm {
    notify_new_browser: Option<String>,
    /// The sudo prompt's password, when it was asked for.
    password: Option<String>,
}

/// `POST /settings/account/notifications`: new-browser emails on or off
/// (sudo: someone in a session cannot quietly turn them off).
pub async fn notifications(
    Posted { who: me, form }: Posted<SignedIn, NotifyForm>,
    req: HttpRequest,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    if !state.mail_enabled {
        return Err(AppError::NotFound);
    }
    let on = match form.notify_new_browser.as_deref() {
        None => false,
        Some("on") => true,
        Some(_) => return Err(AppError::BadRequest("That setting is either on or off.".into())),
    };
    let prompt = Prompt {
        action: "/settings/account/notifications".into(),
        purpose: "change your email settings",
        hidden: if on {
            vec![("notify_new_browser", "on".to_string())]
        } else {
            vec![]
        },
        in_mfa_tab: false,
        then_get: false,
    };
    if let Some(page) = require(&req, &me, &state, form.password, prompt).await? {
        return Ok(page);
    }
    state.auth.set_notify_new_browser(&me.user, on, &client(&req)).await?;
    me.session.set_flash(Flash::success(if on {
        "You will get an email when your account is signed in to from a new browser."
    } else {
        "You will no longer get emails about sign-ins from new browsers. Every other security email still comes."
    }));
    Ok(redirect(PROFILE))
}

/// The page for a link that does nothing (any more), with a 4xx status.
fn refused(req: &HttpRequest, session: &Session, refusal: LinkRefusal, verify: bool) -> Result<HttpResponse, AppError> {
    let (status, text) = match refusal {
        LinkRefusal::Unknown => (
            StatusCode::NOT_FOUND,
            "This link is not valid. Check that it was copied whole.",
        ),
        LinkRefusal::Used => (StatusCode::GONE, "This link was used already. Each link works once."),
        LinkRefusal::Expired => (
            StatusCode::GONE,
            if verify {
                "This link has expired: verification links work for 24 hours. Send a new one from your Profile tab."
            } else {
                "This link has expired: it worked for 7 days. If something is wrong with your account, change your password and check your sessions, or ask your administrator."
            },
        ),
        LinkRefusal::Superseded => (
            StatusCode::GONE,
            "This link is for an address your account no longer has.",
        ),
    };
    let page = Page::new(req, session, None, Nav::None, "Link not valid").with_flash(Flash::error(text));
    render(
        status,
        &EmailLinkPage {
            page,
            heading: "This link does not work".into(),
            lines: vec![],
            items: vec![],
            action: None,
            button_id: "",
            button_label: "",
            danger: false,
        },
    )
}

fn check_token(token: &str) -> Result<(), AppError> {
    if token.len() > 128 {
        return Err(AppError::NotFound);
    }
    Ok(())
}

/// `GET /email/verify/{token}`: what the link will do, and a button.
pub async fn verify_form(
    req: HttpRequest,
    Visitor(session): Visitor,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    check_token(&token)?;
    let link = match state.auth.check_email_link(&token, true).await? {
        Ok(l) => l,
        Err(r) => return refused(&req, &session, r, true),
    };
    ok(&EmailLinkPage {
        page: Page::new(&req, &session, None, Nav::None, "Verify your email address"),
        heading: "Verify your email address".into(),
        lines: vec![format!(
            "Confirm that {} is the address of {} for security notifications.",
            link.message.to_address, link.user.username
        )],
        items: vec![],
        action: Some(format!("/email/verify/{token}")),
        button_id: "email-verify-confirm",
        button_label: "Verify this address",
        danger: false,
    })
}

/// `POST /email/verify/{token}`.
pub async fn verify(
    Posted {
        who: Visitor(session),
        form: _,
    }: Posted<Visitor, NoFields>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    check_token(&token)?;
    match state.auth.verify_email(&token, &client(&req)).await? {
        Ok(user) => ok(&EmailLinkPage {
            page: Page::new(&req, &session, None, Nav::None, "Email address verified")
                .with_flash(Flash::success("Your email address is verified.")),
            heading: "Email address verified".into(),
            lines: vec![format!(
                "{} will get security notifications at this address from now on.",
                user.username
            )],
            items: vec![],
            action: None,
            button_id: "",
            button_label: "",
            danger: false,
        }),
        Err(r) => refused(&req, &session, r, true),
    }
}

/// `GET /email/not-me/{token}`: what happened, what the button will do.
pub async fn not_me_form(
    req: HttpRequest,
    Visitor(session): Visitor,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    check_token(&token)?;
    let link = match state.auth.check_email_link(&token, false).await? {
        Ok(l) => l,
        Err(r) => return refused(&req, &session, r, false),
    };
    let what = link
        .message
        .notice()
        .map(|n| n.subject(&state.auth.settings.issuer))
        .unwrap_or_default();
    ok(&EmailLinkPage {
        page: Page::new(&req, &session, None, Nav::None, "This wasn’t me"),
        heading: "Secure your account".into(),
        lines: vec![
            format!(
                "The message “{what}” of {} was about the account {}.",
                format_time(link.message.created_at),
                link.user.username
            ),
            "If you did not do this, secure the account now:".into(),
        ],
        items: {
            let mut items = vec![
                "every session of the account is signed out, everywhere;".to_string(),
                "its remembered and known browsers are forgotten;".into(),
                "sign-in methods (authenticator apps, security keys, passkeys) added since this message are removed;"
                    .into(),
            ];
            match link.message.notice() {
                Some(Notice::CodesRegenerated) => {
                    items.push("the recovery codes made then are deleted (make a new set after you sign in);".into())
                }
                Some(Notice::EmailChanged) => items.push(format!(
                    "the address for security emails is set back to {};",
                    link.message.to_address
                )),
                _ => {}
            }
            items.push("the next sign-in asks for a new password before anything else.".into());
            items
        },
        action: Some(format!("/email/not-me/{token}")),
        button_id: "not-me-confirm",
        button_label: "Sign out everywhere and require a new password",
        danger: true,
    })
}

/// `POST /email/not-me/{token}`.
pub async fn not_me(
    Posted {
        who: Visitor(session),
        form: _,
    }: Posted<Visitor, NoFields>,
    req: HttpRequest,
    state: web::Data<AppState>,
    path: web::Path<String>,
) -> Result<HttpResponse, AppError> {
    let token = path.into_inner();
    check_token(&token)?;
    match state.auth.not_me(&token, &client(&req)).await? {
        Ok(user) => {
            // If this browser was signed in as that user, it is not any more.
            session.purge();
            ok(&EmailLinkPage {
                page: Page::new(&req, &session, None, Nav::None, "Account secured").with_flash(Flash::success(
                    "Done: every session was signed out and remembered browsers were forgotten.",
                )),
                heading: "Your account is secured".into(),
                lines: vec![
                    format!(
                        "The next sign-in to {} asks for a new password before anything else. Sign in and choose one now.",
                        user.username
                    ),
                    "Then look at the security log in My account settings for anything you don’t recognise, and tell your administrator.".into(),
                ],
                items: vec![],
                action: None,
                button_id: "",
                button_label: "",
                danger: false,
            })
        }
        Err(r) => refused(&req, &session, r, false),
    }
}
