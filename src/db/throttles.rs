//! Failure counters for throttling (rules in `core::throttle`).

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::core::throttle::{Counter, Rule};
use crate::schema::throttles;

pub fn read(c: &mut Conn, rule: &Rule, key: &str) -> Result<Option<Counter>, DbError> {
    let row: Option<(i32, i64, i64)> = throttles::table
        .find((rule.scope, key))
        .select((throttles::failures, throttles::last_failure, throttles::locked_until))
        .get_result(c)
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

/// Make sure the counter row exists, then lock it with a no-op update (on
/// SQLite the first write takes the database's write lock), and read it.
fn lock_row(c: &mut Conn, rule: &Rule, key: &str) -> Result<Option<Counter>, DbError> {
    let empty = (
        throttles::scope.eq(rule.scope),
        throttles::key.eq(key),
        throttles::failures.eq(0),
        throttles::last_failure.eq(0_i64),
        throttles::locked_until.eq(0_i64),
    );
    crate::on_backend!(c, |c| diesel::insert_into(throttles::table)
        .values(empty)
        .on_conflict((throttles::scope, throttles::key))
        .do_nothing()
        .execute(c))?;
    diesel::update(throttles::table.find((rule.scope, key)))
        .set(throttles::failures.eq(throttles::failures))
        .execute(c)?;
    Ok(read(c, rule, key)?.filter(|p| p.failures > 0 || p.locked_until > 0))
}

fn write(c: &mut Conn, rule: &Rule, key: &str, counter: &Counter) -> Result<(), DbError> {
    diesel::update(throttles::table.find((rule.scope, key)))
        .set((
            throttles::failures.eq(i32::try_from(counter.failures).unwrap_or(i32::MAX)),
            throttles::last_failure.eq(counter.last_failure),
            throttles::locked_until.eq(counter.locked_until),
        ))
        .execute(c)?;
    Ok(())
}

/// Count one failure, atomically with respect to every other writer, on
/// this instance or another.
pub fn record_failure(c: &mut Conn, rule: &Rule, key: &str, now: i64) -> Result<Counter, DbError> {
    c.transaction(|c| {
        let next = rule.record_failure(lock_row(c, rule, key)?, now);
        write(c, rule, key, &next)?;
        Ok(next)
    })
}

/// Begin a guess (a password or a code) under every `(rule, key)`: if any of
/// them is locked, nothing is counted and the longest wait comes back;
/// otherwise the attempt is counted as a failure *now*, before the guess is
/// checked, and the new counters come back. Checking first and counting
/// after would let a burst of simultaneous guesses all pass the check before
/// any was counted. A guess that turns out right calls `reset`. The rows are
/// locked in the order given, the same every time.
pub fn begin_attempt(c: &mut Conn, rules: &[(Rule, String)], now: i64) -> Result<Result<Vec<Counter>, i64>, DbError> {
    c.transaction(|c| {
        let mut current = Vec::with_capacity(rules.len());
        for (rule, key) in rules {
            current.push(lock_row(c, rule, key)?);
        }
        let wait = rules
            .iter()
            .zip(&current)
            .filter_map(|((rule, _), counter)| counter.and_then(|k| rule.retry_after(&k, now)))
            .max();
        if let Some(w) = wait {
            return Ok(Err(w));
        }
        let mut next = Vec::with_capacity(rules.len());
        for ((rule, key), counter) in rules.iter().zip(current) {
            let n = rule.record_failure(counter, now);
            write(c, rule, key, &n)?;
            next.push(n);
        }
        Ok(Ok(next))
    })
}

pub fn reset(c: &mut Conn, rule: &Rule, key: &str) -> Result<(), DbError> {
    diesel::delete(throttles::table.find((rule.scope, key))).execute(c)?;
    Ok(())
}

/// The latest lock on an account (password or second factor), if any.
pub fn account_locked_until(c: &mut Conn, user_id: i64, username: &str, now: i64) -> Result<Option<i64>, DbError> {
    use crate::core::throttle::{PASSWORD_ACCOUNT, SECOND_FACTOR_ACCOUNT};
    let id_key = user_id.to_string();
    let until: Option<i64> = throttles::table
        .filter(
            (throttles::scope
                .eq(SECOND_FACTOR_ACCOUNT.scope)
                .and(throttles::key.eq(&id_key)))
            .or(throttles::scope
                .eq(PASSWORD_ACCOUNT.scope)
                .and(throttles::key.eq(username)))
            .or(throttles::scope
                .eq(crate::core::throttle::PASSWORD_ACCOUNT_ADDRESS.scope)
                .and(throttles::key.like(format!("{}|%", like_escape(username))).escape('\\'))),
        )
        .select(diesel::dsl::max(throttles::locked_until))
        .get_result(c)?;
    Ok(until.filter(|u| *u > now))
}

/// Forget every failure counted against an account (an administrator's unlock).
pub fn unlock_account(c: &mut Conn, user_id: i64, username: &str) -> Result<usize, DbError> {
    use crate::core::throttle::{PASSWORD_ACCOUNT, PASSWORD_ACCOUNT_ADDRESS, SECOND_FACTOR_ACCOUNT};
    let id_key = user_id.to_string();
    Ok(diesel::delete(
        throttles::table.filter(
            (throttles::scope
                .eq(SECOND_FACTOR_ACCOUNT.scope)
                .and(throttles::key.eq(&id_key)))
            .or(throttles::scope
                .eq(PASSWORD_ACCOUNT.scope)
                .and(throttles::key.eq(username)))
            .or(throttles::scope
                .eq(PASSWORD_ACCOUNT_ADDRESS.scope)
                .and(throttles::key.like(format!("{}|%", like_escape(username))).escape('\\'))),
        ),
    )
    .execute(c)?)
}

/// Escape LIKE's wildcards (`_` is legal in usernames).
fn like_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_")
}

/// Store a counter, creating its row if needed. Call it inside a
/// transaction that holds a lock covering the key.
pub fn store(c: &mut Conn, rule: &Rule, key: &str, counter: &Counter) -> Result<(), DbError> {
    lock_row(c, rule, key)?;
    write(c, rule, key, counter)
}
