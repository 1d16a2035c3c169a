//! TOTP as a factor: enrolment (a pending secret, confirmed with a code
//! from it) — the checking is in `factors`.
//!
//! A pending secret belongs to the session that asked for it, lasts ten
//! minutes, and dies after five wrong codes; the next Enable replaces it.
//! The first factor a user confirms turns 2FA on and comes with a new set
//! of recovery codes, shown once.

use diesel::Connection as _;

use super::factors::secret_context;
use super::{Auth, AuthResult, Client};
use crate::core::limits::{ENROLMENT_MAX_ATTEMPTS, ENROLMENT_SECONDS};
use crate::core::recovery::RecoveryCode;
use crate::core::totp::{TotpCode, TotpSecret};
use crate::core::types::{TimeStep, UnixTime};
use crate::db::credentials::{self, CredentialKind, NewPending};
use crate::db::events::{self, Kind};
use crate::db::users::{self, User};
use crate::db::{Conn, DbError, recovery};

/// A pending TOTP enrolment, to show on the setup page.
#[derive(Debug)]
pub struct TotpSetup {
    pub secret: TotpSecret,
    pub expires_at: UnixTime,
    pub attempts_left: i32,
}

/// What became of a confirmation code.
#[derive(Debug)]
pub enum ConfirmOutcome {
    /// Confirmed. With `codes` when this turned 2FA on (show them once).
    Confirmed { codes: Option<Vec<RecoveryCode>> },
    /// Not six digits: not counted.
    Malformed(TotpSetup),
    /// Wrong: counted; the setup is still pending.
    Wrong(TotpSetup),
    /// Five wrong codes: the pending secret is gone; Enable starts over.
    Ended,
    /// Expired, replaced, confirmed by a concurrent request, or never
    /// started in this session.
    NotPending,
    /// 2FA already has an authenticator app.
    AlreadyOn,
}

impl Auth {
    /// Whether the user already has a confirmed authenticator app.
    pub async fn has_totp(&self, user: &User) -> AuthResult<bool> {
        let id = user.id;
        let creds = self.db.read(move |c| credentials::confirmed(c, id)).await?;
        Ok(creds.iter().any(|c| c.kind() == Some(CredentialKind::Totp)))
    }

    /// Start (or restart) a TOTP enrolment for `user`, owned by the session
    /// whose public id is `owner`.
    pub async fn start_totp(&self, user: &User, owner: &str) -> AuthResult<Option<TotpSetup>> {
        if self.has_totp(user).await? {
            return Ok(None);
        }
        let secret = TotpSecret::generate();
        let sealed = self.keys.seal(secret.as_bytes(), &secret_context(user.id));
        let (id, owner, now) = (user.id, owner.to_string(), self.now());
        self.db
            .run(move |c| {
                c.transaction(|c| {
                    users::lock(c, id)?;
                    credentials::start_pending(
                        c,
                        NewPending {
                            user: id,
                            kind: CredentialKind::Totp,
                            name: "Authenticator app",
                            secret_sealed: Some(&sealed),
                            owner: &owner,
                        },
                        now,
                    )
                })
            })
            .await?;
        Ok(Some(TotpSetup {
            secret,
            expires_at: now.plus(ENROLMENT_SECONDS),
            attempts_left: ENROLMENT_MAX_ATTEMPTS,
        }))
    }

    /// The pending enrolment this session started, if it is still pending.
    pub async fn pending_totp(&self, user: &User, owner: &str) -> AuthResult<Option<TotpSetup>> {
        let (id, owner, now) = (user.id, owner.to_string(), self.now());
        let not_before = now.minus(ENROLMENT_SECONDS);
        let Some(row) = self
            .db
            .read(move |c| credentials::pending(c, id, CredentialKind::Totp, &owner, not_before))
            .await?
        else {
            return Ok(None);
        };
        let Some(sealed) = &row.secret_sealed else {
            return Ok(None);
        };
        Ok(Some(TotpSetup {
            secret: self.open_totp(user.id, sealed)?,
            expires_at: row.created_at.plus(ENROLMENT_SECONDS),
            attempts_left: ENROLMENT_MAX_ATTEMPTS - row.attempts,
        }))
    }

    /// Cancel the pending enrolment this session started (the setup page's
    /// Cancel). `false` if there was none. Nothing else changes, so nothing
    /// is logged.
    pub async fn cancel_totp(&self, user: &User, owner: &str) -> AuthResult<bool> {
        let (id, owner, now) = (user.id, owner.to_string(), self.now());
        let not_before = now.minus(ENROLMENT_SECONDS);
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    users::lock(c, id)?;
                    match credentials::pending(c, id, CredentialKind::Totp, &owner, not_before)? {
                        Some(row) => credentials::delete_pending(c, row.id).map(|()| true),
                        None => Ok(false),
                    }
                })
            })
            .await?)
    }

    /// Confirm the pending enrolment with a code from its secret.
    pub async fn confirm_totp(
        &self,
        user: &User,
        owner: &str,
        code: &str,
        client: &Client,
    ) -> AuthResult<ConfirmOutcome> {
        if self.has_totp(user).await? {
            return Ok(ConfirmOutcome::AlreadyOn);
        }
        let now = self.now();
        let not_before = now.minus(ENROLMENT_SECONDS);
        let (uid, owner_s) = (user.id, owner.to_string());
        let Some(row) = self
            .db
            .read(move |c| credentials::pending(c, uid, CredentialKind::Totp, &owner_s, not_before))
            .await?
        else {
            return Ok(ConfirmOutcome::NotPending);
        };
        let Some(sealed) = row.secret_sealed.clone() else {
            return Ok(ConfirmOutcome::NotPending);
        };
        let secret = self.open_totp(user.id, &sealed)?;
        let setup = |attempts: i32, secret: TotpSecret| TotpSetup {
            secret,
            expires_at: row.created_at.plus(ENROLMENT_SECONDS),
            attempts_left: ENROLMENT_MAX_ATTEMPTS - attempts,
        };
        let Some(code) = TotpCode::parse(code) else {
            return Ok(ConfirmOutcome::Malformed(setup(row.attempts, secret)));
        };
        let step = secret
            .verify(&code, now.0, self.settings.totp_skew)
            .map(|s| TimeStep(i64::try_from(s).unwrap_or(i64::MAX)));
        let codes = RecoveryCode::generate_set();
        let hashes: Vec<String> = codes.iter().map(|c| self.keys.recovery_hash(c.canonical())).collect();
        let (user_c, client, owner, cred) = (user.clone(), client.clone(), owner.to_string(), row.id);
        enum Done {
            TurnedOn,
            Added,
            Wrong(i32),
            Ended,
            NotPending,
        }
        let done = self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    users::lock(c, user_c.id)?;
                    if !credentials::take_enrolment_attempt(c, cred, &owner, not_before, ENROLMENT_MAX_ATTEMPTS)? {
                        credentials::delete_pending(c, cred)?;
                        return Ok(Done::NotPending);
                    }
                    let Some(step) = step else {
                        let attempts = credentials::pending(c, user_c.id, CredentialKind::Totp, &owner, not_before)?
                            .map_or(ENROLMENT_MAX_ATTEMPTS, |p| p.attempts);
                        if attempts < ENROLMENT_MAX_ATTEMPTS {
                            return Ok(Done::Wrong(attempts));
                        }
                        credentials::delete_pending(c, cred)?;
                        events::record(c, &client.event(Kind::EnrolmentAbandoned, Some(&user_c)), now)?;
                        return Ok(Done::Ended);
                    };
                    let first = !credentials::has_confirmed(c, user_c.id)?;
                    if !credentials::confirm(c, cred, Some(step), now)? {
                        return Ok(Done::NotPending);
                    }
                    let mut added = client.event(Kind::FactorAdded, Some(&user_c));
                    added.detail = Some("authenticator app".into());
                    events::record(c, &added, now)?;
                    if first {
                        turn_on(c, &user_c, &hashes, &client, now)?;
                        Ok(Done::TurnedOn)
                    } else {
                        Ok(Done::Added)
                    }
                })
            })
            .await?;
        Ok(match done {
            Done::TurnedOn => ConfirmOutcome::Confirmed { codes: Some(codes) },
            Done::Added => ConfirmOutcome::Confirmed { codes: None },
            Done::Wrong(attempts) => ConfirmOutcome::Wrong(setup(attempts, secret)),
            Done::Ended => ConfirmOutcome::Ended,
            Done::NotPending => ConfirmOutcome::NotPending,
        })
    }
}

/// 2FA goes on with its first factor: a new set of recovery codes and the
/// log entry, in the caller's transaction.
pub(crate) fn turn_on(
    c: &mut Conn,
    user: &User,
    hashes: &[String],
    client: &Client,
    now: UnixTime,
) -> Result<(), DbError> {
    users::bump_codes_generation(c, user.id, None)?;
    // A new enrolment: browsers remembered under an earlier one no longer count.
    users::bump_mfa_epoch(c, user.id)?;
    recovery::replace(c, user.id, hashes, now)?;
    events::record(c, &client.event(Kind::MfaEnabled, Some(user)), now)
}
