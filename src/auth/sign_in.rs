//! Signing in: the password step, the pending second step, and the
//! completion every sign-in ends with.
//!
//! A sign-in whose second factor is outstanding lives in `pending_sign_ins`
//! (the session holds only a random id): it can do nothing but take codes,
//! dies after five wrong ones — counted in its row, atomically — or after
//! five minutes, and is deleted by the commit that completes it, so it
//! completes once.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::Connection as _;
use sha2::{Digest, Sha256};

use super::factors::{self, CodeInput, FactorOutcome, FactorUsed, Refusal};
use super::password::{PasswordVerdict, Purpose, ThrottleReason};
use super::{Auth, AuthResult, Client};
use crate::core::limits::{KNOWN_BROWSER_SECONDS, PENDING_MAX_ATTEMPTS, PENDING_SECONDS};
use crate::core::password;
use crate::core::types::{BrowserId, Password, UnixTime};
use crate::core::username::Username;
use crate::db::events::{self, Kind};
use crate::db::pending::{self, NewPending};
use crate::db::users::{self, User};
use crate::db::{Conn, DbError, browsers, credentials, recovery, sessions};

/// A sign-in that is complete: the session may now be signed in.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub user: User,
    /// When the password was checked (for sudo mode).
    pub password_at: UnixTime,
    /// The known-browser token to (re)set in the browser's cookie.
    pub browser_token: String,
    pub factor: Option<FactorUsed>,
    /// With a recovery code: how many are left.
    pub recovery_codes_left: Option<i64>,
    /// "Remember this browser": the token for its cookie, and its Max-Age.
    pub remember: Option<(String, i64)>,
    /// The security-log id of the sign-in before this one (`None`: this
    /// is the account's first).
    pub previous_sign_in: Option<i64>,
}

/// The browser's session, moved to a new key by the very commit that
/// completes its sign-in, instead of by a second call on the writer after
/// it: the second step is the busiest path, and SQLite has one writer
/// (docs/PERFORMANCE.md). The web layer prepares it
/// (`SessionExt::prepare_move`); here it is only rows.
pub struct SessionMove {
    /// The id hash of the session's row (the key the browser sent): it is
    /// deleted in that commit, so the old key is dead once it is done.
    pub from: String,
    /// The id hash of the new key.
    pub to: String,
    /// The signed-in state and its expiry, from the completed sign-in;
    /// `None` leaves the session to the store.
    #[allow(clippy::type_complexity)]
    pub state: Box<dyn FnOnce(&SignedIn) -> Option<(String, UnixTime)> + Send>,
}

impl SessionMove {
    /// In the completing transaction, after `complete`.
    fn apply(self, c: &mut Conn, done: &SignedIn, now: UnixTime) -> Result<(), DbError> {
        let Some((state, expires_at)) = (self.state)(done) else {
            return Ok(());
        };
        let row = sessions::SessionRow {
            id_hash: &self.to,
            user: Some(done.user.id),
            state: &state,
            expires_at,
        };
        sessions::replace(c, &self.from, &row, now)
    }
}

/// What follows the password step.
#[derive(Debug)]
pub enum PasswordStep {
    /// No second factor: signed in.
    SignedIn(Box<SignedIn>),
    /// The code prompt comes next; the session keeps `pending` (a random
    /// id). `protected`: the account is under attack, and the prompt
    /// follows whether or not the password was right.
    SecondStep {
        pending: String,
        protected: bool,
    },
    Wrong,
    Throttled {
        retry_after: i64,
        reason: ThrottleReason,
    },
}

/// What became of a code at the second step.
#[derive(Debug)]
pub enum CodeStep {
    SignedIn(Box<SignedIn>),
    Refused {
        refusal: Refusal,
        attempts_left: i32,
    },
    /// A security key's answer was not accepted.
    KeyRefused {
        refusal: super::webauthn::KeyRefusal,
        attempts_left: i32,
    },
    /// Five wrong codes: this sign-in is over; start again.
    Ended,
    /// Expired, or finished or revoked meanwhile: start again.
    Gone,
    Throttled(i64),
}

/// How the password step ends when it may skip the code prompt.
enum Skip {
    Done(Box<SignedIn>),
    /// The remembered browser was forgotten meanwhile: ask for a code.
    Prompt,
    Gone,
}

fn pending_hash(id: &str) -> String {
    crate::core::keys::hex(&Sha256::digest(id.as_bytes()))
}

impl Auth {
    /// The password step of `/login`.
    pub async fn sign_in_with_password(
        &self,
        typed: &str,
        password: Password,
        client: &Client,
    ) -> AuthResult<PasswordStep> {
        let user = match Username::parse(typed) {
            Ok(name) => self.db.read(move |c| users::find_by_name(c, name.as_str())).await?,
            Err(_) => None,
        };
        // A hash made at another cost than the configured one is redone at
        // sign-in, so raising the cost takes effect.
        let rehash = user
            .as_ref()
            .filter(|u| password::cost_of(&u.password_hash) != Some(self.hasher.cost()))
            .map(|_| password.clone());
        let verdict = self
            .check_password(typed, user.as_ref(), password, client, Purpose::SignIn)
            .await?;
        let now = self.now();
        let (correct, protected) = match verdict {
            PasswordVerdict::Throttled { retry_after, reason } => {
                return Ok(PasswordStep::Throttled { retry_after, reason });
            }
            PasswordVerdict::Wrong => return Ok(PasswordStep::Wrong),
            PasswordVerdict::Correct => (true, false),
            PasswordVerdict::Protected { correct } => (correct, true),
        };
        let user = user.filter(|_| correct);
        if let (Some(u), Some(pw)) = (&user, rehash) {
            let new = self.hasher.hash(pw).await?;
            let (id, old) = (u.id, u.password_hash.clone());
            self.db.run(move |c| users::rehash_password(c, id, &old, &new)).await?;
        }
        let mfa_on = match &user {
            Some(u) => {
                let id = u.id;
                self.db.read(move |c| credentials::has_confirmed(c, id)).await?
            }
            None => false,
        };
        // A browser remembered for this user (and this 2FA enrolment, within
        // the days the policy allows now) skips the second step.
        let remembered = match &user {
            Some(u) if mfa_on && !protected => self.remembered_browser(u, client).await?,
            _ => None,
        };
        if (!mfa_on || remembered.is_some()) && !protected {
            let user = user
                .clone()
                .ok_or_else(|| super::AuthError::internal(anyhow::anyhow!("right password, no user")))?;
            let (client, token) = (client.clone(), self.browser_token_for(client));
            let days = self.mfa_policy().await?.remember_days;
            let signed_in = self
                .db
                .run(move |c| {
                    c.transaction(|c| {
                        // The sign-in completes with the user's row as it is
                        // under their lock.
                        let Some(user) = users::lock_get(c, user.id)? else {
                            return Ok(Skip::Gone);
                        };
                        // Checked again under the lock, in the commit that
                        // signs in: a Forget (or 2FA going off and on) that
                        // committed since the check above wins.
                        if let Some(browser) = remembered {
                            let since = now.0 - days * 86_400;
                            let still = days > 0
                                && browsers::still_remembered(c, browser, user.id, user.mfa_epoch, since, now)?;
                            if !still {
                                return Ok(Skip::Prompt);
                            }
                        }
                        let done = Completion {
                            user,
                            client: &client,
                            token,
                            factor: None,
                            password_at: now,
                            remember: None,
                            remembered: remembered.is_some(),
                        };
                        complete(c, done, now).map(|s| Skip::Done(Box::new(s)))
                    })
                })
                .await?;
            match signed_in {
                Skip::Done(signed_in) => return Ok(PasswordStep::SignedIn(signed_in)),
                // Deleted while its password was being checked.
                Skip::Gone => return Ok(PasswordStep::Wrong),
                Skip::Prompt => {}
            }
        }
        // The code prompt: a real pending sign-in for a right password and
        // an account with a second factor; otherwise (protected form only)
        // one that can never complete.
        let id = URL_SAFE_NO_PAD.encode(crate::core::random_bytes::<32>());
        let hash = pending_hash(&id);
        let owner = user.filter(|_| mfa_on).map(|u| u.id);
        let (address, agent) = (client.address.shown.clone(), client.user_agent.clone());
        self.db
            .run(move |c| {
                pending::insert(
                    c,
                    NewPending {
                        id_hash: &hash,
                        user: owner,
                        expires_at: now.plus(PENDING_SECONDS),
                        protected,
                        client_address: Some(&address),
                        user_agent: agent.as_deref(),
                    },
                    now,
                )
            })
            .await?;
        Ok(PasswordStep::SecondStep { pending: id, protected })
    }

    /// The user a pending sign-in is for, while it is alive (`None` also for
    /// a protected sign-in that can never complete).
    pub async fn pending_sign_in(&self, pending: &str) -> AuthResult<Option<pending::PendingSignIn>> {
        let (hash, now) = (pending_hash(pending), self.now());
        Ok(self.db.read(move |c| pending::find(c, &hash, now)).await?)
    }

    /// The second step: a TOTP code or a recovery code for a pending
    /// sign-in; with `remember`, the browser skips it from now on.
    ///
    /// One read (the pending sign-in, its user and their credentials) and
    /// one write transaction: the second factor is the path most requests
    /// of a busy morning take, and SQLite has one writer
    /// (docs/PERFORMANCE.md).
    pub async fn submit_code(
        &self,
        pending: &str,
        code: &str,
        client: &Client,
        remember: bool,
    ) -> AuthResult<CodeStep> {
        self.submit_code_moving(pending, code, client, remember, None).await
    }

    /// `submit_code`, and if the code is accepted, the browser's session
    /// moved to its new key in the same commit (`SessionMove`).
    pub async fn submit_code_moving(
        &self,
        pending: &str,
        code: &str,
        client: &Client,
        remember: bool,
        session: Option<SessionMove>,
    ) -> AuthResult<CodeStep> {
        let now = self.now();
        let hash = pending_hash(pending);
        let found = {
            let hash = hash.clone();
            self.db
                .read(move |c| {
                    let Some((row, user)) = pending::find_with_user(c, &hash, now)? else {
                        return Ok(None);
                    };
                    let creds = match &user {
                        Some(u) => credentials::confirmed(c, u.id)?,
                        None => Vec::new(),
                    };
                    Ok(Some((row, user, creds)))
                })
                .await?
        };
        let Some((row, user, creds)) = found else {
            return Ok(CodeStep::Gone);
        };
        let input = CodeInput::parse(code);
        if matches!(input, CodeInput::Malformed) {
            return Ok(CodeStep::Refused {
                refusal: Refusal::Malformed,
                attempts_left: PENDING_MAX_ATTEMPTS - row.attempts,
            });
        }
        let Some(user) = user else {
            // A protected sign-in that cannot complete: count the attempt
            // like any other, and refuse it like a wrong code.
            let kind = input.kind();
            let taken = self
                .db
                .run(move |c| {
                    c.transaction(|c| {
                        let taken = pending::take_attempt(c, &hash, now, PENDING_MAX_ATTEMPTS)?;
                        let left = pending::find(c, &hash, now)?.map_or(0, |p| PENDING_MAX_ATTEMPTS - p.attempts);
                        if taken && left == 0 {
                            pending::delete(c, &hash)?;
                        }
                        Ok((taken, left))
                    })
                })
                .await?;
            return Ok(match taken {
                (true, left) if left > 0 => CodeStep::Refused {
                    refusal: Refusal::Wrong(kind),
                    attempts_left: left,
                },
                (true, _) => CodeStep::Ended,
                (false, _) => CodeStep::Gone,
            });
        };
        let Some(prepared) = self.prepare(&user, &creds, &input)? else {
            return Ok(CodeStep::Gone);
        };
        let account = self.account_key(&user.username);
        let (client, token, kind) = (client.clone(), self.browser_token_for(client), input.kind());
        let remember = self.remember_request(remember).await?;
        let password_at = row.created_at;
        let step = self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    // The user's row as it is under the lock: the sign-in
                    // completes with it (its epochs and address may have
                    // changed since the read above).
                    let Some(user) = users::lock_get(c, user.id)? else {
                        return Ok(CodeStep::Gone);
                    };
                    // The account's lock first: a throttled attempt does not
                    // use up one of this sign-in's five.
                    let counter = factors::account_counter(c, &user)?;
                    let rule = crate::core::limits::SECOND_FACTOR_ACCOUNT;
                    if let Some(wait) = counter.and_then(|k| rule.retry_after(&k, now.0)) {
                        return Ok(CodeStep::Throttled(wait));
                    }
                    // Every attempt on this sign-in runs under the same
                    // user's lock, so the count read here is the count: the
                    // attempt is taken (below) by deleting the row for a
                    // right code, or by counting a wrong one — with no
                    // UPDATE on the way to a right one.
                    let Some(alive) = pending::find(c, &hash, now)?.filter(|p| p.attempts < PENDING_MAX_ATTEMPTS)
                    else {
                        pending::delete(c, &hash)?;
                        return Ok(CodeStep::Gone);
                    };
                    match factors::attempt(c, &user, &account, kind, &prepared, &client, counter, now)? {
                        FactorOutcome::Accepted(used) => {
                            if !pending::finish(c, &hash, now, PENDING_MAX_ATTEMPTS)? {
                                return Ok(CodeStep::Gone);
                            }
                            let done = Completion {
                                user,
                                client: &client,
                                token,
                                factor: Some(used),
                                password_at,
                                remember,
                                remembered: false,
                            };
                            let signed_in = complete(c, done, now)?;
                            if let Some(session) = session {
                                session.apply(c, &signed_in, now)?;
                            }
                            Ok(CodeStep::SignedIn(Box::new(signed_in)))
                        }
                        FactorOutcome::Throttled(wait) => Ok(CodeStep::Throttled(wait)),
                        FactorOutcome::Refused(refusal) => {
                            if !pending::take_attempt(c, &hash, now, PENDING_MAX_ATTEMPTS)? {
                                return Ok(CodeStep::Gone);
                            }
                            let left = PENDING_MAX_ATTEMPTS - (alive.attempts + 1);
                            if left > 0 {
                                return Ok(CodeStep::Refused {
                                    refusal,
                                    attempts_left: left,
                                });
                            }
                            pending::delete(c, &hash)?;
                            events::record(c, &client.event(Kind::SignInAbandoned, Some(&user)), now)?;
                            Ok(CodeStep::Ended)
                        }
                    }
                })
            })
            .await?;
        Ok(step)
    }

    /// Abandon a pending sign-in (the user went back to the start).
    pub async fn cancel_sign_in(&self, pending: &str) -> AuthResult<()> {
        let (hash, now) = (pending_hash(pending), self.now());
        // Expired now rather than deleted: a right password whose second
        // step was given up still gets its alert (`finish_unfinished_sign_ins`),
        // so "Cancel" cannot be used to keep the owner from hearing of it.
        self.db.run(move |c| pending::expire(c, &hash, now).map(|_| ())).await?;
        Ok(())
    }

    /// The known-browser token this sign-in will keep or issue: the one
    /// the browser sent (kept if it is this user's), or a fresh one.
    fn browser_token_for(&self, client: &Client) -> BrowserToken {
        let fresh = URL_SAFE_NO_PAD.encode(crate::core::random_bytes::<32>());
        BrowserToken {
            sent: client
                .browser_token
                .as_ref()
                .map(|t| (t.clone(), self.browser_token_hashes(t))),
            fresh_hash: self.browser_token_hash(&fresh),
            fresh,
        }
    }
}

/// A known-browser token: the one the browser sent (with its hash), and a
/// fresh one in case that is not this user's.
pub(crate) struct BrowserToken {
    /// The token and its hashes under every key, the active key's first.
    sent: Option<(String, Vec<String>)>,
    fresh: String,
    fresh_hash: String,
}

impl Auth {
    pub(crate) fn new_browser_token(&self, client: &Client) -> BrowserToken {
        self.browser_token_for(client)
    }

    /// The keyed hash under which a "remember this browser" token is stored.
    pub(crate) fn remember_hash(&self, token: &str) -> String {
        crate::core::keys::hex(&self.keys.mac("remember-browser", token.as_bytes()))
    }

    /// The remember token's keyed hash under every server key, the active
    /// one first: a browser remembered before a key rotation is still found.
    pub(crate) fn remember_hashes(&self, token: &str) -> Vec<String> {
        let macs = self.keys.mac_candidates("remember-browser", token.as_bytes());
        macs.iter().map(|m| crate::core::keys::hex(m)).collect()
    }

    /// A remember token, if it was asked for and the policy allows it.
    pub(crate) async fn remember_request(&self, asked: bool) -> AuthResult<Option<RememberToken>> {
        if !asked {
            return Ok(None);
        }
        let days = self.mfa_policy().await?.remember_days;
        if days <= 0 {
            return Ok(None);
        }
        let value = URL_SAFE_NO_PAD.encode(crate::core::random_bytes::<32>());
        Ok(Some(RememberToken {
            hash: self.remember_hash(&value),
            value,
            days,
        }))
    }

    /// The browser's remembered row for `user`, if its remember token is
    /// this user's, from their current 2FA enrolment, and still within the
    /// days the policy allows now (a shorter setting applies at once).
    pub async fn remembered_browser(&self, user: &User, client: &Client) -> AuthResult<Option<BrowserId>> {
        let Some(token) = client.remember_token.as_deref() else {
            return Ok(None);
        };
        let hashes = self.remember_hashes(token);
        let active = hashes[0].clone();
        let Some(row) = self.db.read(move |c| browsers::find_remembered(c, &hashes)).await? else {
            return Ok(None);
        };
        let days = self.mfa_policy().await?.remember_days;
        let now = self.now();
        let ok = row.user_id == user.id
            && row.remembered_epoch == Some(user.mfa_epoch)
            && row
                .remembered_at
                .is_some_and(|at| days > 0 && now.0 < at + days * 86_400)
            && row.expires_at > now;
        // Made under an older key (before a rotation): stored under the
        // active key's hash from now on.
        if ok && let Some(old) = row.remember_hash.clone().filter(|h| *h != active) {
            let id = row.id;
            self.db
                .run(move |c| browsers::rehash_remembered(c, id, &old, &active))
                .await?;
        }
        Ok(ok.then_some(row.id))
    }
}

/// A new "remember this browser" token: its value for the cookie, its
/// keyed hash for the database, and for how many days.
pub(crate) struct RememberToken {
    pub value: String,
    pub hash: String,
    pub days: i64,
}

/// How a sign-in ends (see `complete`).
pub(crate) struct Completion<'a> {
    pub user: User,
    pub client: &'a Client,
    pub token: BrowserToken,
    pub factor: Option<FactorUsed>,
    pub password_at: UnixTime,
    /// "Remember this browser" was ticked at the code prompt.
    pub remember: Option<RememberToken>,
    /// The second step was skipped: a remembered browser.
    pub remembered: bool,
}

/// The end of every sign-in, in the caller's transaction: the login
/// recorded and logged, and the browser known to the account from now on
/// (and remembered, if asked). `done.user` is the row read under the
/// user's lock in this transaction (`users::lock_get`).
pub(crate) fn complete(c: &mut Conn, done: Completion<'_>, now: UnixTime) -> Result<SignedIn, DbError> {
    let Completion {
        user,
        client,
        token,
        factor,
        password_at,
        remember,
        remembered,
    } = done;
    // The row was read under the user's lock, in this transaction.
    let previous_sign_in = user.last_sign_in_event;
    let mut event = client.event(Kind::LoginSucceeded, Some(&user));
    event.detail = match factor {
        Some(FactorUsed::RecoveryCode) => Some("with a recovery code".into()),
        Some(FactorUsed::Totp(_)) => Some("with an authenticator code".into()),
        Some(FactorUsed::Key(_)) => Some("with a security key or passkey".into()),
        None if remembered => Some("on a remembered browser: second step skipped".into()),
        None => None,
    };
    let logged = events::record_id(c, &event, now)?;
    users::record_login(c, user.id, logged, now)?;
    let (browser_token, browser, new_browser) = make_known(c, &user, client, token, now)?;
    // A browser the account had not signed in with (not the very first
    // sign-in of an account: every browser is new then).
    if new_browser && user.last_login_at.is_some() {
        crate::db::outbox::notify_user(c, crate::core::notice::Notice::NewBrowser, &user, &event, now)?;
    }
    let remember = match remember {
        Some(r) if r.days > 0 => {
            browsers::remember(c, browser, &r.hash, user.mfa_epoch, now)?;
            let mut e = client.event(Kind::BrowserRemembered, Some(&user));
            e.detail = Some(format!("for {} days", r.days));
            events::record(c, &e, now)?;
            Some((r.value, r.days * 86_400))
        }
        _ => None,
    };
    let recovery_codes_left = match factor {
        Some(FactorUsed::RecoveryCode) => Some(recovery::remaining(c, user.id)?),
        _ => None,
    };
    Ok(SignedIn {
        user,
        password_at,
        browser_token,
        factor,
        recovery_codes_left,
        remember,
        previous_sign_in,
    })
}

/// Make the browser known to `user`: its token's lifetime starts again, or
/// it gets a new token. Returns the token for the cookie, the row, and
/// whether the browser is new to the account.
pub(crate) fn make_known(
    c: &mut Conn,
    user: &User,
    client: &Client,
    token: BrowserToken,
    now: UnixTime,
) -> Result<(String, BrowserId, bool), DbError> {
    let expires = now.plus(KNOWN_BROWSER_SECONDS);
    if let Some((value, hashes)) = &token.sent
        && let Some(known) = browsers::find(c, hashes, now)?
        && known.user_id == user.id
    {
        browsers::touch(c, known.id, &hashes[0], now, expires)?;
        return Ok((value.clone(), known.id, false));
    }
    let id = browsers::insert(
        c,
        browsers::NewBrowser {
            user: user.id,
            token_hash: &token.fresh_hash,
            expires_at: expires,
            user_agent: client.user_agent.as_deref(),
            client_address: Some(&client.address.shown),
        },
        now,
    )?;
    Ok((token.fresh, id, true))
}
