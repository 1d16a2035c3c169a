//! Recovery codes: stored only as keyed hashes, each usable once.

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::core::types::{UnixTime, UserId};
use crate::schema::recovery_codes;

/// Replace the user's codes with these hashes. Call it inside a
/// transaction that holds the user's lock.
pub fn replace(c: &mut Conn, user: UserId, code_hashes: &[String], now: UnixTime) -> Result<(), DbError> {
    delete_all(c, user)?;
    let rows: Vec<_> = code_hashes
        .iter()
        .map(|h| {
            (
                recovery_codes::user_id.eq(user.0),
                recovery_codes::code_hash.eq(h),
                recovery_codes::created_at.eq(now.0),
            )
        })
        .collect();
    // A multi-row INSERT is written per backend by diesel.
    crate::on_backend!(c, |c| diesel::insert_into(recovery_codes::table)
        .values(&rows)
        .execute(c))?;
    Ok(())
}

pub fn delete_all(c: &mut Conn, user: UserId) -> Result<usize, DbError> {
    Ok(diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user.0))).execute(c)?)
}

/// Mark one unused code of this user as used. `candidate_hashes` are the
/// code's keyed hashes under each server key. One conditional UPDATE: a
/// code is consumed once, whatever the concurrency.
pub fn consume(c: &mut Conn, user: UserId, candidate_hashes: &[String], now: UnixTime) -> Result<bool, DbError> {
    let n = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user.0))
            .filter(recovery_codes::used_at.is_null())
            .filter(recovery_codes::code_hash.eq_any(candidate_hashes)),
    )
    .set(recovery_codes::used_at.eq(now.0))
    .execute(c)?;
    Ok(n >= 1)
}

pub fn remaining(c: &mut Conn, user: UserId) -> Result<i64, DbError> {
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user.0))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(c)?)
}
