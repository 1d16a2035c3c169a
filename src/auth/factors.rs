//! Checking a second factor, whatever its kind, for every page that asks
//! for one (the sign-in's second step, Disable MFA).
//!
//! A check has two halves. `prepare` does the pure work outside any lock:
//! parse the input, open the user's TOTP secrets and find the step the
//! code matches, or hash the recovery code under each server key. `attempt`
//! runs inside the caller's transaction, which already holds the user's
//! lock: the account's second-factor counter, then accepting the time step
//! or consuming the recovery code — each one conditional statement — and
//! counting a failure. Attempts on one account therefore run one after the
//! other, on every instance, and each sees the count its predecessors left.
//!
//! Adding a factor kind means a new arm in `Prepared` and in `attempt`.

use diesel::Connection as _;

use super::{Auth, AuthError, AuthResult, Client};
use crate::core::limits::SECOND_FACTOR_ACCOUNT;
use crate::core::recovery::RecoveryCode;
use crate::core::throttle::Counter;
use crate::core::totp::{TotpCode, TotpSecret};
use crate::core::types::{CredentialId, TimeStep, UnixTime, UserId};
use crate::db::credentials::{self, Credential, CredentialKind};
use crate::db::events::{self, Kind};
use crate::db::users::User;
use crate::db::{Conn, DbError, recovery, throttles};

/// What was typed into a code field.
#[derive(Clone, Debug)]
pub enum CodeInput {
    Totp(TotpCode),
    Recovery(RecoveryCode),
    /// Neither six digits nor the shape of a recovery code: not a guess at
    /// anything, so it is not counted.
    Malformed,
}

impl CodeInput {
    pub fn parse(input: &str) -> Self {
        if let Some(code) = TotpCode::parse(input) {
            Self::Totp(code)
        } else if let Some(code) = RecoveryCode::parse(input) {
            Self::Recovery(code)
        } else {
            Self::Malformed
        }
    }

    pub fn kind(&self) -> InputKind {
        match self {
            Self::Totp(_) => InputKind::Totp,
            Self::Recovery(_) => InputKind::RecoveryCode,
            Self::Malformed => InputKind::Unrecognised,
        }
    }
}

/// Which kind of code was typed, for a message that fits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InputKind {
    Totp,
    RecoveryCode,
    Unrecognised,
}

/// Why a code was not accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    Malformed,
    Wrong(InputKind),
    /// A correct TOTP code whose time step was already used.
    Replayed,
}

/// Which factor signed the user in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorUsed {
    Totp(CredentialId),
    RecoveryCode,
    /// A security key or passkey.
    Key(CredentialId),
}

/// The outcome of one attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FactorOutcome {
    Accepted(FactorUsed),
    Refused(Refusal),
    /// Too many wrong codes for this account: wait this many seconds.
    Throttled(i64),
}

/// Why a code was not accepted, where accepting is the only other outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rejected {
    Refused(Refusal),
    Throttled(i64),
}

/// The pure half of a check (see the module docs).
#[derive(Debug)]
pub(crate) enum Prepared {
    Totp {
        /// The credential and step the code matched, if any.
        matched: Option<(CredentialId, TimeStep)>,
        /// A secret sealed under an older server key, sealed again.
        reseal: Option<(CredentialId, String, String)>,
    },
    Recovery {
        /// The code's keyed hash under each server key.
        candidates: Vec<String>,
    },
}

/// Authenticated context of a user's sealed TOTP secret: a sealed value
/// copied onto another user's row does not open.
pub fn secret_context(user: UserId) -> String {
    format!("totp-secret:user:{}", user.0)
}

impl Auth {
    /// The pure half: `None` for input that is neither kind of code.
    pub(crate) fn prepare(&self, user: &User, creds: &[Credential], input: &CodeInput) -> AuthResult<Option<Prepared>> {
        let now = self.now();
        Ok(match input {
            CodeInput::Malformed => None,
            CodeInput::Recovery(code) => Some(Prepared::Recovery {
                candidates: self.keys.recovery_hash_candidates(code.canonical()),
            }),
            CodeInput::Totp(code) => {
                let mut matched = None;
                let mut reseal = None;
                for cred in creds.iter().filter(|c| c.kind() == Some(CredentialKind::Totp)) {
                    let Some(sealed) = &cred.secret_sealed else { continue };
                    let secret = self.open_totp(user.id, sealed)?;
                    let used = cred.last_step.and_then(|s| u64::try_from(s).ok());
                    if let Some(step) = secret.verify_after(code, now.0, self.settings.totp_skew, used) {
                        let step = TimeStep(i64::try_from(step).map_err(AuthError::internal)?);
                        matched = Some((cred.id, step));
                        if self.keys.is_stale(sealed) {
                            let new = self.keys.seal(secret.as_bytes(), &secret_context(user.id));
                            reseal = Some((cred.id, sealed.clone(), new));
                        }
                        break;
                    }
                }
                Some(Prepared::Totp { matched, reseal })
            }
        })
    }

    pub(crate) fn open_totp(&self, user: UserId, sealed: &str) -> AuthResult<TotpSecret> {
        let bytes = self
            .keys
            .open(sealed, &secret_context(user))
            .map_err(AuthError::internal)?;
        TotpSecret::from_bytes(&bytes)
            .ok_or_else(|| AuthError::internal(anyhow::anyhow!("stored TOTP secret has the wrong length")))
    }
}

/// The account's second-factor counter, in the caller's transaction (which
/// holds the user's lock, so no other attempt on this account changes it
/// before this one commits). `None`: nothing on it.
pub(crate) fn account_counter(c: &mut Conn, user: &User) -> Result<Option<Counter>, DbError> {
    throttles::read_locked(c, &SECOND_FACTOR_ACCOUNT, &user.id.to_string())
}

/// The transactional half, in the caller's transaction (which holds the
/// user's lock): the counter (`counter`, from `account_counter` in this
/// transaction), the acceptance, the failure and the log.
#[allow(clippy::too_many_arguments)]
pub(crate) fn attempt(
    c: &mut Conn,
    user: &User,
    account: &str,
    input: InputKind,
    prepared: &Prepared,
    client: &Client,
    counter: Option<Counter>,
    now: UnixTime,
) -> Result<FactorOutcome, DbError> {
    let rule = SECOND_FACTOR_ACCOUNT;
    let key = user.id.to_string();
    if let Some(wait) = counter.and_then(|k| rule.retry_after(&k, now.0)) {
        return Ok(FactorOutcome::Throttled(wait));
    }
    let outcome = match prepared {
        Prepared::Totp { matched, reseal } => match matched {
            // One conditional UPDATE accepts the step of a credential that is
            // still confirmed; only a refusal looks again to tell a replay
            // from a credential removed meanwhile.
            Some((cred, step)) if credentials::accept_step(c, *cred, *step, now)? => {
                if let Some((id, old, new)) = reseal {
                    credentials::reseal(c, *id, old, new)?;
                }
                FactorOutcome::Accepted(FactorUsed::Totp(*cred))
            }
            Some((cred, _)) if credentials::still_confirmed(c, *cred)? => FactorOutcome::Refused(Refusal::Replayed),
            _ => FactorOutcome::Refused(Refusal::Wrong(input)),
        },
        Prepared::Recovery { candidates } => {
            if credentials::has_confirmed(c, user.id)? && recovery::consume(c, user.id, candidates, now)? {
                FactorOutcome::Accepted(FactorUsed::RecoveryCode)
            } else {
                FactorOutcome::Refused(Refusal::Wrong(input))
            }
        }
    };
    match outcome {
        FactorOutcome::Accepted(used) => {
            if counter.is_some() {
                throttles::reset(c, &rule, &key)?;
            }
            if used == FactorUsed::RecoveryCode {
                let mut e = client.event(Kind::RecoveryCodeUsed, Some(user));
                e.detail = Some(format!("{} left", recovery::remaining(c, user.id)?));
                events::record(c, &e, now)?;
            }
        }
        FactorOutcome::Refused(refusal) => {
            let next = rule.record_failure(counter, now.0);
            throttles::store(c, &rule, &key, Some(account), &next)?;
            let mut e = client.event(Kind::SecondFactorFailed, Some(user));
            if refusal == Refusal::Replayed {
                e.detail = Some("code already used".into());
            }
            events::record(c, &e, now)?;
            if next.locked_until > now.0 {
                events::record(c, &client.event(Kind::SecondFactorLocked, Some(user)), now)?;
            }
        }
        FactorOutcome::Throttled(_) => {}
    }
    let (kind, result) = metric_labels(input, outcome);
    crate::metrics::second_factor_check(kind, result);
    Ok(outcome)
}

/// (kind, outcome) of a check, as the metrics name them.
fn metric_labels(input: InputKind, outcome: FactorOutcome) -> (&'static str, &'static str) {
    let kind = match input {
        InputKind::Totp => "totp",
        InputKind::RecoveryCode => "recovery_code",
        InputKind::Unrecognised => "unrecognised",
    };
    let outcome = match outcome {
        FactorOutcome::Accepted(_) => "accepted",
        FactorOutcome::Refused(Refusal::Replayed) => "replayed",
        FactorOutcome::Refused(_) => "wrong",
        FactorOutcome::Throttled(_) => "throttled",
    };
    (kind, outcome)
}

impl Auth {
    /// Check a code for a signed-in user confirming an action (Disable MFA),
    /// and if it is accepted, run `then` in the same transaction.
    pub(crate) async fn with_second_factor<T, F>(
        &self,
        user: &User,
        code: &str,
        client: &Client,
        then: F,
    ) -> AuthResult<Result<T, Rejected>>
    where
        F: FnOnce(&mut Conn, FactorUsed) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        let input = CodeInput::parse(code);
        let uid = user.id;
        let creds = self.db.read(move |c| credentials::confirmed(c, uid)).await?;
        let Some(prepared) = self.prepare(user, &creds, &input)? else {
            return Ok(Err(Rejected::Refused(Refusal::Malformed)));
        };
        let (user, client, now) = (user.clone(), client.clone(), self.now());
        let account = self.account_key(&user.username);
        let kind = input.kind();
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    if !crate::db::users::lock(c, user.id)? {
                        return Ok(Err(Rejected::Refused(Refusal::Wrong(kind))));
                    }
                    let counter = account_counter(c, &user)?;
                    match attempt(c, &user, &account, kind, &prepared, &client, counter, now)? {
                        FactorOutcome::Accepted(used) => Ok(Ok(then(c, used)?)),
                        FactorOutcome::Refused(r) => Ok(Err(Rejected::Refused(r))),
                        FactorOutcome::Throttled(w) => Ok(Err(Rejected::Throttled(w))),
                    }
                })
            })
            .await?)
    }
}
