//! Who is asking: the signed-in user, the login waiting for its second
//! factor, the client's address — and the checks of passwords and codes that
//! every route shares, with their throttling and security-log entries.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;

use actix_session::{Session, SessionExt as _};
use actix_web::dev::Payload;
use actix_web::http::Method;
use actix_web::{FromRequest, HttpRequest, web};

use super::AppState;
use super::error::AppError;
use super::session::{self, SessionExt, Stage, keys};
use crate::core::policy::Standing;
use crate::core::recovery::RecoveryCode;
use crate::core::throttle::{self, Rule};
use crate::core::totp::{TotpCode, TotpSecret};
use crate::db::events::{self, Event, Kind};
use crate::db::users::{self, User};
use crate::db::{mfa, throttles};

/// The client's address and browser, for throttling and the security log.
#[derive(Clone, Debug)]
pub struct Client {
    pub address: String,
    pub user_agent: Option<String>,
}

impl Client {
    pub fn of(req: &HttpRequest) -> Self {
        let trusted = req
            .app_data::<web::Data<AppState>>()
            .map(|s| s.trusted_proxies.as_slice())
            .unwrap_or(&[]);
        let address = client_address(req, trusted)
            .map(|ip| ip.to_string())
            .unwrap_or_else(|| "unknown".into());
        let user_agent = req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Self { address, user_agent }
    }

    pub fn event(&self, kind: Kind, user: Option<&User>) -> Event {
        Event {
            kind,
            user_id: user.map(|u| u.id),
            username: user.map(|u| u.username.clone()),
            client_address: Some(self.address.clone()),
            user_agent: self.user_agent.clone(),
            detail: None,
        }
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

pub fn state(req: &HttpRequest) -> web::Data<AppState> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .expect("AppState is registered")
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
    pub session: Session,
    pub password_at: i64,
    /// A banner for every page (the 2FA policy's deadline).
    pub notice: Option<String>,
}

impl SignedIn {
    /// Whether the password was entered recently enough for sensitive actions.
    pub fn sudo_fresh(&self, now: i64) -> bool {
        now - self.password_at <= session::SUDO_SECONDS
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
            let now = state.clock.now();
            let login = || AppError::LoginRequired {
                next: return_path(&req),
            };
            let (Some(Stage::SignedIn), Some(uid)) = (session.stage(), session.user_id()) else {
                return Err(login());
            };
            if now - session.int(keys::SIGNED_IN_AT) > session::ABSOLUTE_SECONDS {
                session.purge();
                return Err(login());
            }
            let (user, policy) = state
                .db
                .run(move |c| Ok((users::find(c, uid)?, crate::db::settings::mfa_policy(c)?)))
                .await?;
            let Some(user) = user else {
                session.purge();
                return Err(login());
            };
            let path = req.path();
            if user.must_change_password && !allowed_while(path, &[CHANGE_PASSWORD_PATH]) {
                session.set_flash(session::Flash::info(
                    "Your account has a temporary password. Choose your own password to continue.",
                ));
                return Err(AppError::Redirect(CHANGE_PASSWORD_PATH.into()));
            }
            let notice = match policy.standing(user.mfa_enabled(), user.created_at, now) {
                Standing::Fine => None,
                Standing::Grace { deadline } => Some(format!(
                    "Your organisation requires two-factor authentication. Turn it on before {}.",
                    crate::web::pages::format_time(deadline)
                )),
                Standing::Enforced => {
                    if !allowed_while(path, &[MFA_PATH, CHANGE_PASSWORD_PATH]) {
                        session.set_flash(session::Flash::error(
                            "Your organisation requires two-factor authentication. Turn it on to continue.",
                        ));
                        return Err(AppError::Redirect(MFA_PATH.into()));
                    }
                    Some("Your organisation requires two-factor authentication: turn it on to continue.".into())
                }
            };
            let password_at = session.int(keys::PASSWORD_AT);
            Ok(SignedIn {
                user,
                session,
                password_at,
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

/// A login whose password was right and whose second factor is outstanding.
pub struct PendingLogin {
    pub user_id: i64,
    pub session: Session,
}

impl FromRequest for PendingLogin {
    type Error = AppError;
    type Future = std::future::Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let session = req.get_session();
        let state = state(req);
        let result = match (session.stage(), session.user_id()) {
            (Some(Stage::Pending), Some(user_id)) => {
                if state.clock.now() - session.int(keys::PENDING_AT) > session::PENDING_SECONDS {
                    session.clear();
                    session.set_flash(session::Flash::error(
                        "Your sign-in took too long to finish. Enter your username and password again.",
                    ));
                    Err(AppError::LoginRequired { next: None })
                } else {
                    Ok(PendingLogin { user_id, session })
                }
            }
            _ => Err(AppError::LoginRequired { next: None }),
        };
        std::future::ready(result)
    }
}

/// What became of a password check.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordCheck {
    Correct,
    Wrong,
    Throttled(i64),
}

fn password_rules(account: &str, address: &str) -> [(Rule, String); 3] {
    [
        (throttle::PASSWORD_ACCOUNT_ADDRESS, format!("{account}|{address}")),
        (throttle::PASSWORD_ACCOUNT, account.to_string()),
        (throttle::PASSWORD_ADDRESS, address.to_string()),
    ]
}

/// Check a password, throttled per account, per address and per both.
///
/// `account` is the normalised name typed (whether or not such a user
/// exists, so that unknown names behave exactly like known ones). With no
/// user, the dummy hash is checked so the answer takes the same time.
pub async fn check_password(
    state: &AppState,
    account: &str,
    user: Option<&User>,
    password: String,
    client: &Client,
    failure_kind: Kind,
) -> Result<PasswordCheck, AppError> {
    let now = state.clock.now();
    let rules = password_rules(account, &client.address);
    let probe = rules.clone();
    let wait = state
        .db
        .run(move |c| {
            let mut longest = None;
            for (rule, key) in &probe {
                if let Some(w) = throttles::retry_after(c, rule, key, now)? {
                    longest = Some(longest.map_or(w, |l: i64| l.max(w)));
                }
            }
            Ok(longest)
        })
        .await?;
    if let Some(w) = wait {
        let event = client.event(Kind::LoginThrottled, user);
        state.db.run(move |c| events::record(c, &event, now)).await?;
        return Ok(PasswordCheck::Throttled(w));
    }

    let hash = user.map_or_else(|| state.dummy_hash.clone(), |u| u.password_hash.clone());
    let correct = web::block(move || crate::core::password::verify(&password, &hash))
        .await
        .map_err(AppError::internal)?;

    let user_known = user.is_some();
    let correct = correct && user_known;
    let mut event = client.event(failure_kind, user);
    if !user_known {
        event.username = Some(account.chars().take(64).collect());
    }
    state
        .db
        .run(move |c| {
            if correct {
                for (rule, key) in &rules[..2] {
                    throttles::reset(c, rule, key)?;
                }
            } else {
                for (rule, key) in &rules {
                    throttles::record_failure(c, rule, key, now)?;
                }
                events::record(c, &event, now)?;
            }
            Ok(())
        })
        .await?;
    Ok(if correct {
        PasswordCheck::Correct
    } else {
        PasswordCheck::Wrong
    })
}

/// What became of a second-factor code.
#[derive(Debug, PartialEq, Eq)]
pub enum FactorCheck {
    Totp,
    Recovery,
    /// Neither six digits nor the shape of a recovery code.
    Malformed,
    Wrong,
    /// A correct TOTP code whose time step was already used.
    Replayed,
    Throttled(i64),
}

impl FactorCheck {
    pub fn accepted(&self) -> bool {
        matches!(self, Self::Totp | Self::Recovery)
    }
}

/// Check a TOTP or recovery code for `user`, counting failures per account in
/// the database. A TOTP step and a recovery code are each accepted at most
/// once, atomically, whatever the concurrency or the instance.
pub async fn check_second_factor(
    state: &AppState,
    user: &User,
    input: &str,
    client: &Client,
) -> Result<FactorCheck, AppError> {
    let now = state.clock.now();
    let rule = throttle::SECOND_FACTOR_ACCOUNT;
    let key = user.id.to_string();
    let probe_key = key.clone();
    if let Some(w) = state
        .db
        .run(move |c| throttles::retry_after(c, &rule, &probe_key, now))
        .await?
    {
        return Ok(FactorCheck::Throttled(w));
    }
    let Some(sealed) = user.totp_secret_sealed.clone() else {
        return Ok(FactorCheck::Wrong);
    };
    let user_id = user.id;

    let outcome = if let Some(code) = TotpCode::parse(input) {
        let bytes = state
            .keys
            .open(&sealed, &secret_context(user_id))
            .map_err(AppError::internal)?;
        let secret = TotpSecret::from_bytes(&bytes)
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("stored TOTP secret has the wrong length")))?;
        match secret.verify(&code, now, state.totp_skew) {
            Some(step) => {
                let step = i64::try_from(step).map_err(AppError::internal)?;
                let fresh = state.db.run(move |c| mfa::accept_step(c, user_id, step)).await?;
                if fresh {
                    if state.keys.is_stale(&sealed) {
                        let resealed = state.keys.seal(secret.as_bytes(), &secret_context(user_id));
                        state
                            .db
                            .run(move |c| mfa::reseal_secret(c, user_id, &sealed, &resealed))
                            .await?;
                    }
                    FactorCheck::Totp
                } else {
                    FactorCheck::Replayed
                }
            }
            None => FactorCheck::Wrong,
        }
    } else if let Some(code) = RecoveryCode::parse(input) {
        let candidates = state.keys.recovery_hash_candidates(code.canonical());
        let used = state
            .db
            .run(move |c| mfa::consume_recovery_code(c, user_id, &candidates, now))
            .await?;
        if used {
            FactorCheck::Recovery
        } else {
            FactorCheck::Wrong
        }
    } else {
        FactorCheck::Malformed
    };

    let fail_event = client.event(Kind::SecondFactorFailed, Some(user));
    let lock_event = client.event(Kind::SecondFactorLocked, Some(user));
    let recovery_event = client.event(Kind::RecoveryCodeUsed, Some(user));
    let accepted = outcome.accepted();
    let wrong = outcome == FactorCheck::Wrong;
    let was_recovery = outcome == FactorCheck::Recovery;
    state
        .db
        .run(move |c| {
            if accepted {
                throttles::reset(c, &rule, &key)?;
                if was_recovery {
                    events::record(c, &recovery_event, now)?;
                }
            } else if wrong {
                events::record(c, &fail_event, now)?;
                let counter = throttles::record_failure(c, &rule, &key, now)?;
                if counter.locked_until > now {
                    events::record(c, &lock_event, now)?;
                }
            }
            Ok(())
        })
        .await?;
    Ok(outcome)
}

/// Authenticated context of a user's sealed TOTP secret: a sealed value
/// copied onto another user's row does not open.
pub fn secret_context(user_id: i64) -> String {
    format!("totp-secret:user:{user_id}")
}

/// The message for a refused code, the same on every page that asks for one.
pub fn factor_message(check: &FactorCheck) -> &'static str {
    match check {
        FactorCheck::Malformed => {
            "Enter the 6-digit code from your authenticator app, or one of your recovery codes (like ABCDE-FGHJK-LMNPQ)."
        }
        FactorCheck::Replayed => {
            "That code was already used. Wait for the next code to appear in your app, then enter it."
        }
        _ => {
            "That code was not accepted. Codes change every 30 seconds: enter the one your app shows now, and check that your phone sets its time automatically."
        }
    }
}
