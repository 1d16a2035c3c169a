//! Throttling state (the rules are in `core::throttle` and `core::limits`):
//! failure counters (`throttles`) and token buckets (`rate_buckets`), each
//! row tagged with the account it protects, if any, so that an
//! administrator's Unlock finds them all.
//!
//! `lock_*` creates the row if needed and locks it in one statement (an
//! upsert that changes nothing), so the caller's transaction holds it until
//! it commits: a PostgreSQL row lock, SQLite's write lock. Callers lock rows
//! in one fixed order (`auth::password`), so two transactions never wait
//! for each other in a circle.

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::core::throttle::{Bucket, BucketState, Counter, Rule};
use crate::schema::{rate_buckets, throttles};

fn counter_of((f, l, u): (i32, i64, i64)) -> Counter {
    Counter {
        failures: u32::try_from(f).unwrap_or(0),
        last_failure: l,
        locked_until: u,
    }
}

/// Lock a counter's row (creating it) and read it. `None` for a counter
/// with nothing on it.
pub fn lock_counter(c: &mut Conn, rule: &Rule, key: &str, account: Option<&str>) -> Result<Option<Counter>, DbError> {
    let empty = (
        throttles::scope.eq(rule.scope),
        throttles::key.eq(key),
        throttles::failures.eq(0),
        throttles::last_failure.eq(0_i64),
        throttles::locked_until.eq(0_i64),
        throttles::account.eq(account),
    );
    let row: (i32, i64, i64) = crate::on_backend!(c, |c| diesel::insert_into(throttles::table)
        .values(empty)
        .on_conflict((throttles::scope, throttles::key))
        .do_update()
        .set(throttles::failures.eq(throttles::failures))
        .returning((throttles::failures, throttles::last_failure, throttles::locked_until))
        .get_result(c))?;
    Ok(Some(counter_of(row)).filter(|k| k.failures > 0 || k.locked_until > 0))
}

/// Read a counter and, on PostgreSQL, lock its row if it exists
/// (`SELECT … FOR UPDATE`; on SQLite the caller's write transaction is the
/// lock). For a counter that only the holder of another lock changes (the
/// second-factor counter, under the user's row lock): the common case,
/// no counter at all, then writes nothing, and `store` creates the row
/// when there is a failure to count. An Unlock that deletes the row waits
/// for this transaction, as with `lock_counter`.
pub fn read_locked(c: &mut Conn, rule: &Rule, key: &str) -> Result<Option<Counter>, DbError> {
    let q = throttles::table.find((rule.scope, key)).select((
        throttles::failures,
        throttles::last_failure,
        throttles::locked_until,
    ));
    let row: Option<(i32, i64, i64)> = match c {
        Conn::Sqlite(c) => q.get_result(c).optional()?,
        Conn::Postgres(c) => q.for_update().get_result(c).optional()?,
    };
    Ok(row.map(counter_of).filter(|k| k.failures > 0 || k.locked_until > 0))
}

/// Store a counter read by `read_locked`, creating its row if needed.
pub fn store(c: &mut Conn, rule: &Rule, key: &str, account: Option<&str>, counter: &Counter) -> Result<(), DbError> {
    let failures = i32::try_from(counter.failures).unwrap_or(i32::MAX);
    crate::on_backend!(c, |c| diesel::insert_into(throttles::table)
        .values((
            throttles::scope.eq(rule.scope),
            throttles::key.eq(key),
            throttles::failures.eq(failures),
            throttles::last_failure.eq(counter.last_failure),
            throttles::locked_until.eq(counter.locked_until),
            throttles::account.eq(account),
        ))
        .on_conflict((throttles::scope, throttles::key))
        .do_update()
        .set((
            throttles::failures.eq(failures),
            throttles::last_failure.eq(counter.last_failure),
            throttles::locked_until.eq(counter.locked_until),
        ))
        .execute(c))?;
    Ok(())
}

/// Store a counter whose row the caller has locked.
pub fn store_counter(c: &mut Conn, rule: &Rule, key: &str, counter: &Counter) -> Result<(), DbError> {
    diesel::update(throttles::table.find((rule.scope, key)))
        .set((
            throttles::failures.eq(i32::try_from(counter.failures).unwrap_or(i32::MAX)),
            throttles::last_failure.eq(counter.last_failure),
            throttles::locked_until.eq(counter.locked_until),
        ))
        .execute(c)?;
    Ok(())
}

/// Count one failure (locking the row). Returns the new counter.
pub fn record_failure(
    c: &mut Conn,
    rule: &Rule,
    key: &str,
    account: Option<&str>,
    now: i64,
) -> Result<Counter, DbError> {
    let next = rule.record_failure(lock_counter(c, rule, key, account)?, now);
    store_counter(c, rule, key, &next)?;
    Ok(next)
}

pub fn reset(c: &mut Conn, rule: &Rule, key: &str) -> Result<(), DbError> {
    diesel::delete(throttles::table.find((rule.scope, key))).execute(c)?;
    Ok(())
}

/// Lock a bucket's row (creating it full) and read it.
pub fn lock_bucket(
    c: &mut Conn,
    bucket: &Bucket,
    key: &str,
    account: Option<&str>,
    now: i64,
) -> Result<BucketState, DbError> {
    let full = (
        rate_buckets::scope.eq(bucket.scope),
        rate_buckets::key.eq(key),
        rate_buckets::account.eq(account),
        rate_buckets::tokens.eq(i32::try_from(bucket.capacity).unwrap_or(i32::MAX)),
        rate_buckets::refilled_at.eq(now),
    );
    let (tokens, refilled_at): (i32, i64) = crate::on_backend!(c, |c| diesel::insert_into(rate_buckets::table)
        .values(full)
        .on_conflict((rate_buckets::scope, rate_buckets::key))
        .do_update()
        .set(rate_buckets::tokens.eq(rate_buckets::tokens))
        .returning((rate_buckets::tokens, rate_buckets::refilled_at))
        .get_result(c))?;
    Ok(BucketState {
        tokens: u32::try_from(tokens).unwrap_or(0),
        refilled_at,
    })
}

/// A bucket's state, without locking it (`None`: never used, so full).
pub fn read_bucket(c: &mut Conn, bucket: &Bucket, key: &str) -> Result<Option<BucketState>, DbError> {
    let row: Option<(i32, i64)> = rate_buckets::table
        .find((bucket.scope, key))
        .select((rate_buckets::tokens, rate_buckets::refilled_at))
        .get_result(c)
        .optional()?;
    Ok(row.map(|(t, r)| BucketState {
        tokens: u32::try_from(t).unwrap_or(0),
        refilled_at: r,
    }))
}

/// Store a bucket whose row the caller has locked.
pub fn store_bucket(c: &mut Conn, bucket: &Bucket, key: &str, state: &BucketState) -> Result<(), DbError> {
    diesel::update(rate_buckets::table.find((bucket.scope, key)))
        .set((
            rate_buckets::tokens.eq(i32::try_from(state.tokens).unwrap_or(i32::MAX)),
            rate_buckets::refilled_at.eq(state.refilled_at),
        ))
        .execute(c)?;
    Ok(())
}

/// Every counter and bucket kept for `account`: (scope, counter) and
/// (scope, bucket state), for the administrator's view of its locks.
pub type AccountThrottles = (Vec<(String, Counter)>, Vec<(String, BucketState)>);

pub fn for_account(c: &mut Conn, account: &str) -> Result<AccountThrottles, DbError> {
    let counters: Vec<(String, i32, i64, i64)> = throttles::table
        .filter(throttles::account.eq(account))
        .select((
            throttles::scope,
            throttles::failures,
            throttles::last_failure,
            throttles::locked_until,
        ))
        .load(c)?;
    let buckets: Vec<(String, i32, i64)> = rate_buckets::table
        .filter(rate_buckets::account.eq(account))
        .select((rate_buckets::scope, rate_buckets::tokens, rate_buckets::refilled_at))
        .load(c)?;
    Ok((
        counters
            .into_iter()
            .map(|(s, f, l, u)| (s, counter_of((f, l, u))))
            .collect(),
        buckets
            .into_iter()
            .map(|(s, t, r)| {
                (
                    s,
                    BucketState {
                        tokens: u32::try_from(t).unwrap_or(0),
                        refilled_at: r,
                    },
                )
            })
            .collect(),
    ))
}

/// Forget every counter and bucket kept for `account` (an administrator's
/// Unlock). Returns how many there were.
pub fn clear_account(c: &mut Conn, account: &str) -> Result<usize, DbError> {
    let n = diesel::delete(throttles::table.filter(throttles::account.eq(account))).execute(c)?;
    let m = diesel::delete(rate_buckets::table.filter(rate_buckets::account.eq(account))).execute(c)?;
    Ok(n + m)
}

/// Tidy up: counters whose failures are all forgotten and whose locks have
/// passed, and buckets that have refilled. Rows that matter are never
/// removed.
pub fn delete_stale(c: &mut Conn, now: i64, older_than: i64) -> Result<usize, DbError> {
    let n = diesel::delete(
        throttles::table
            .filter(throttles::last_failure.lt(now - older_than))
            .filter(throttles::locked_until.lt(now)),
    )
    .execute(c)?;
    let m = diesel::delete(rate_buckets::table.filter(rate_buckets::refilled_at.lt(now - older_than))).execute(c)?;
    Ok(n + m)
}
