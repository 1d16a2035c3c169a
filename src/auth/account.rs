//! A signed-in user's own changes — password, sessions, recovery codes,
//! turning 2FA off — and what their pages show. Each change, the sessions
//! it ends and its log entry are one commit.

use diesel::Connection as _;

use super::factors::Rejected;
use super::password::{PasswordVerdict, Purpose};
use super::sign_in::make_known;
use super::{Auth, AuthResult, Client};
use crate::core::policy::MfaPolicy;
use crate::core::recovery::RecoveryCode;
use crate::core::types::{BrowserId, Password, SessionEpoch, UserId};
use crate::db::credentials::{self, Credential};
use crate::db::events::{self, Kind, Row};
use crate::db::sessions::{self, Revoked};
use crate::db::users::{self, User};
use crate::db::{browsers, pending, recovery, settings};

/// See `Auth::dashboard`.
pub struct Dashboard {
    pub recovery_codes_left: i64,
    pub previous: Option<events::SignInFacts>,
}

/// What a signed-in page needs to know about its user, read in one go.
#[derive(Clone, Debug)]
pub struct Standing {
    pub user: User,
    pub mfa_on: bool,
    /// The user has a security key or passkey.
    pub has_key: bool,
    pub policy: MfaPolicy,
}

/// The MFA tab.
#[derive(Clone, Debug)]
pub struct MfaOverview {
    pub credentials: Vec<Credential>,
    pub enabled_since: Option<i64>,
    pub recovery_codes_left: i64,
    /// Sent back with "Generate new recovery codes".
    pub codes_generation: i64,
}

impl MfaOverview {
    pub fn enabled(&self) -> bool {
        !self.credentials.is_empty()
    }
}

/// A password confirmation in a signed-in session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Confirmed {
    Yes,
    WrongPassword,
    Throttled(i64),
}

/// What became of a password change.
#[derive(Debug)]
pub enum PasswordChange {
    Changed {
        epoch: SessionEpoch,
        browser_token: String,
    },
    WrongPassword,
    Throttled(i64),
    /// This session was revoked meanwhile: nothing changed.
    SessionRevoked,
}

/// 2FA goes off, in the caller's transaction: every factor, every recovery
/// code, and every remembered browser go, and the enrolment epoch moves on.
/// `why` is the event that turned it off (naming who acted); a separate
/// entry records the remembered browsers it forgot, if any.
pub(crate) fn turn_off(
    c: &mut crate::db::Conn,
    user: UserId,
    why: &events::Event,
    now: crate::core::types::UnixTime,
) -> Result<(), crate::db::DbError> {
    credentials::remove_all(c, user)?;
    recovery::delete_all(c, user)?;
    let n = browsers::forget_all_remembered(c, user)?;
    log_forgotten(c, why, n, "two-factor authentication turned off", now)?;
    users::bump_mfa_epoch(c, user)
}

/// Record that `n` remembered browsers were forgotten along with `why` (an
/// event about the user, naming who acted).
pub(crate) fn log_forgotten(
    c: &mut crate::db::Conn,
    why: &events::Event,
    n: usize,
    reason: &str,
    now: crate::core::types::UnixTime,
) -> Result<(), crate::db::DbError> {
    if n == 0 {
        return Ok(());
    }
    let mut e = why.clone();
    e.kind = Kind::RememberedBrowserForgotten;
    let plural = if n == 1 { "" } else { "s" };
    e.detail = Some(match &why.detail {
        Some(by) if by.starts_with("by ") => format!("{n} browser{plural}: {reason}, {by}"),
        _ => format!("{n} browser{plural}: {reason}"),
    });
    events::record(c, &e, now)
}

/// What became of removing one factor.
#[derive(Debug, PartialEq, Eq)]
pub enum Removed {
    /// Removed; other factors remain.
    Removed,
    /// Removed, and it was the last one: 2FA is off, recovery codes are
    /// gone, and every session ended (this one goes on under `epoch`).
    LastOne {
        epoch: SessionEpoch,
    },
    NotFound,
}

/// What became of Disable MFA.
#[derive(Debug)]
pub enum Disable {
    Done { epoch: SessionEpoch },
    Refused(Rejected),
    AlreadyOff,
}

impl Auth {
    /// The user, whether 2FA is on, and the 2FA policy — for every
    /// signed-in request, in one read.
    pub async fn standing(&self, user: UserId) -> AuthResult<Option<Standing>> {
        Ok(self
            .db
            .read(move |c| {
                let Some(user) = users::find(c, user)? else {
                    return Ok(None);
                };
                let creds = credentials::confirmed(c, user.id)?;
                let mfa_on = !creds.is_empty();
                let has_key = creds
                    .iter()
                    .any(|k| k.kind() == Some(credentials::CredentialKind::WebAuthn));
                let policy = settings::mfa_policy(c)?;
                Ok(Some(Standing {
                    user,
                    mfa_on,
                    has_key,
                    policy,
                }))
            })
            .await?)
    }

    pub async fn mfa_overview(&self, user: &User) -> AuthResult<MfaOverview> {
        let (id, generation) = (user.id, user.recovery_codes_generation);
        Ok(self
            .db
            .read(move |c| {
                Ok(MfaOverview {
                    credentials: credentials::confirmed(c, id)?,
                    enabled_since: credentials::enabled_since(c, id)?,
                    recovery_codes_left: recovery::remaining(c, id)?,
                    codes_generation: generation,
                })
            })
            .await?)
    }

    /// One earlier sign-in of `user` from the security log (by the id a
    /// sign-in noted).
    pub async fn sign_in_event(&self, user: UserId, id: i64) -> AuthResult<Option<events::SignInFacts>> {
        Ok(self.db.read(move |c| events::sign_in_by_id(c, user, id)).await?)
    }

    /// What the dashboard shows beside the user's row, in one read (it is
    /// the page people land on): the recovery codes left, and the sign-in
    /// `previous` names, if it is one of this user's.
    pub async fn dashboard(&self, user: UserId, previous: Option<i64>) -> AuthResult<Dashboard> {
        Ok(self
            .db
            .read(move |c| {
                Ok(Dashboard {
                    recovery_codes_left: recovery::remaining(c, user)?,
                    previous: match previous {
                        Some(id) => events::sign_in_by_id(c, user, id)?,
                        None => None,
                    },
                })
            })
            .await?)
    }

    /// Confirm the password of a signed-in session (sudo mode); `sid` is
    /// the session's public id, whose own counter the attempt goes against.
    pub async fn confirm_password(
        &self,
        user: &User,
        sid: &str,
        password: Password,
        client: &Client,
    ) -> AuthResult<Confirmed> {
        let verdict = self
            .check_password(
                &user.username,
                Some(user),
                password,
                client,
                Purpose::Session(sid.to_string()),
            )
            .await?;
        Ok(match verdict {
            PasswordVerdict::Correct => Confirmed::Yes,
            PasswordVerdict::Throttled { retry_after, .. } => Confirmed::Throttled(retry_after),
            _ => Confirmed::WrongPassword,
        })
    }

    /// Change the password: every session of the user ends (this one goes
    /// on under the new epoch), pending sign-ins end, and the known browsers
    /// are forgotten — except this one, which gets a new token.
    pub async fn change_password(
        &self,
        user: &User,
        session: (&str, SessionEpoch),
        current: Password,
        new: Password,
        client: &Client,
    ) -> AuthResult<PasswordChange> {
        let (sid, epoch) = session;
        match self.confirm_password(user, sid, current, client).await? {
            Confirmed::Yes => {}
            Confirmed::WrongPassword => return Ok(PasswordChange::WrongPassword),
            Confirmed::Throttled(w) => return Ok(PasswordChange::Throttled(w)),
        }
        let hash = self.hasher.hash(new).await?;
        let (user, client, now) = (user.clone(), client.clone(), self.now());
        let mut fresh = client.clone();
        fresh.browser_token = None;
        let token = self.new_browser_token(&fresh);
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    // Only while this session is itself still valid.
                    let Some(Revoked { epoch, .. }) = sessions::revoke_all(c, user.id, Some(epoch))? else {
                        return Ok(PasswordChange::SessionRevoked);
                    };
                    users::set_password(c, user.id, &hash)?;
                    pending::delete_for_user(c, user.id)?;
                    let changed = client.event(Kind::PasswordChanged, Some(&user));
                    let remembered = browsers::forget_all_remembered(c, user.id)?;
                    browsers::forget_all(c, user.id)?;
                    log_forgotten(c, &changed, remembered, "password changed", now)?;
                    let (browser_token, _, _) = make_known(c, &user, &client, token, now)?;
                    events::record(c, &changed, now)?;
                    Ok(PasswordChange::Changed { epoch, browser_token })
                })
            })
            .await?)
    }

    /// Sign out every other session: all rows go (this one goes on under
    /// the new epoch). `None` when this session was itself revoked
    /// meanwhile — a stolen session racing its owner cannot outlive this.
    pub async fn revoke_other_sessions(
        &self,
        user: &User,
        epoch: SessionEpoch,
        client: &Client,
    ) -> AuthResult<Option<Revoked>> {
        let (user, event, now) = (user.id, client.event(Kind::SessionsRevoked, Some(user)), self.now());
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    let revoked = sessions::revoke_all(c, user, Some(epoch))?;
                    if revoked.is_some() {
                        events::record(c, &event, now)?;
                    }
                    Ok(revoked)
                })
            })
            .await?)
    }

    /// A new set of recovery codes; the old set stops working in the same
    /// commit. `generation` is the set the page showed: if another request
    /// replaced it meanwhile (a double click), nothing happens (`None`).
    pub async fn regenerate_recovery_codes(
        &self,
        user: &User,
        generation: Option<i64>,
        client: &Client,
    ) -> AuthResult<Option<Vec<RecoveryCode>>> {
        let codes = RecoveryCode::generate_set();
        let hashes: Vec<String> = codes.iter().map(|c| self.keys.recovery_hash(c.canonical())).collect();
        let (id, event, now) = (
            user.id,
            client.event(Kind::RecoveryCodesRegenerated, Some(user)),
            self.now(),
        );
        let done = self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    // The conditional write first: it takes the user's lock.
                    if !users::bump_codes_generation(c, id, generation)? || !credentials::has_confirmed(c, id)? {
                        return Ok(false);
                    }
                    recovery::replace(c, id, &hashes, now)?;
                    events::record(c, &event, now)?;
                    Ok(true)
                })
            })
            .await?;
        Ok(done.then_some(codes))
    }

    /// Turn 2FA off with a current code (TOTP or recovery): every factor and
    /// recovery code goes, other sessions end, one commit.
    pub async fn disable_mfa(&self, user: &User, code: &str, client: &Client) -> AuthResult<Disable> {
        let id = user.id;
        if !self.db.read(move |c| credentials::has_confirmed(c, id)).await? {
            return Ok(Disable::AlreadyOff);
        }
        let (event, now) = (client.event(Kind::MfaDisabled, Some(user)), self.now());
        let result = self
            .with_second_factor(user, code, client, move |c, _used| {
                turn_off(c, id, &event, now)?;
                events::record(c, &event, now)?;
                // Everyone is signed out; this session goes on under the new epoch.
                Ok(sessions::revoke_all(c, id, None)?.map(|r| r.epoch))
            })
            .await?;
        Ok(match result {
            Ok(Some(epoch)) => Disable::Done { epoch },
            Ok(None) => Disable::AlreadyOff,
            Err(outcome) => Disable::Refused(outcome),
        })
    }

    /// Remove one factor (an authenticator app or a key). Removing the last
    /// one turns 2FA off, as Disable MFA does — one commit.
    pub async fn remove_factor(
        &self,
        user: &User,
        id: crate::core::types::CredentialId,
        client: &Client,
    ) -> AuthResult<Removed> {
        let (uid, now) = (user.id, self.now());
        let removed = client.event(Kind::FactorRemoved, Some(user));
        let off = client.event(Kind::MfaDisabled, Some(user));
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    users::lock(c, uid)?;
                    let name = credentials::confirmed(c, uid)?
                        .into_iter()
                        .find(|k| k.id == id)
                        .map(|k| k.name);
                    let Some(name) = name else { return Ok(Removed::NotFound) };
                    credentials::remove(c, uid, id)?;
                    let mut e = removed;
                    e.detail = Some(format!("“{name}”"));
                    events::record(c, &e, now)?;
                    if credentials::has_confirmed(c, uid)? {
                        return Ok(Removed::Removed);
                    }
                    turn_off(c, uid, &off, now)?;
                    events::record(c, &off, now)?;
                    let epoch = sessions::revoke_all(c, uid, None)?.map(|r| r.epoch).unwrap_or_default();
                    Ok(Removed::LastOne { epoch })
                })
            })
            .await?)
    }

    /// Disable MFA confirmed with a key instead of a code.
    pub async fn disable_mfa_with_key(
        &self,
        user: &User,
        owner: &str,
        ceremony: &str,
        response: &webauthn_rs::prelude::PublicKeyCredential,
        client: &Client,
    ) -> AuthResult<Result<Disable, super::webauthn::KeyRefusal>> {
        let (id, event, now) = (user.id, client.event(Kind::MfaDisabled, Some(user)), self.now());
        let done = self
            .finish_key_confirmation(user, owner, ceremony, response, client, move |c| {
                turn_off(c, id, &event, now)?;
                events::record(c, &event, now)?;
                Ok(sessions::revoke_all(c, id, None)?.map(|r| r.epoch))
            })
            .await?;
        Ok(done.map(|epoch| match epoch {
            Some(epoch) => Disable::Done { epoch },
            None => Disable::AlreadyOff,
        }))
    }

    /// The account's recent events, or everyone's (with filters).
    pub async fn security_log(
        &self,
        user: Option<UserId>,
        kind: Option<Kind>,
        offset: i64,
        limit: i64,
    ) -> AuthResult<(Vec<Row>, i64)> {
        Ok(self
            .db
            .read(move |c| events::page(c, user, kind, offset, limit))
            .await?)
    }

    /// The user's live sessions: (state JSON, created, expires).
    pub async fn sessions_of(&self, user: UserId) -> AuthResult<Vec<(String, i64, i64)>> {
        let now = self.now();
        Ok(self.db.read(move |c| sessions::list_for_user(c, user, now)).await?)
    }

    /// The user's known browsers, most recently used first.
    pub async fn known_browsers(&self, user: UserId) -> AuthResult<Vec<browsers::KnownBrowser>> {
        let now = self.now();
        Ok(self.db.read(move |c| browsers::list(c, user, now)).await?)
    }

    /// Whether this browser's token is one of the user's known browsers.
    pub async fn is_known_browser(&self, user: UserId, token: Option<&str>) -> AuthResult<Option<BrowserId>> {
        let Some(token) = token else { return Ok(None) };
        let (hashes, now) = (self.browser_token_hashes(token), self.now());
        let found = self.db.read(move |c| browsers::find(c, &hashes, now)).await?;
        Ok(found.filter(|b| b.user_id == user).map(|b| b.id))
    }

    /// Stop remembering one browser of the user (or all, with `None`), by
    /// the user or an administrator. The browsers stay known.
    pub async fn forget_remembered(
        &self,
        user: &User,
        which: Option<BrowserId>,
        actor: super::Actor<'_>,
    ) -> AuthResult<usize> {
        let (id, now) = (user.id, self.now());
        let mut event = actor.event(Kind::RememberedBrowserForgotten, user);
        let what = if which.is_some() { "one browser" } else { "all browsers" };
        event.detail = Some(match event.detail.take() {
            Some(by) => format!("{what}, {by}"),
            None => what.to_string(),
        });
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    let n = match which {
                        Some(b) => usize::from(browsers::forget_remembered(c, id, b)?),
                        None => browsers::forget_all_remembered(c, id)?,
                    };
                    if n > 0 {
                        events::record(c, &event, now)?;
                    }
                    Ok(n)
                })
            })
            .await?)
    }

    /// Forget one known browser of the user (or all, with `None`).
    pub async fn forget_browsers(&self, user: &User, which: Option<BrowserId>, client: &Client) -> AuthResult<usize> {
        let (id, now) = (user.id, self.now());
        let mut event = client.event(Kind::BrowserForgotten, Some(user));
        event.detail = Some(if which.is_some() {
            "one browser".into()
        } else {
            "all browsers".into()
        });
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    // A write first (SQLite's lock at once): stop remembering,
                    // counting how many were, then forget.
                    let remembered = match which {
                        Some(b) => usize::from(browsers::forget_remembered(c, id, b)?),
                        None => browsers::forget_all_remembered(c, id)?,
                    };
                    let n = match which {
                        Some(b) => usize::from(browsers::forget(c, id, b)?),
                        None => browsers::forget_all(c, id)?,
                    };
                    if n > 0 {
                        events::record(c, &event, now)?;
                        log_forgotten(c, &event, remembered, "browser forgotten", now)?;
                    }
                    Ok(n)
                })
            })
            .await?)
    }
}
