//! Server-side session rows, keyed by the SHA-256 of the session key.

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::schema::sessions;

pub fn load(c: &mut Conn, id_hash: &str, now: i64) -> Result<Option<String>, DbError> {
    Ok(sessions::table
        .find(id_hash)
        .filter(sessions::expires_at.gt(now))
        .select(sessions::state)
        .get_result(c)
        .optional()?)
}

pub fn insert(
    c: &mut Conn,
    id_hash: &str,
    user_id: Option<i64>,
    state: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    diesel::insert_into(sessions::table)
        .values((
            sessions::id_hash.eq(id_hash),
            sessions::user_id.eq(user_id),
            sessions::state.eq(state),
            sessions::created_at.eq(now),
            sessions::expires_at.eq(expires_at),
        ))
        .execute(c)?;
    Ok(())
}

/// Move a session to a new key: the old key stops working in the same
/// statement that makes the new one work. If the old row is already gone
/// (revoked, expired, or never stored), the new one is inserted, as a delete
/// and an insert would have done.
#[allow(clippy::too_many_arguments)]
pub fn rekey(
    c: &mut Conn,
    old_id_hash: &str,
    new_id_hash: &str,
    user_id: Option<i64>,
    state: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    let moved = diesel::update(sessions::table.find(old_id_hash).filter(sessions::expires_at.gt(now)))
        .set((
            sessions::id_hash.eq(new_id_hash),
            sessions::user_id.eq(user_id),
            sessions::state.eq(state),
            sessions::created_at.eq(now),
            sessions::expires_at.eq(expires_at),
        ))
        .execute(c)?;
    if moved == 0 {
        insert(c, new_id_hash, user_id, state, now, expires_at)?;
    }
    Ok(())
}

/// Update a live session. A row that is gone (revoked, expired) stays gone:
/// this never resurrects it.
pub fn update(
    c: &mut Conn,
    id_hash: &str,
    user_id: Option<i64>,
    state: &str,
    now: i64,
    expires_at: i64,
) -> Result<(), DbError> {
    diesel::update(sessions::table.find(id_hash).filter(sessions::expires_at.gt(now)))
        .set((
            sessions::user_id.eq(user_id),
            sessions::state.eq(state),
            sessions::expires_at.eq(expires_at),
        ))
        .execute(c)?;
    Ok(())
}

pub fn touch(c: &mut Conn, id_hash: &str, now: i64, expires_at: i64) -> Result<(), DbError> {
    diesel::update(sessions::table.find(id_hash).filter(sessions::expires_at.gt(now)))
        .set(sessions::expires_at.eq(expires_at))
        .execute(c)?;
    Ok(())
}

pub fn delete(c: &mut Conn, id_hash: &str) -> Result<(), DbError> {
    diesel::delete(sessions::table.find(id_hash)).execute(c)?;
    Ok(())
}

/// End every session of a user. Returns how many there were.
pub fn delete_for_user(c: &mut Conn, user_id: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(sessions::table.filter(sessions::user_id.eq(user_id))).execute(c)?)
}

/// End every session of a user for good: the rows go, and the user's
/// session epoch moves on, so a session that a concurrent request is
/// writing right now (a sign-in that checked the old password, a re-keyed
/// session) is refused on its next request. With `only_if_epoch`, only if
/// the epoch is still that value — the caller's own session is still
/// valid — else nothing happens and `None` comes back.
/// Returns (sessions ended, the new epoch).
pub fn revoke_all(c: &mut Conn, user_id: i64, only_if_epoch: Option<i64>) -> Result<Option<(usize, i64)>, DbError> {
    use crate::schema::users;
    c.transaction(|c| {
        let bump = users::session_epoch.eq(users::session_epoch + 1);
        let n = match only_if_epoch {
            Some(e) => diesel::update(users::table.find(user_id).filter(users::session_epoch.eq(e)))
                .set(bump)
                .execute(c)?,
            None => diesel::update(users::table.find(user_id)).set(bump).execute(c)?,
        };
        if n == 0 {
            return Ok(None);
        }
        let ended = delete_for_user(c, user_id)?;
        let epoch: i64 = users::table.find(user_id).select(users::session_epoch).get_result(c)?;
        Ok(Some((ended, epoch)))
    })
}

pub fn count_for_user(c: &mut Conn, user_id: i64, now: i64) -> Result<i64, DbError> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::expires_at.gt(now))
        .count()
        .get_result(c)?)
}

pub fn delete_expired(c: &mut Conn, now: i64) -> Result<usize, DbError> {
    Ok(diesel::delete(sessions::table.filter(sessions::expires_at.le(now))).execute(c)?)
}

/// A user's live sessions: (state JSON, created, expires), newest first.
pub fn list_for_user(c: &mut Conn, user_id: i64, now: i64) -> Result<Vec<(String, i64, i64)>, DbError> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(user_id))
        .filter(sessions::expires_at.gt(now))
        .order(sessions::expires_at.desc())
        .select((sessions::state, sessions::created_at, sessions::expires_at))
        .load(c)?)
}
