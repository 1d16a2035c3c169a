//! The security log. It records who, what, when and from where — never a
//! password, code or secret.

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::schema::security_events;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    SetupCompleted,
    UserCreated,
    LoginSucceeded,
    LoginFailed,
    LoginThrottled,
    SecondFactorFailed,
    SecondFactorLocked,
    RecoveryCodeUsed,
    MfaEnabled,
    MfaDisabled,
    MfaResetByAdmin,
    RecoveryCodesRegenerated,
    PasswordChanged,
    SudoFailed,
    LoggedOut,
    SessionsRevoked,
    AdminCreatedUser,
    AdminUnlocked,
    AdminGranted,
    AdminRevoked,
    PolicyChanged,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SetupCompleted => "setup_completed",
            Self::UserCreated => "user_created",
            Self::LoginSucceeded => "login_succeeded",
            Self::LoginFailed => "login_failed",
            Self::LoginThrottled => "login_throttled",
            Self::SecondFactorFailed => "second_factor_failed",
            Self::SecondFactorLocked => "second_factor_locked",
            Self::RecoveryCodeUsed => "recovery_code_used",
            Self::MfaEnabled => "mfa_enabled",
            Self::MfaDisabled => "mfa_disabled",
            Self::MfaResetByAdmin => "mfa_reset",
            Self::RecoveryCodesRegenerated => "recovery_codes_regenerated",
            Self::PasswordChanged => "password_changed",
            Self::SudoFailed => "sudo_failed",
            Self::LoggedOut => "logged_out",
            Self::SessionsRevoked => "sessions_revoked",
            Self::AdminCreatedUser => "admin_created_user",
            Self::AdminUnlocked => "admin_unlocked_account",
            Self::AdminGranted => "admin_granted",
            Self::AdminRevoked => "admin_revoked",
            Self::PolicyChanged => "policy_changed",
        }
    }

    pub const ALL: [Kind; 21] = [
        Self::SetupCompleted,
        Self::UserCreated,
        Self::LoginSucceeded,
        Self::LoginFailed,
        Self::LoginThrottled,
        Self::SecondFactorFailed,
        Self::SecondFactorLocked,
        Self::RecoveryCodeUsed,
        Self::MfaEnabled,
        Self::MfaDisabled,
        Self::MfaResetByAdmin,
        Self::RecoveryCodesRegenerated,
        Self::PasswordChanged,
        Self::SudoFailed,
        Self::LoggedOut,
        Self::SessionsRevoked,
        Self::AdminCreatedUser,
        Self::AdminUnlocked,
        Self::AdminGranted,
        Self::AdminRevoked,
        Self::PolicyChanged,
    ];

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Words for people.
    pub fn describe(self) -> &'static str {
        match self {
            Self::SetupCompleted => "First administrator created",
            Self::UserCreated => "Account created",
            Self::LoginSucceeded => "Signed in",
            Self::LoginFailed => "Sign-in failed (wrong password)",
            Self::LoginThrottled => "Sign-in refused (too many attempts)",
            Self::SecondFactorFailed => "Wrong two-factor code",
            Self::SecondFactorLocked => "Two-factor codes locked (too many wrong codes)",
            Self::RecoveryCodeUsed => "Recovery code used",
            Self::MfaEnabled => "Two-factor authentication turned on",
            Self::MfaDisabled => "Two-factor authentication turned off",
            Self::MfaResetByAdmin => "Two-factor authentication reset by an administrator",
            Self::RecoveryCodesRegenerated => "New recovery codes generated",
            Self::PasswordChanged => "Password changed",
            Self::SudoFailed => "Password confirmation failed",
            Self::LoggedOut => "Signed out",
            Self::SessionsRevoked => "Other sessions signed out",
            Self::AdminCreatedUser => "Account created by an administrator",
            Self::AdminUnlocked => "Account unlocked by an administrator",
            Self::AdminGranted => "Administrator rights granted",
            Self::AdminRevoked => "Administrator rights removed",
            Self::PolicyChanged => "Two-factor policy changed",
        }
    }
}

/// One security event; `client` is `None` for actions from the CLI.
#[derive(Clone, Debug)]
pub struct Event {
    pub kind: Kind,
    pub user_id: Option<i64>,
    pub username: Option<String>,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    pub detail: Option<String>,
}

pub fn record(c: &mut Conn, e: &Event, now: i64) -> Result<(), DbError> {
    let ua = e.user_agent.as_deref().map(|s| truncate(s, 256));
    diesel::insert_into(security_events::table)
        .values((
            security_events::created_at.eq(now),
            security_events::user_id.eq(e.user_id),
            security_events::username.eq(e.username.as_deref().map(|s| truncate(s, 64))),
            security_events::kind.eq(e.kind.as_str()),
            security_events::client_address.eq(e.client_address.as_deref()),
            security_events::user_agent.eq(ua),
            security_events::detail.eq(e.detail.as_deref()),
        ))
        .execute(c)?;
    Ok(())
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
    user_id: Option<i64>,
    kind: Option<Kind>,
    offset: i64,
    limit: i64,
) -> Result<(Vec<Row>, i64), DbError> {
    let filtered = || {
        let mut q = security_events::table.into_boxed();
        if let Some(u) = user_id {
            q = q.filter(security_events::user_id.eq(u));
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
pub fn kinds_for_user(c: &mut Conn, user_id: i64) -> Result<Vec<String>, DbError> {
    Ok(security_events::table
        .filter(security_events::user_id.eq(user_id))
        .order(security_events::id.asc())
        .select(security_events::kind)
        .load(c)?)
}
