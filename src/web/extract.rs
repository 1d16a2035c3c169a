//! Who is asking: the client (network, browser, known-browser token), the
//! signed-in user, the administrator, the sign-in waiting for its second
//! step. Extractors, so every handler gets them checked the same way.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_session::{Session, SessionExt as _};
use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest, web};

use super::AppState;
use super::error::AppError;
use super::format::format_time;
use super::session::{Flash, SessionExt, Stage, keys};
use crate::auth::Client;
use crate::core::address::ClientAddress;
use crate::core::limits::{SESSION_ABSOLUTE_SECONDS, SUDO_SECONDS};
use crate::core::policy::{Factors, Standing as PolicyStanding};
use crate::core::types::{SessionEpoch, UnixTime};
use crate::db::users::User;

pub fn state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .expect("AppState is registered")
}

/// The client as the service sees it.
pub fn client(req: &HttpRequest) -> Client {
    let state = state(req);
    let address = client_address(req, &state.trusted_proxies).map_or_else(ClientAddress::unknown, ClientAddress::of);
    let user_agent = req
        .headers()
        .get(actix_web::http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.chars().take(512).collect());
    let browser_token = req
        .cookie(super::cookies::browser_cookie_name(state.secure_cookies))
        .map(|c| c.value().to_string())
        .filter(|v| v.len() <= 64);
    let remember_token = req
        .cookie(super::cookies::remember_cookie_name(state.secure_cookies))
        .map(|c| c.value().to_string())
        .filter(|v| v.len() <= 64);
    Client {
        address,
        user_agent,
        browser_token,
        remember_token,
    }
}

/// The TCP peer, or — when the peer is a trusted proxy — the nearest
/// address in `X-Forwarded-For` that is not a trusted proxy. (Entries left of
/// it were written by the client and prove nothing.)
fn client_address(req: &HttpRequest, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = req.peer_addr()?.ip();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded: Vec<IpAddr> = req
        .headers()
        .get_all("x-forwarded-for")
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    Some(
        forwarded
            .into_iter()
            .rev()
            .find(|ip| !trusted.contains(ip))
            .unwrap_or(peer),
    )
}

/// Where to come back to after signing in: this page, if it is a GET.
fn return_path(req: &HttpRequest) -> Option<String> {
    (req.method() == Method::GET)
        .then(|| req.uri().path_and_query().map(|p| p.as_str().to_string()))
        .flatten()
}

/// A fully signed-in user. Anyone else is sent to the login page.
///
/// Two obligations are enforced here, for every signed-in page at once: an
/// account with a temporary password reaches only the password form, and an
/// account past the 2FA policy's deadline reaches only the MFA setup.
pub struct SignedIn {
    pub user: User,
    /// Whether the user has 2FA on.
    pub mfa_on: bool,
    pub session: Session,
    pub password_at: UnixTime,
    pub epoch: SessionEpoch,
    /// The session's public id (the sessions list, its password counter,
    /// the owner of a pending enrolment).
    pub sid: String,
    /// A banner for every page (the 2FA policy's deadline).
    pub notice: Option<String>,
}

impl SignedIn {
    /// Whether the password was entered recently enough for sensitive actions.
    pub fn sudo_fresh(&self, now: UnixTime) -> bool {
        now.since(self.password_at) <= SUDO_SECONDS
    }
}

/// Where a user with an obligation may still go.
fn allowed_while(path: &str, prefixes: &[&str]) -> bool {
    path == "/logout"
        || prefixes
            .iter()
            .any(|p| path == *p || path.starts_with(&format!("{p}/")))
}

pub const CHANGE_PASSWORD_PATH: &str = "/settings/account/password";
pub const MFA_PATH: &str = "/settings/account/mfa";

impl FromRequest for SignedIn {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let session = req.get_session();
            let state = state(&req);
            let now = state.clock.time();
            let login = || AppError::LoginRequired {
                next: return_path(&req),
            };
            let (Some(Stage::SignedIn), Some(uid)) = (session.stage(), session.user_id()) else {
                return Err(login());
            };
            if now.0 - session.int(keys::SIGNED_IN_AT) > SESSION_ABSOLUTE_SECONDS {
                session.purge();
                return Err(login());
            }
            let epoch = SessionEpoch(session.int(keys::EPOCH));
            // Gone, or every session of the account was revoked since this
            // one signed in (the epoch moved on).
            let Some(standing) = state
                .auth
                .standing(uid)
                .await?
                .filter(|s| s.user.session_epoch == epoch)
            else {
                session.purge();
                return Err(login());
            };
            let user = standing.user;
            let path = req.path();
            if user.must_change_password && !allowed_while(path, &[CHANGE_PASSWORD_PATH]) {
                session.set_flash(Flash::info(
                    "Your account has a temporary password. Choose your own password to continue.",
                ));
                return Err(AppError::Redirect(CHANGE_PASSWORD_PATH.into()));
            }
            let factors = Factors {
                any: standing.mfa_on,
                key: standing.has_key,
            };
            let what = if standing.policy.keys_only {
                "a security key or passkey"
            } else {
                "two-factor authentication"
            };
            let notice = match standing.policy.standing(factors, user.created_at.0, now.0) {
                PolicyStanding::Fine => None,
                PolicyStanding::Grace { deadline } => Some(format!(
                    "Your organisation requires {what}. Set it up before {}.",
                    format_time(deadline)
                )),
                PolicyStanding::Enforced => {
                    if !allowed_while(path, &[MFA_PATH, CHANGE_PASSWORD_PATH]) {
                        session.set_flash(Flash::error(format!(
                            "Your organisation requires {what}. Set it up to continue."
                        )));
                        return Err(AppError::Redirect(MFA_PATH.into()));
                    }
                    Some(format!("Your organisation requires {what}: set it up to continue."))
                }
            };
            Ok(SignedIn {
                user,
                mfa_on: standing.mfa_on,
                password_at: UnixTime(session.int(keys::PASSWORD_AT)),
                epoch,
                sid: session.text(keys::SID).unwrap_or_default(),
                session,
                notice,
            })
        })
    }
}

/// A signed-in administrator. Anyone else signed in gets 403.
pub struct Admin(pub SignedIn);

impl FromRequest for Admin {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let signed_in = SignedIn::from_request(req, payload);
        Box::pin(async move {
            let me = signed_in.await?;
            if !me.user.is_admin {
                return Err(AppError::Forbidden("Only administrators can use this page.".into()));
            }
            Ok(Admin(me))
        })
    }
}

/// A session whose password step is done and whose second step is
/// outstanding. (Whether the pending sign-in is still alive is the
/// service's to say: it lives in the database.)
pub struct PendingLogin {
    /// The pending sign-in's random id.
    pub pending: String,
    pub protected: bool,
    pub session: Session,
}

impl FromRequest for PendingLogin {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = req.get_session();
        let result = match (session.stage(), session.text(keys::PENDING)) {
            (Some(Stage::Pending), Some(pending)) => Ok(PendingLogin {
                pending,
                protected: session.get::<bool>(keys::PROTECTED).ok().flatten().unwrap_or(false),
                session,
            }),
            _ => Err(AppError::LoginRequired { next: None }),
        };
        std::future::ready(result)
    }
}

/// Any visitor's session, signed in or not (for the passkey sign-in, which
/// starts signed out).
pub struct Visitor(pub Session);

impl FromRequest for Visitor {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready(Ok(Visitor(req.get_session())))
    }
}
