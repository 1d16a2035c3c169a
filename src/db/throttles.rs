//! Failure counters for throttling (rules in `core::throttle`).

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::core::throttle::{Counter, Rule};
use crate::schema::throttles;

fn read(c: &mut Conn, rule: &Rule, key: &str) -> Result<Option<Counter>, DbError> {
    let row: Option<(i32, i64, i64)> = throttles::table
        .find((rule.scope, key))
        .select((throttles::failures, throttles::last_failure, throttles::locked_until))
        .first(c)
        .optional()?;
    Ok(row.map(|(f, l, u)| Counter {
        failures: u32::try_from(f).unwrap_or(0),
        last_failure: l,
        locked_until: u,
    }))
}

/// Seconds this key must still wait, if it is locked.
pub fn retry_after(c: &mut Conn, rule: &Rule, key: &str, now: i64) -> Result<Option<i64>, DbError> {
    Ok(read(c, rule, key)?.and_then(|counter| rule.retry_after(&counter, now)))
}

/// Count one failure, atomically with respect to every other writer.
pub fn record_failure(c: &mut Conn, rule: &Rule, key: &str, now: i64) -> Result<Counter, DbError> {
    c.immediate_transaction(|c| {
        let prev = read(c, rule, key)?;
        let next = rule.record_failure(prev, now);
        let values = (
            throttles::failures.eq(i32::try_from(next.failures).unwrap_or(i32::MAX)),
            throttles::last_failure.eq(next.last_failure),
            throttles::locked_until.eq(next.locked_until),
        );
        if prev.is_some() {
            diesel::update(throttles::table.find((rule.scope, key)))
                .set(values)
                .execute(c)?;
        } else {
            diesel::insert_into(throttles::table)
                .values((
                    throttles::scope.eq(rule.scope),
                    throttles::key.eq(key),
                    values.0,
                    values.1,
                    values.2,
                ))
                .execute(c)?;
        }
        Ok(next)
    })
}

pub fn reset(c: &mut Conn, rule: &Rule, key: &str) -> Result<(), DbError> {
    diesel::delete(throttles::table.find((rule.scope, key))).execute(c)?;
    Ok(())
}
