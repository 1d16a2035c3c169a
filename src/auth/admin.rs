//! Administration, shared by the web pages and the command line: every
//! change with its log entry (and the sessions it ends) in one commit.

use diesel::Connection as _;

use super::{Actor, Auth, AuthResult, Client, account_key};
use crate::core::limits::{
    ACCOUNT_DAILY_BUDGET, PASSWORD_ACCOUNT_ADDRESS, PASSWORD_KNOWN_BROWSER, PASSWORD_SESSION, SECOND_FACTOR_ACCOUNT,
};
use crate::core::policy::MfaPolicy;
use crate::core::types::{Password, UnixTime, UserId};
use crate::db::credentials;
use crate::db::events::{self, Kind};
use crate::db::sessions::Ended;
use crate::db::setup::{self, SetupError};
use crate::db::users::{self, AdminChange, CreateError, NewAccount, User};
use crate::db::{Conn, DbError, browsers, pending, recovery, sessions, settings, throttles};

/// What became of an administrator's 2FA reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reset {
    /// 2FA was on and is off now; this many sessions ended.
    Done { sessions_ended: usize },
    /// 2FA was already off; the sessions ended all the same.
    WasOff { sessions_ended: usize },
}

/// Every lock that applies to an account, for the Users page.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Locks {
    /// Second-factor codes refused until then.
    pub second_factor_until: Option<i64>,
    /// The daily budget for new browsers is spent: their sign-ins need the
    /// second factor too, until then.
    pub protected_until: Option<i64>,
    /// Networks locked out of this account (new browsers), and until when.
    pub networks: usize,
    pub networks_until: Option<i64>,
    /// Known browsers or sessions locked by their own failures.
    pub browsers: usize,
    pub browsers_until: Option<i64>,
}

impl Locks {
    pub fn any(&self) -> bool {
        self.second_factor_until.is_some() || self.protected_until.is_some() || self.networks > 0 || self.browsers > 0
    }

    /// The latest time any of them ends.
    pub fn until(&self) -> Option<i64> {
        [
            self.second_factor_until,
            self.protected_until,
            self.networks_until,
            self.browsers_until,
        ]
        .into_iter()
        .flatten()
        .max()
    }
}

/// One account on the Users page, or in `latchkey user list`.
#[derive(Clone, Debug)]
pub struct UserOverview {
    pub user: User,
    /// Kinds of the confirmed factors ("totp", "webauthn"), oldest first.
    pub factors: Vec<String>,
    pub mfa_since: Option<i64>,
    pub recovery_codes_left: i64,
    pub locks: Locks,
    /// Browsers that skip the second factor right now.
    pub remembered_browsers: usize,
}

impl UserOverview {
    pub fn mfa_on(&self) -> bool {
        !self.factors.is_empty()
    }
}

/// What became of a new account.
#[derive(Debug)]
pub enum Created {
    Done(User),
    Exists,
}

impl Auth {
    /// Turn a user's 2FA off (a lost phone): every factor, recovery code,
    /// known browser and pending sign-in goes, and every session ends. The
    /// one function behind the Users page and `latchkey user reset-mfa`.
    pub async fn reset_mfa(&self, actor: Actor<'_>, target: UserId) -> AuthResult<Option<Reset>> {
        let now = self.now();
        let (on_event, off_event) = match self.find_user(target).await? {
            Some(u) => (actor.event(Kind::MfaResetByAdmin, &u), {
                let mut e = actor.event(Kind::SessionsRevoked, &u);
                e.detail = Some(format!(
                    "{} (two-factor authentication was already off)",
                    e.detail.unwrap_or_default()
                ));
                e
            }),
            None => return Ok(None),
        };
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    if !users::lock(c, target)? {
                        return Ok(None);
                    }
                    let was_on = credentials::has_confirmed(c, target)?;
                    let why = if was_on { &on_event } else { &off_event };
                    super::account::turn_off(c, target, why, now)?;
                    browsers::forget_all(c, target)?;
                    pending::delete_for_user(c, target)?;
                    let reason = if was_on {
                        Ended::MfaReset
                    } else {
                        Ended::ByAdministrator
                    };
                    let ended = sessions::end_all(c, target, reason, now)?.map_or(0, |r| r.ended);
                    events::record(c, if was_on { &on_event } else { &off_event }, now)?;
                    Ok(Some(if was_on {
                        Reset::Done { sessions_ended: ended }
                    } else {
                        Reset::WasOff { sessions_ended: ended }
                    }))
                })
            })
            .await?)
    }

    /// Clear every lock on an account: its password counters on every lane,
    /// its daily budget, its second-factor counter. Returns how many there were.
    pub async fn unlock(&self, actor: Actor<'_>, target: &User) -> AuthResult<usize> {
        let account = self.account_key(&target.username);
        let (mut event, now) = (actor.event(Kind::AdminUnlocked, target), self.now());
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    let n = throttles::clear_account(c, &account)?;
                    event.detail = Some(format!("{}; {n} counters cleared", event.detail.unwrap_or_default()));
                    events::record(c, &event, now)?;
                    Ok(n)
                })
            })
            .await?)
    }

    /// Create an account. From the web: a temporary password the user must
    /// change at first sign-in; from the CLI: the password given.
    pub async fn create_user(
        &self,
        actor: Actor<'_>,
        username: &crate::core::username::Username,
        password: Password,
        is_admin: bool,
    ) -> AuthResult<Created> {
        let hash = self.hasher.hash(password).await?;
        let temporary = matches!(actor, Actor::Admin { .. });
        let (name, now) = (username.as_str().to_string(), self.now());
        let kind = if temporary {
            Kind::AdminCreatedUser
        } else {
            Kind::UserCreated
        };
        let event_for = {
            let probe = User {
                id: UserId(0),
                username: name.clone(),
                password_hash: String::new(),
                is_admin,
                created_at: now,
                last_login_at: None,
                must_change_password: temporary,
                session_epoch: Default::default(),
                recovery_codes_generation: 0,
                webauthn_handle: None,
                mfa_epoch: 0,
                email: None,
                email_verified_at: None,
                notify_new_browser: true,
                last_sign_in_event: None,
            };
            actor.event(kind, &probe)
        };
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    let account = NewAccount {
                        username: &name,
                        password_hash: &hash,
                        is_admin,
                        must_change_password: temporary,
                    };
                    match users::create(c, account, now) {
                        Ok(user) => {
                            let mut e = event_for;
                            e.user_id = Some(user.id);
                            events::record(c, &e, now)?;
                            Ok(Created::Done(user))
                        }
                        Err(CreateError::Exists(_)) => Ok(Created::Exists),
                        Err(CreateError::Db(e)) => Err(e),
                    }
                })
            })
            .await?)
    }

    /// Grant or remove admin rights (never the last administrator's).
    pub async fn set_admin(&self, actor: Actor<'_>, target: &User, grant: bool) -> AuthResult<AdminChange> {
        let kind = if grant { Kind::AdminGranted } else { Kind::AdminRevoked };
        let (event, id, now) = (actor.event(kind, target), target.id, self.now());
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    let outcome = users::set_admin(c, id, grant)?;
                    if outcome == AdminChange::Done {
                        events::record(c, &event, now)?;
                    }
                    Ok(outcome)
                })
            })
            .await?)
    }

    /// Whether `target` is the only administrator (so "Remove admin" is not
    /// offered for them).
    pub async fn is_last_admin(&self, target: &User) -> AuthResult<bool> {
        let id = target.id;
        Ok(target.is_admin && self.db.read(move |c| users::admin_count_besides(c, id)).await? == 0)
    }

    /// Require 2FA for everyone (with a grace period), or not.
    pub async fn set_policy(
        &self,
        admin: &User,
        client: &Client,
        required: bool,
        grace_days: i64,
        keys_only: bool,
        remember_days: i64,
    ) -> AuthResult<MfaPolicy> {
        let mut event = client.event(Kind::PolicyChanged, Some(admin));
        event.detail = Some(
            match (required, keys_only) {
                (true, false) => format!("two-factor authentication required, {grace_days} days’ grace"),
                (true, true) => format!("security keys or passkeys required, {grace_days} days’ grace"),
                (false, _) => "two-factor authentication optional".into(),
            } + &format!("; browsers remembered for {remember_days} days"),
        );
        let now = self.now();
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    let old = settings::mfa_policy(c)?;
                    // Keep the start of the grace period when only its length
                    // changes; a stricter rule (keys only) starts a new one.
                    let stricter = keys_only && !old.keys_only;
                    let since = if old.required && required && !stricter {
                        old.since
                    } else {
                        now.0
                    };
                    let policy = MfaPolicy {
                        required,
                        since,
                        grace_days,
                        keys_only: required && keys_only,
                        remember_days,
                    };
                    settings::set_mfa_policy(c, &policy, now)?;
                    events::record(c, &event, now)?;
                    Ok(policy)
                })
            })
            .await?)
    }

    pub async fn mfa_policy(&self) -> AuthResult<MfaPolicy> {
        Ok(self.db.read(settings::mfa_policy).await?)
    }

    pub async fn find_user(&self, id: UserId) -> AuthResult<Option<User>> {
        Ok(self.db.read(move |c| users::find(c, id)).await?)
    }

    pub async fn find_user_by_name(&self, name: &str) -> AuthResult<Option<User>> {
        let name = name.to_string();
        Ok(self.db.read(move |c| users::find_by_name(c, &name)).await?)
    }

    /// Every account with its factors, recovery codes and locks.
    pub async fn users_overview(&self) -> AuthResult<Vec<UserOverview>> {
        let (keys, now) = (self.keys.clone(), self.now());
        Ok(self
            .db
            .read(move |c| overview(c, &|name| account_key(&keys, name), now))
            .await?)
    }

    /// The one-time setup link: arm it (only while there are no users).
    pub async fn arm_setup(&self, token_hash: String) -> AuthResult<bool> {
        let now = self.now();
        Ok(self.db.run(move |c| setup::arm(c, &token_hash, now)).await?)
    }

    pub async fn setup_link_valid(&self, token_hash: String) -> AuthResult<bool> {
        Ok(self.db.read(move |c| setup::is_valid(c, &token_hash)).await?)
    }

    /// Spend the setup link and create the first administrator, with its
    /// log entry, in one commit. `None` when the link is spent.
    pub async fn complete_setup(
        &self,
        token_hash: String,
        username: &crate::core::username::Username,
        password: Password,
        client: &Client,
    ) -> AuthResult<Option<User>> {
        let hash = self.hasher.hash(password).await?;
        let (name, client, now) = (username.as_str().to_string(), client.clone(), self.now());
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| match setup::complete(c, &token_hash, &name, &hash, now) {
                    Ok(user) => {
                        events::record(c, &client.event(Kind::SetupCompleted, Some(&user)), now)?;
                        Ok(Some(user))
                    }
                    Err(SetupError::Db(e)) => Err(e),
                    Err(SetupError::Create(CreateError::Db(e))) => Err(e),
                    Err(_) => Ok(None),
                })
            })
            .await?)
    }
}

/// The overview, for the web page and the CLI (which has one connection).
pub fn overview(c: &mut Conn, key_of: &dyn Fn(&str) -> String, now: UnixTime) -> Result<Vec<UserOverview>, DbError> {
    let mut out = Vec::new();
    let days = crate::db::settings::mfa_policy(c)?.remember_days;
    for user in users::all(c)? {
        let remembered_browsers = if days > 0 {
            browsers::count_remembered_since(c, user.id, user.mfa_epoch, now.0 - days * 86_400)?
        } else {
            0
        };
        let creds = credentials::confirmed(c, user.id)?;
        let left = if creds.is_empty() {
            0
        } else {
            recovery::remaining(c, user.id)?
        };
        let locks = locks_of(c, &key_of(&user.username), now)?;
        out.push(UserOverview {
            factors: creds.iter().map(|c| c.kind.clone()).collect(),
            mfa_since: creds.iter().filter_map(|c| c.confirmed_at).min(),
            recovery_codes_left: left,
            locks,
            remembered_browsers,
            user,
        });
    }
    Ok(out)
}

fn locks_of(c: &mut Conn, account: &str, now: UnixTime) -> Result<Locks, DbError> {
    let (counters, buckets) = throttles::for_account(c, account)?;
    let mut locks = Locks::default();
    for (scope, counter) in counters {
        if counter.locked_until <= now.0 {
            continue;
        }
        let until = Some(counter.locked_until);
        if scope == SECOND_FACTOR_ACCOUNT.scope {
            locks.second_factor_until = until;
        } else if scope == PASSWORD_ACCOUNT_ADDRESS.scope {
            locks.networks += 1;
            locks.networks_until = locks.networks_until.max(until);
        } else if scope == PASSWORD_KNOWN_BROWSER.scope || scope == PASSWORD_SESSION.scope {
            locks.browsers += 1;
            locks.browsers_until = locks.browsers_until.max(until);
        }
    }
    for (scope, state) in buckets {
        if scope == ACCOUNT_DAILY_BUDGET.scope
            && let Some(wait) = ACCOUNT_DAILY_BUDGET.retry_after(Some(state), now.0)
        {
            locks.protected_until = Some(now.0 + wait);
        }
    }
    Ok(locks)
}
