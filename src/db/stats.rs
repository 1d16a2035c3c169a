//! Counts for the metrics endpoint, read when Prometheus scrapes.

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::core::types::UnixTime;
use crate::schema::{credentials, sessions};

/// Users with at least one confirmed second factor.
pub fn users_with_two_factor(c: &mut Conn) -> Result<i64, DbError> {
    Ok(credentials::table
        .filter(credentials::confirmed_at.is_not_null())
        .select(diesel::dsl::count(credentials::user_id).aggregate_distinct())
        .get_result(c)?)
}

/// Signed-in sessions that have not expired.
pub fn active_sessions(c: &mut Conn, now: UnixTime) -> Result<i64, DbError> {
    Ok(sessions::table
        .filter(sessions::user_id.is_not_null())
        .filter(sessions::expires_at.gt(now.0))
        .count()
        .get_result(c)?)
}
