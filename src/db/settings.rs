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
    // Every row in one statement (the table holds these five names and no
    // others), on the backend's own connection (`db`, "Hot paths"): the
    // policy is read on every signed-in page.
    let q = settings::table.select((settings::name, settings::value));
    let rows: Vec<(String, String)> = crate::on_backend!(c, |c| q.load(c))?;
    let get = |name: &str| rows.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str());
    let num = |v: Option<&str>| v.and_then(|s| s.parse::<i64>().ok());
    Ok(MfaPolicy {
        required: get(MFA_REQUIRED) == Some("1"),
        since: num(get(MFA_REQUIRED_SINCE)).unwrap_or(0),
        grace_days: num(get(MFA_GRACE_DAYS)).unwrap_or(0),
        keys_only: get(MFA_KEYS_ONLY) == Some("1"),
        remember_days: num(get(REMEMBER_DAYS)).unwrap_or(crate::core::policy::DEFAULT_REMEMBER_DAYS),
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
