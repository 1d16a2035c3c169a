//! Site-wide settings, one row per name.

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::core::policy::MfaPolicy;
use crate::core::types::UnixTime;
use crate::schema::settings;

const MFA_REQUIRED: &str = "mfa_required";
const MFA_REQUIRED_SINCE: &str = "mfa_required_since";
const MFA_GRACE_DAYS: &str = "mfa_grace_days";
const MFA_KEYS_ONLY: &str = "mfa_keys_only";
const REMEMBER_DAYS: &str = "remember_days";

fn get(c: &mut Conn, name: &str) -> Result<Option<String>, DbError> {
    Ok(settings::table
        .find(name)
        .select(settings::value)
        .get_result(c)
        .optional()?)
}

fn set(c: &mut Conn, name: &str, value: &str, now: UnixTime) -> Result<(), DbError> {
    let row = (
        settings::name.eq(name),
        settings::value.eq(value),
        settings::updated_at.eq(now.0),
    );
    let update = (settings::value.eq(value), settings::updated_at.eq(now.0));
    crate::on_backend!(c, |c| diesel::insert_into(settings::table)
        .values(row)
        .on_conflict(settings::name)
        .do_update()
        .set(update)
        .execute(c))?;
    Ok(())
}

pub fn mfa_policy(c: &mut Conn) -> Result<MfaPolicy, DbError> {
    let num = |v: Option<String>| v.and_then(|s| s.parse::<i64>().ok()).unwrap_or(0);
    Ok(MfaPolicy {
        required: get(c, MFA_REQUIRED)?.as_deref() == Some("1"),
        since: num(get(c, MFA_REQUIRED_SINCE)?),
        grace_days: num(get(c, MFA_GRACE_DAYS)?),
        keys_only: get(c, MFA_KEYS_ONLY)?.as_deref() == Some("1"),
        remember_days: get(c, REMEMBER_DAYS)?
            .and_then(|s| s.parse::<i64>().ok())
            .unwrap_or(crate::core::policy::DEFAULT_REMEMBER_DAYS),
    })
}

pub fn set_mfa_policy(c: &mut Conn, policy: &MfaPolicy, now: UnixTime) -> Result<(), DbError> {
    c.transaction(|c| {
        set(c, MFA_REQUIRED, if policy.required { "1" } else { "0" }, now)?;
        set(c, MFA_REQUIRED_SINCE, &policy.since.to_string(), now)?;
        set(c, MFA_GRACE_DAYS, &policy.grace_days.to_string(), now)?;
        set(c, MFA_KEYS_ONLY, if policy.keys_only { "1" } else { "0" }, now)?;
        set(c, REMEMBER_DAYS, &policy.remember_days.to_string(), now)
    })
}
