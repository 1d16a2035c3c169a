//! Who is asking: the signed-in user, the login waiting for its second
//! factor, the client's address — and the checks of passwords and codes that
//! every route shares, with their throttling and security-log entries.

use std::future::Future;

use diesel::Connection;
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
use crate::db::{Conn, DbError, mfa, throttles};

/// The client's address and browser, for throttling and the security log.
#[derive(Clone, Debug)]
pub struct Client {
    pub address: String,
    pub user_agent: Option<String>,
    /// The account this browser has signed in to before (a signed cookie).
    pub known_device_of: Option<i64>,
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
        let known_device_of = state_opt(req).and_then(|st| known_device(req, &st));
        Self {
            address,
            user_agent,
            known_device_of,
        }
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

fn state_opt(req: &HttpRequest) -> Option<web::Data<AppState>> {
    req.app_data::<web::Data<AppState>>().cloned()
}

/// The "known device" cookie: set when an account signs in completely, it
/// lets that browser's password attempts be counted apart from the
/// account-wide counter, so an attacker guessing from elsewhere cannot lock
/// the real user out (the OWASP device-cookie approach). Value: the user id
/// and an HMAC of it under the server key.
pub fn device_cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-latchkey_device"
    } else {
        "latchkey_device"
    }
}

fn device_mac(state: &AppState, user_id: i64) -> [u8; 16] {
    let full = state.keys.mac("known-device", &user_id.to_be_bytes());
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

pub fn device_cookie(state: &AppState, user_id: i64) -> actix_web::cookie::Cookie<'static> {
    use base64::Engine;
    let mut raw = user_id.to_be_bytes().to_vec();
    raw.extend_from_slice(&device_mac(state, user_id));
    let value = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
    actix_web::cookie::Cookie::build(device_cookie_name(state.secure_cookies), value)
        .path("/")
        .http_only(true)
        .secure(state.secure_cookies)
        .same_site(actix_web::cookie::SameSite::Lax)
        .max_age(actix_web::cookie::time::Duration::days(365))
        .finish()
}

fn known_device(req: &HttpRequest, state: &AppState) -> Option<i64> {
    use base64::Engine;
    let cookie = req.cookie(device_cookie_name(state.secure_cookies))?;
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cookie.value())
        .ok()?;
    if raw.len() != 24 {
        return None;
    }
    let user_id = i64::from_be_bytes(raw[..8].try_into().ok()?);
    let ok: bool = subtle::ConstantTimeEq::ct_eq(&raw[8..], &device_mac(state, user_id)[..]).into();
    ok.then_some(user_id)
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
                .read(move |c| Ok((users::find(c, uid)?, crate::db::settings::mfa_policy(c)?)))
                .await?;
            // Gone, or every session of the account was revoked since this
            // one signed in (the epoch moved on).
            let Some(user) = user.filter(|u| u.session_epoch == session.int(keys::EPOCH)) else {
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

/// The last step of every sign-in, whatever the factors were: a new
/// session key for a fully signed-in session, the login recorded, the
/// known-device cookie, and on to `next` (a same-site path) or the dashboard.
/// `password_at` is when the password was checked (for sudo mode).
pub async fn complete_sign_in(
    state: &AppState,
    session: &Session,
    user: &User,
    client: &Client,
    password_at: i64,
    next: Option<&str>,
) -> Result<actix_web::HttpResponse, AppError> {
    let now = state.clock.now();
    let event = client.event(Kind::LoginSucceeded, Some(user));
    let id = user.id;
    state
        .db
        .run(move |c| c.transaction(|c| record_sign_in(c, id, &event, now)))
        .await?;
    finish_sign_in(state, session, user, client, now, password_at, next)
}

/// Record a sign-in: the user's last login and the security-log line, in
/// the caller's transaction (one commit for both).
pub fn record_sign_in(c: &mut Conn, user_id: i64, event: &Event, now: i64) -> Result<(), DbError> {
    users::record_login(c, user_id, now)?;
    events::record(c, event, now)
}

/// The session and the answer of a sign-in whose record is already
/// committed: the session is re-keyed and signed in, the browser remembered
/// as a known device, and sent on to `next` or the dashboard.
pub fn finish_sign_in(
    state: &AppState,
    session: &Session,
    user: &User,
    client: &Client,
    now: i64,
    password_at: i64,
    next: Option<&str>,
) -> Result<actix_web::HttpResponse, AppError> {
    session.sign_in(
        &user.into(),
        now,
        password_at,
        &client.address,
        client.user_agent.as_deref(),
    );
    let to = session::safe_next(next).unwrap_or_else(|| "/".into());
    let mut resp = crate::web::pages::redirect(&to);
    resp.add_cookie(&device_cookie(state, user.id))
        .map_err(AppError::internal)?;
    Ok(resp)
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
    /// The user's session epoch when the password was checked.
    pub epoch: i64,
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
                    let epoch = session.int(keys::EPOCH);
                    Ok(PendingLogin {
                        user_id,
                        epoch,
                        session,
                    })
                }
            }
            _ => Err(AppError::LoginRequired { next: None }),
        };
        std::future::ready(result)
    }
}

/// Hash a new password at the configured cost, on the hashing threads.
pub async fn hash_password(state: &AppState, password: String) -> Result<String, AppError> {
    let cost = state.bcrypt_cost;
    super::hashing::run(move || crate::core::password::hash(&password, cost))
        .await
        .map_err(AppError::internal)?
        .map_err(AppError::internal)
}

/// What became of a password check.
#[derive(Debug, PartialEq, Eq)]
pub enum PasswordCheck {
    Correct,
    Wrong,
    Throttled(i64),
}

/// The throttling key for what was typed as a username: a keyed hash, so
/// that a password typed into the username field is not stored readable.
pub fn account_key(state: &AppState, typed: &str) -> String {
    account_key_with(&state.keys, typed)
}

pub fn account_key_with(keys: &crate::core::keys::Keyring, typed: &str) -> String {
    crate::core::keys::hex(&keys.mac("throttle-account", typed.as_bytes())[..16])
}

/// The counters a password attempt goes against. A browser that has signed
/// in to this account before (`known_device`) gets an account-wide counter
/// of its own, so nobody else's guessing can lock it out.
fn password_rules(account: &str, address: &str, known_device: bool) -> [(Rule, String); 3] {
    let account_key = if known_device {
        format!("{account}|known-device")
    } else {
        account.to_string()
    };
    [
        (throttle::PASSWORD_ACCOUNT_ADDRESS, format!("{account}|{address}")),
        (throttle::PASSWORD_ACCOUNT, account_key),
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
    let known_device = user.is_some_and(|u| client.known_device_of == Some(u.id));
    let rules = password_rules(&account_key(state, account), &client.address, known_device);
    // The account's counters take the attempt up front (see
    // `begin_attempt`). The per-address counter — there against spraying
    // many accounts, which the per-account counters already bound — is only
    // checked here and counted on failure: counting every attempt in flight
    // would lock out an office behind one address at its busiest moment.
    let attempt = rules[..2].to_vec();
    let address_rule = rules[2].clone();
    let reserved = state
        .db
        .run(move |c| {
            if let Some(wait) = throttles::retry_after(c, &address_rule.0, &address_rule.1, now)? {
                return Ok(Err(wait));
            }
            throttles::begin_attempt(c, &attempt, now)
        })
        .await?;
    if let Err(w) = reserved {
        let event = client.event(Kind::LoginThrottled, user);
        state.db.run(move |c| events::record(c, &event, now)).await?;
        return Ok(PasswordCheck::Throttled(w));
    }

    let hash = user.map_or_else(|| state.dummy_hash.clone(), |u| u.password_hash.clone());
    // On the hashing threads, not the blocking pool (see `hashing`).
    let correct = super::hashing::run(move || crate::core::password::verify(&password, &hash))
        .await
        .map_err(AppError::internal)?;

    let user_known = user.is_some();
    let correct = correct && user_known;
    let mut event = client.event(failure_kind, user);
    if !user_known {
        // Whatever was typed, masked: people type passwords into the
        // username field, and the log must never hold one.
        event.username = Some(mask(account));
        event.detail = Some("unknown username".into());
    }
    state
        .db
        .run(move |c| {
            if correct {
                // The attempt was counted up front; a success clears the
                // account's counters.
                throttles::reset(c, &rules[0].0, &rules[0].1)?;
                throttles::reset(c, &rules[1].0, &rules[1].1)?;
            } else {
                throttles::record_failure(c, &rules[2].0, &rules[2].1, now)?;
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

/// "al…(9)": enough for an administrator to recognise a typo of a real
/// name, too little to be a password.
fn mask(typed: &str) -> String {
    let shown: String = typed.chars().take(2).collect();
    format!("{shown}…({})", typed.chars().count())
}

/// What an accepted second-factor code is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeUse {
    /// The second step of signing in: the sign-in is recorded in the commit
    /// that accepts the code (`record_sign_in`); finish with `finish_sign_in`.
    SignIn,
    /// Confirming an action of a signed-in user.
    Confirm,
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

/// Check a TOTP or recovery code for `user`, counting failures per account
/// in the database.
///
/// Everything after the (pure, microsecond) code check happens in ONE
/// transaction that first locks the user's row: the lock check, accepting
/// the time step or consuming the recovery code, and counting the failure.
/// Attempts on one account therefore run one after the other, on every
/// instance, and each sees the count its predecessors left: a burst of
/// simultaneous guesses gets no more tries than a patient guesser, a TOTP
/// step and a recovery code are each accepted at most once, and the whole
/// check costs one commit.
pub async fn check_second_factor(
    state: &AppState,
    user: &User,
    input: &str,
    client: &Client,
    purpose: CodeUse,
) -> Result<FactorCheck, AppError> {
    enum Verdict {
        /// The matching time step, if the code matched one in the window.
        Totp(Option<i64>),
        /// The code's keyed hashes under each server key.
        Recovery(Vec<String>),
    }
    let (Some(sealed), Some(enabled_at)) = (user.totp_secret_sealed.clone(), user.totp_enabled_at) else {
        return Ok(FactorCheck::Wrong);
    };
    let now = state.clock.now();
    let user_id = user.id;
    let verdict = if let Some(code) = TotpCode::parse(input) {
        let bytes = state
            .keys
            .open(&sealed, &secret_context(user_id))
            .map_err(AppError::internal)?;
        let secret = TotpSecret::from_bytes(&bytes)
            .ok_or_else(|| AppError::internal(anyhow::anyhow!("stored TOTP secret has the wrong length")))?;
        let step = secret
            .verify(&code, now, state.totp_skew)
            .map(i64::try_from)
            .transpose()
            .map_err(AppError::internal)?;
        if step.is_some() && state.keys.is_stale(&sealed) {
            let resealed = state.keys.seal(secret.as_bytes(), &secret_context(user_id));
            let old = sealed.clone();
            state
                .db
                .run(move |c| mfa::reseal_secret(c, user_id, &old, &resealed))
                .await?;
        }
        Verdict::Totp(step)
    } else if let Some(code) = RecoveryCode::parse(input) {
        Verdict::Recovery(state.keys.recovery_hash_candidates(code.canonical()))
    } else {
        // Not a guess at any secret: not counted.
        return Ok(FactorCheck::Malformed);
    };

    let rule = throttle::SECOND_FACTOR_ACCOUNT;
    let key = user_id.to_string();
    let fail_event = client.event(Kind::SecondFactorFailed, Some(user));
    let lock_event = client.event(Kind::SecondFactorLocked, Some(user));
    let recovery_event = client.event(Kind::RecoveryCodeUsed, Some(user));
    let login_event = (purpose == CodeUse::SignIn).then(|| client.event(Kind::LoginSucceeded, Some(user)));
    let outcome = state
        .db
        .run(move |c| {
            c.transaction(|c| {
                if !mfa::lock_for_attempt(c, user_id, enabled_at)? {
                    return Ok(FactorCheck::Wrong); // 2FA went off (or was re-enrolled) meanwhile
                }
                let counter = throttles::read(c, &rule, &key)?;
                if let Some(wait) = counter.and_then(|k| rule.retry_after(&k, now)) {
                    return Ok(FactorCheck::Throttled(wait));
                }
                let outcome = match verdict {
                    Verdict::Totp(Some(step)) => {
                        if mfa::accept_step(c, user_id, step)? {
                            FactorCheck::Totp
                        } else {
                            FactorCheck::Replayed
                        }
                    }
                    Verdict::Totp(None) => FactorCheck::Wrong,
                    Verdict::Recovery(candidates) => {
                        if mfa::consume_recovery_code(c, user_id, &candidates, now)? {
                            FactorCheck::Recovery
                        } else {
                            FactorCheck::Wrong
                        }
                    }
                };
                if outcome.accepted() {
                    if counter.is_some() {
                        throttles::reset(c, &rule, &key)?;
                    }
                    if outcome == FactorCheck::Recovery {
                        events::record(c, &recovery_event, now)?;
                    }
                    if let Some(event) = &login_event {
                        record_sign_in(c, user_id, event, now)?;
                    }
                } else {
                    let next = rule.record_failure(counter, now);
                    throttles::store(c, &rule, &key, &next)?;
                    let mut fail_event = fail_event;
                    if outcome == FactorCheck::Replayed {
                        fail_event.detail = Some("code already used".into());
                    }
                    events::record(c, &fail_event, now)?;
                    if next.locked_until > now {
                        events::record(c, &lock_event, now)?;
                    }
                }
                Ok(outcome)
            })
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
