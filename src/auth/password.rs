//! The password step and its lockout rules (docs/SECURITY.md has the
//! design; `core::limits` the numbers).
//!
//! Who asks picks the counters ("lane"):
//! - a browser known to this account counts against its own counter only;
//! - a signed-in session (sudo, password change) against its own counter;
//! - anyone else goes through the per-(account, network) counter, the
//!   network's rate and spraying counters, and the account's daily budget —
//!   and, when the budget is spent or the network is spraying, gets a
//!   *protected* check: the caller must answer with the code prompt whatever
//!   the result, so the check discloses nothing.
//!
//! Every attempt takes its place *before* the password is hashed, in one
//! transaction, so a burst of simultaneous guesses gets no more checks than
//! a patient guesser; a right password gives the place back.

use diesel::Connection as _;

use super::{Auth, AuthResult, Client, mask};
use crate::core::limits::{
    ACCOUNT_DAILY_BUDGET, ADDRESS_HASH_RATE, ADDRESS_IN_FLIGHT, ADDRESS_QUEUE, PASSWORD_ACCOUNT_ADDRESS,
    PASSWORD_ADDRESS, PASSWORD_KNOWN_BROWSER, PASSWORD_SESSION,
};
use crate::core::throttle::{Counter, Rule};
use crate::core::types::{BrowserId, Password, UnixTime};
use crate::db::events::{self, Kind};
use crate::db::users::User;
use crate::db::{Conn, DbError, browsers, throttles};

/// What the password is being checked for.
#[derive(Clone, Debug)]
pub enum Purpose {
    /// Signing in (`/login`).
    SignIn,
    /// A signed-in session confirming its password (sudo mode, password
    /// change); the value is the session's public id.
    Session(String),
}

/// Which counters an attempt goes against.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Lane {
    KnownBrowser(BrowserId),
    Session(String),
    NewBrowser,
}

/// Why an attempt was refused before its password was checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ThrottleReason {
    /// Too many wrong passwords for this account from this network.
    AccountFromNetwork,
    /// Too many password checks from this network right now.
    NetworkBusy,
    /// The account's daily budget for new browsers is spent (or the network
    /// is trying many accounts), and this network has failed against it.
    AccountProtected,
    /// Too many wrong passwords from this known browser.
    ThisBrowser,
    /// Too many wrong passwords in this session.
    ThisSession,
}

/// The result of a password check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PasswordVerdict {
    Correct,
    Wrong,
    /// A protected check: the caller answers with the code prompt whether
    /// the password was right or not (`correct` is for the service only).
    Protected {
        correct: bool,
    },
    Throttled {
        retry_after: i64,
        reason: ThrottleReason,
    },
}

/// What the reservation took, to settle after the check.
struct Reserved {
    lane: Lane,
    protected: bool,
    took_budget: bool,
    /// The lane's own counter after counting this attempt up front.
    counter_after: Counter,
    budget_left: Option<u32>,
    /// This attempt was the one that put the network past its spraying limit.
    spray_started: bool,
}

fn lane_rule(lane: &Lane) -> Rule {
    match lane {
        Lane::KnownBrowser(_) => PASSWORD_KNOWN_BROWSER,
        Lane::Session(_) => PASSWORD_SESSION,
        Lane::NewBrowser => PASSWORD_ACCOUNT_ADDRESS,
    }
}

fn lane_key(lane: &Lane, account: &str, network: &str) -> String {
    match lane {
        Lane::KnownBrowser(id) => format!("{account}|browser:{id}"),
        Lane::Session(sid) => format!("{account}|session:{sid}"),
        Lane::NewBrowser => format!("{account}|{network}"),
    }
}

impl Auth {
    /// The keyed hash under which a known-browser token is stored.
    pub(crate) fn browser_token_hash(&self, token: &str) -> String {
        crate::core::keys::hex(&self.keys.mac("known-browser", token.as_bytes()))
    }

    /// The token's keyed hash under every server key, the active one first:
    /// to find a browser remembered before a key rotation.
    pub(crate) fn browser_token_hashes(&self, token: &str) -> Vec<String> {
        let macs = self.keys.mac_candidates("known-browser", token.as_bytes());
        macs.iter().map(|m| crate::core::keys::hex(m)).collect()
    }

    /// Check `password` for the account typed as `typed` (`user`, if it
    /// exists), under the lockout rules. With no user, the dummy hash is
    /// checked, so the answer takes the same time.
    pub async fn check_password(
        &self,
        typed: &str,
        user: Option<&User>,
        password: Password,
        client: &Client,
        purpose: Purpose,
    ) -> AuthResult<PasswordVerdict> {
        let now = self.now();
        let account = self.account_key(typed);
        let network = client.address.key.clone();
        let lane = match purpose {
            Purpose::Session(sid) => Lane::Session(sid),
            Purpose::SignIn => self.known_browser_lane(user, client, now).await?,
        };
        // A place among this network's checks in progress (new browsers
        // only: a known browser or a session is never held up by others).
        let _in_flight = match lane {
            Lane::NewBrowser => match self.hasher.enter(&network, ADDRESS_IN_FLIGHT, ADDRESS_QUEUE).await {
                Some(guard) => Some(guard),
                None => {
                    return self
                        .throttled(user, typed, client, 1, ThrottleReason::NetworkBusy)
                        .await;
                }
            },
            _ => None,
        };

        let (lane_r, acct, net) = (lane.clone(), account.clone(), network.clone());
        let reserved = self
            .db
            .run(move |c| c.transaction(|c| reserve(c, lane_r, &acct, &net, now)))
            .await?;
        let reserved = match reserved {
            Ok(r) => r,
            Err((wait, reason)) => return self.throttled(user, typed, client, wait, reason).await,
        };

        let correct = self
            .hasher
            .verify(password, user.map(|u| u.password_hash.clone()))
            .await?;

        let (user_c, typed_c, client_c) = (user.cloned(), typed.to_string(), client.clone());
        let protected = reserved.protected;
        self.db
            .run(move |c| {
                c.transaction(|c| {
                    settle(
                        c,
                        &reserved,
                        Settle {
                            correct,
                            user: user_c.as_ref(),
                            typed: &typed_c,
                            account: &account,
                            network: &network,
                            client: &client_c,
                            now,
                        },
                    )
                })
            })
            .await?;
        Ok(if protected {
            PasswordVerdict::Protected { correct }
        } else if correct {
            PasswordVerdict::Correct
        } else {
            PasswordVerdict::Wrong
        })
    }

    /// The known-browser lane, when the browser's token belongs to `user`.
    /// A browser remembered for `user` ("Remember this browser") is known
    /// too, by its remember token, even if its known-browser cookie is gone.
    async fn known_browser_lane(&self, user: Option<&User>, client: &Client, now: UnixTime) -> AuthResult<Lane> {
        let Some(user) = user else {
            return Ok(Lane::NewBrowser);
        };
        let token_hashes = client.browser_token.as_deref().map(|t| self.browser_token_hashes(t));
        let remember_hashes = client.remember_token.as_deref().map(|t| self.remember_hashes(t));
        if token_hashes.is_none() && remember_hashes.is_none() {
            return Ok(Lane::NewBrowser);
        }
        let (id, epoch) = (user.id, user.mfa_epoch);
        // A remember token counts only while it would skip the second step.
        let since = match &remember_hashes {
            Some(_) => now.0 - self.mfa_policy().await?.remember_days * 86_400,
            None => now.0,
        };
        let found = self
            .db
            .read(move |c| {
                if let Some(hashes) = &token_hashes
                    && let Some(b) = browsers::find(c, hashes, now)?
                    && b.user_id == id
                {
                    return Ok(Some(b.id));
                }
                Ok(match &remember_hashes {
                    Some(hashes) => browsers::find_remembered(c, hashes)?
                        .filter(|b| {
                            b.user_id == id
                                && b.expires_at > now
                                && b.remembered_epoch == Some(epoch)
                                && b.remembered_at.is_some_and(|at| at > since)
                        })
                        .map(|b| b.id),
                    None => None,
                })
            })
            .await?;
        Ok(found.map_or(Lane::NewBrowser, Lane::KnownBrowser))
    }

    async fn throttled(
        &self,
        user: Option<&User>,
        typed: &str,
        client: &Client,
        wait: i64,
        reason: ThrottleReason,
    ) -> AuthResult<PasswordVerdict> {
        let mut event = client.event(Kind::LoginThrottled, user);
        if user.is_none() {
            event.username = Some(mask(typed));
        }
        event.detail = Some(describe(reason).into());
        let now = self.now();
        self.db.run(move |c| events::record(c, &event, now)).await?;
        Ok(PasswordVerdict::Throttled {
            retry_after: wait.max(1),
            reason,
        })
    }
}

fn describe(reason: ThrottleReason) -> &'static str {
    match reason {
        ThrottleReason::AccountFromNetwork => "too many wrong passwords from this network",
        ThrottleReason::NetworkBusy => "too many password checks from this network",
        ThrottleReason::AccountProtected => "account protected after many failures; this network failed too",
        ThrottleReason::ThisBrowser => "too many wrong passwords from this browser",
        ThrottleReason::ThisSession => "too many wrong passwords in this session",
    }
}

/// Take this attempt's places, in one fixed order (the lane's counter, the
/// network's spraying counter, the network's rate, the account's budget),
/// or say how long to wait.
fn reserve(
    c: &mut Conn,
    lane: Lane,
    account: &str,
    network: &str,
    now: UnixTime,
) -> Result<Result<Reserved, (i64, ThrottleReason)>, DbError> {
    let rule = lane_rule(&lane);
    let key = lane_key(&lane, account, network);
    let counter = throttles::lock_counter(c, &rule, &key, Some(account))?;
    if let Some(wait) = counter.and_then(|k| rule.retry_after(&k, now.0)) {
        let reason = match lane {
            Lane::KnownBrowser(_) => ThrottleReason::ThisBrowser,
            Lane::Session(_) => ThrottleReason::ThisSession,
            Lane::NewBrowser => ThrottleReason::AccountFromNetwork,
        };
        return Ok(Err((wait, reason)));
    }
    let mut protected = false;
    let mut took_budget = false;
    let mut budget_left = None;
    let mut spray_started = false;
    if lane == Lane::NewBrowser {
        let spray = throttles::lock_counter(c, &PASSWORD_ADDRESS, network, None)?;
        let spraying = spray.and_then(|k| PASSWORD_ADDRESS.retry_after(&k, now.0));
        let rate = throttles::lock_bucket(c, &ADDRESS_HASH_RATE, network, None, now.0)?;
        let rate = match ADDRESS_HASH_RATE.take(Some(rate), now.0) {
            Ok(next) => next,
            Err(wait) => return Ok(Err((wait, ThrottleReason::NetworkBusy))),
        };
        let budget = throttles::lock_bucket(c, &ACCOUNT_DAILY_BUDGET, account, Some(account), now.0)?;
        let clean = counter.is_none();
        match (ACCOUNT_DAILY_BUDGET.take(Some(budget), now.0), spraying) {
            (Ok(next), None) => {
                throttles::store_bucket(c, &ACCOUNT_DAILY_BUDGET, account, &next)?;
                took_budget = true;
                budget_left = Some(next.tokens);
            }
            // Spent, or the network is spraying: a protected check for a
            // network that has not failed against this account.
            _ if clean => protected = true,
            (Err(wait), spray) => return Ok(Err((wait.max(spray.unwrap_or(0)), ThrottleReason::AccountProtected))),
            (Ok(_), Some(wait)) => return Ok(Err((wait, ThrottleReason::AccountProtected))),
        }
        throttles::store_bucket(c, &ADDRESS_HASH_RATE, network, &rate)?;
        // The network's spraying counter counts the attempt up front too, so
        // a burst at many accounts gets no more checks than a patient one.
        let spray_after = PASSWORD_ADDRESS.record_failure(spray, now.0);
        throttles::store_counter(c, &PASSWORD_ADDRESS, network, &spray_after)?;
        spray_started = spraying.is_none() && spray_after.locked_until > now.0;
    }
    // The attempt counts as a failure now; a right password clears it.
    let counter_after = rule.record_failure(counter, now.0);
    throttles::store_counter(c, &rule, &key, &counter_after)?;
    Ok(Ok(Reserved {
        lane,
        protected,
        took_budget,
        counter_after,
        budget_left,
        spray_started,
    }))
}

struct Settle<'a> {
    correct: bool,
    user: Option<&'a User>,
    typed: &'a str,
    account: &'a str,
    network: &'a str,
    client: &'a Client,
    now: UnixTime,
}

/// After the check: a right password clears the lane's counter and gives
/// back the budget's token and the spraying counter's count; a wrong one is
/// logged, and so is any lock it started.
fn settle(c: &mut Conn, r: &Reserved, s: Settle<'_>) -> Result<(), DbError> {
    let rule = lane_rule(&r.lane);
    let key = lane_key(&r.lane, s.account, s.network);
    if s.correct {
        // In `reserve`'s order: the lane, the network, the account.
        throttles::reset(c, &rule, &key)?;
        if r.lane == Lane::NewBrowser
            && let Some(spray) = throttles::lock_counter(c, &PASSWORD_ADDRESS, s.network, None)?
        {
            throttles::store_counter(c, &PASSWORD_ADDRESS, s.network, &PASSWORD_ADDRESS.forgive_one(spray))?;
        }
        if r.took_budget {
            let state = throttles::lock_bucket(c, &ACCOUNT_DAILY_BUDGET, s.account, Some(s.account), s.now.0)?;
            let back = ACCOUNT_DAILY_BUDGET.give_back(Some(state), s.now.0);
            throttles::store_bucket(c, &ACCOUNT_DAILY_BUDGET, s.account, &back)?;
        }
        return Ok(());
    }
    let failed_kind = match r.lane {
        Lane::Session(_) => Kind::SudoFailed,
        _ => Kind::LoginFailed,
    };
    let mut event = s.client.event(failed_kind, s.user);
    if s.user.is_none() {
        // Whatever was typed, masked: people type passwords into the
        // username field, and the log must never hold one.
        event.username = Some(mask(s.typed));
        event.detail = Some("unknown username".into());
    } else if r.protected {
        event.detail = Some("protected sign-in".into());
    }
    events::record(c, &event, s.now)?;
    let mut locked = |detail: String| {
        let mut e = s.client.event(Kind::PasswordLocked, s.user);
        if s.user.is_none() {
            e.username = Some(mask(s.typed));
        }
        e.detail = Some(detail);
        events::record(c, &e, s.now)
    };
    if r.counter_after.locked_until > s.now.0 && r.counter_after.failures == rule.free {
        locked(match r.lane {
            Lane::KnownBrowser(_) => "this browser, after its own failures".to_string(),
            Lane::Session(_) => "this session, after its own failures".to_string(),
            Lane::NewBrowser => format!("network {}", s.network),
        })?;
    }
    if r.took_budget && r.budget_left == Some(0) {
        locked("daily limit reached: new browsers now need the second step too".into())?;
    }
    if r.spray_started {
        let mut e = s.client.event(Kind::PasswordLocked, None);
        e.detail = Some(format!(
            "network {}: many accounts tried; its sign-ins are now protected",
            s.network
        ));
        events::record(c, &e, s.now)?;
    }
    Ok(())
}
