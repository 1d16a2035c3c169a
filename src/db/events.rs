//! The security log. It records who, what, when and from where — never a
//! password, code or secret.

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::core::types::{UnixTime, UserId};
use crate::schema::security_events;

/// Every kind of event: its name in the database and its words for people.
macro_rules! kinds {
    ($($variant:ident = $name:literal, $words:literal;)*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Kind {
            $($variant,)*
        }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$variant,)*];

            pub fn as_str(self) -> &'static str {
                match self {
                    $(Kind::$variant => $name,)*
                }
            }

            /// Words for people.
            pub fn describe(self) -> &'static str {
                match self {
                    $(Kind::$variant => $words,)*
                }
            }
        }
    };
}

kinds! {
    SetupCompleted = "setup_completed", "First administrator created";
    UserCreated = "user_created", "Account created";
    LoginSucceeded = "login_succeeded", "Signed in";
    LoginFailed = "login_failed", "Sign-in failed (wrong password)";
    LoginThrottled = "login_throttled", "Sign-in refused (too many attempts)";
    PasswordLocked = "password_locked", "Password attempts locked";
    SecondFactorFailed = "second_factor_failed", "Wrong code at the second step";
    SecondFactorLocked = "second_factor_locked", "Codes at the second step locked (too many wrong codes)";
    SignInAbandoned = "sign_in_abandoned", "Sign-in ended after too many wrong codes";
    SignInUnfinished = "sign_in_unfinished", "Password right, second step not completed in time";
    RecoveryCodeUsed = "recovery_code_used", "Recovery code used";
    MfaEnabled = "mfa_enabled", "Two-factor authentication turned on";
    MfaDisabled = "mfa_disabled", "Two-factor authentication turned off";
    MfaResetByAdmin = "mfa_reset", "Two-factor authentication reset by an administrator";
    EnrolmentAbandoned = "enrolment_abandoned", "Two-factor authentication setup ended after too many wrong codes";
    FactorAdded = "factor_added", "Sign-in method added";
    FactorRemoved = "factor_removed", "Sign-in method removed";
    KeyRenamed = "key_renamed", "Security key renamed";
    KeyRefused = "key_refused", "Security key refused";
    RecoveryCodesRegenerated = "recovery_codes_regenerated", "New recovery codes generated";
    PasswordChanged = "password_changed", "Password changed";
    SudoFailed = "sudo_failed", "Password confirmation failed";
    LoggedOut = "logged_out", "Signed out";
    SessionsRevoked = "sessions_revoked", "Other sessions signed out";
    BrowserForgotten = "browser_forgotten", "Known browser forgotten";
    BrowserRemembered = "browser_remembered", "Browser remembered (second step skipped there)";
    RememberedBrowserForgotten = "remembered_browser_forgotten", "Remembered browser forgotten";
    AdminCreatedUser = "admin_created_user", "Account created by an administrator";
    AdminUnlocked = "admin_unlocked_account", "Account unlocked by an administrator";
    AdminGranted = "admin_granted", "Administrator rights granted";
    AdminRevoked = "admin_revoked", "Administrator rights removed";
    PolicyChanged = "policy_changed", "Two-factor authentication policy changed";
    EmailChanged = "email_changed", "Email address changed";
    EmailVerified = "email_verified", "Email address verified";
    NotificationsChanged = "notifications_changed", "Email notification settings changed";
    NotMe = "not_me", "“This wasn’t me”: sessions ended, password change required";
    MailFailed = "mail_failed", "Email could not be delivered";
}

impl Kind {
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.iter().copied().find(|k| k.as_str() == s)
    }
}

/// One security event; `client` is `None` for actions from the CLI.
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: Kind,
    pub user_id: Option<UserId>,
    pub username: Option<String>,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

pub fn record(c: &mut Conn, e: &Event, now: UnixTime) -> Result<(), DbError> {
    record_id(c, e, now).map(|_| ())
}

/// `record`, returning the new row's id.
pub fn record_id(c: &mut Conn, e: &Event, now: UnixTime) -> Result<i64, DbError> {
    let ua = e.user_agent.as_deref().map(|s| truncate(s, 256));
    let q = diesel::insert_into(security_events::table).values((
        security_events::created_at.eq(now.0),
        security_events::user_id.eq(e.user_id.map(|u| u.0)),
        security_events::username.eq(e.username.as_deref().map(|s| truncate(s, 64))),
        security_events::kind.eq(e.kind.as_str()),
        security_events::client_address.eq(e.client_address.as_deref()),
        security_events::user_agent.eq(ua),
        security_events::detail.eq(e.detail.as_deref()),
    ));
    let id: i64 = crate::on_backend!(c, |c| q.returning(security_events::id).get_result(c))?;
    // Sign-in outcomes and lockouts are counted where they are logged.
    crate::metrics::security_event(e.kind.as_str());
    // The email it causes, in the same commit.
    super::outbox::for_event(c, e, now)?;
    Ok(id)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// One row of the security log, for display.
#[derive(Clone, Debug, Queryable)]
pub struct Row {
    pub id: i64,
    pub created_at: i64,
    pub username: Option<String>,
    pub kind: String,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

/// A page of events, newest first, filtered by user and kind; and the total.
pub fn page(
    c: &mut Conn,
    user_id: Option<UserId>,
    kind: Option<Kind>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<Row>, i64), DbError> {
    let filtered = || {
        let mut q = security_events::table.into_boxed();
        if let Some(u) = user_id {
            q = q.filter(security_events::user_id.eq(u.0));
        }
        if let Some(k) = kind {
            q = q.filter(security_events::kind.eq(k.as_str()));
        }
        q
    };
    let total: i64 = filtered().count().get_result(c)?;
    let rows = filtered()
        .order(security_events::id.desc())
        .offset(offset)
        .limit(limit)
        .select((
            security_events::id,
            security_events::created_at,
            security_events::username,
            security_events::kind,
            security_events::client_address,
            security_events::user_agent,
            security_events::detail,
        ))
        .load(c)?;
    Ok((rows, total))
}

/// (kind, user_id) of every event, oldest first — for tests and the admin view.
pub fn kinds_for_user(c: &mut Conn, user_id: UserId) -> Result<Vec<String>, DbError> {
    Ok(security_events::table
        .filter(security_events::user_id.eq(user_id.0))
        .order(security_events::id.asc())
        .select(security_events::kind)
        .load(c)?)
}

/// Whether `user` completed a sign-in after `since` from this address
/// and browser (the same person finishing a sign-in they had left).
pub fn signed_in_since_from(
    c: &mut Conn,
    user: UserId,
    since: UnixTime,
    address: Option<&str>,
    user_agent: Option<&str>,
) -> Result<bool, DbError> {
    let mut q = security_events::table
        .filter(security_events::user_id.eq(user.0))
        .filter(security_events::kind.eq(Kind::LoginSucceeded.as_str()))
        .filter(security_events::created_at.gt(since.0))
        .into_boxed();
    q = match address {
        Some(a) => q.filter(security_events::client_address.eq(a.to_string())),
        None => q.filter(security_events::client_address.is_null()),
    };
    q = match user_agent.map(|s| truncate(s, 256)) {
        Some(ua) => q.filter(security_events::user_agent.eq(ua.to_string())),
        None => q.filter(security_events::user_agent.is_null()),
    };
    let n: i64 = q.count().get_result(c)?;
    Ok(n > 0)
}

/// One successful sign-in, as "Previous sign-in" shows it.
#[derive(Clone, Debug, Queryable)]
pub struct SignInFacts {
    pub at: i64,
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

/// One successful sign-in of `user`, by its id.
pub fn sign_in_by_id(c: &mut Conn, user: UserId, id: i64) -> Result<Option<SignInFacts>, DbError> {
    Ok(security_events::table
        .find(id)
        .filter(security_events::user_id.eq(user.0))
        .filter(security_events::kind.eq(Kind::LoginSucceeded.as_str()))
        .select((
            security_events::created_at,
            security_events::client_address,
            security_events::user_agent,
        ))
        .first(c)
        .optional()?)
}
