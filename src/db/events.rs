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

/// (kind, user_id) of every event, oldest first — for tests and the admin view.
pub fn kinds_for_user(c: &mut Conn, user_id: i64) -> Result<Vec<String>, DbError> {
    Ok(security_events::table
        .filter(security_events::user_id.eq(user_id))
        .order(security_events::id.asc())
        .select(security_events::kind)
        .load(c)?)
}
