//! Known browsers: a random token in a cookie, stored here only as a keyed
//! hash, one row per (browser, account).

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::core::types::{BrowserId, UnixTime, UserId};
use crate::schema::known_browsers;

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = known_browsers)]
pub struct KnownBrowser {
    #[diesel(deserialize_as = i64)]
    pub id: BrowserId,
    #[diesel(deserialize_as = i64)]
    pub user_id: UserId,
    #[diesel(deserialize_as = i64)]
    pub created_at: UnixTime,
    #[diesel(deserialize_as = i64)]
    pub last_used_at: UnixTime,
    #[diesel(deserialize_as = i64)]
    pub expires_at: UnixTime,
    pub user_agent: Option<String>,
    pub client_address: Option<String>,
    pub remember_hash: Option<String>,
    pub remembered_at: Option<i64>,
    pub remembered_epoch: Option<i64>,
}

/// The live browser with one of these token hashes (the token's keyed hash
/// under each server key: one made before a key rotation is still found).
pub fn find(c: &mut Conn, token_hashes: &[String], now: UnixTime) -> Result<Option<KnownBrowser>, DbError> {
    Ok(known_browsers::table
        .filter(known_browsers::token_hash.eq_any(token_hashes))
        .filter(known_browsers::expires_at.gt(now.0))
        .select(KnownBrowser::as_select())
        .get_result(c)
        .optional()?)
}

pub struct NewBrowser<'a> {
    pub user: UserId,
    pub token_hash: &'a str,
    pub expires_at: UnixTime,
    pub user_agent: Option<&'a str>,
    pub client_address: Option<&'a str>,
}

/// Insert a known browser; returns its id.
pub fn insert(c: &mut Conn, b: NewBrowser<'_>, now: UnixTime) -> Result<BrowserId, DbError> {
    let q = diesel::insert_into(known_browsers::table).values((
        known_browsers::user_id.eq(b.user.0),
        known_browsers::token_hash.eq(b.token_hash),
        known_browsers::created_at.eq(now.0),
        known_browsers::last_used_at.eq(now.0),
        known_browsers::expires_at.eq(b.expires_at.0),
        known_browsers::user_agent.eq(b.user_agent),
        known_browsers::client_address.eq(b.client_address),
    ));
    let id: i64 = crate::on_backend!(c, |c| q.returning(known_browsers::id).get_result(c))?;
    Ok(BrowserId(id))
}

/// A sign-in from this browser: its lifetime starts again, and its token
/// is stored under the active key's hash (`token_hash`) from now on.
pub fn touch(
    c: &mut Conn,
    id: BrowserId,
    token_hash: &str,
    now: UnixTime,
    expires_at: UnixTime,
) -> Result<(), DbError> {
    diesel::update(known_browsers::table.find(id.0))
        .set((
            known_browsers::token_hash.eq(token_hash),
            known_browsers::last_used_at.eq(now.0),
            known_browsers::expires_at.eq(expires_at.0),
        ))
        .execute(c)?;
    Ok(())
}

pub fn list(c: &mut Conn, user: UserId, now: UnixTime) -> Result<Vec<KnownBrowser>, DbError> {
    Ok(known_browsers::table
        .filter(known_browsers::user_id.eq(user.0))
        .filter(known_browsers::expires_at.gt(now.0))
        .order(known_browsers::last_used_at.desc())
        .select(KnownBrowser::as_select())
        .load(c)?)
}

/// Forget one of the user's browsers. `false` if it was not theirs (or gone).
pub fn forget(c: &mut Conn, user: UserId, id: BrowserId) -> Result<bool, DbError> {
    Ok(diesel::delete(
        known_browsers::table
            .find(id.0)
            .filter(known_browsers::user_id.eq(user.0)),
    )
    .execute(c)?
        == 1)
}

pub fn forget_all(c: &mut Conn, user: UserId) -> Result<usize, DbError> {
    Ok(diesel::delete(known_browsers::table.filter(known_browsers::user_id.eq(user.0))).execute(c)?)
}

pub fn delete_expired(c: &mut Conn, now: UnixTime) -> Result<usize, DbError> {
    Ok(diesel::delete(known_browsers::table.filter(known_browsers::expires_at.le(now.0))).execute(c)?)
}

/// Remember this browser for `user` from `now`, under 2FA epoch `epoch`,
/// with a new remember token (its keyed hash).
pub fn remember(c: &mut Conn, id: BrowserId, remember_hash: &str, epoch: i64, now: UnixTime) -> Result<(), DbError> {
    diesel::update(known_browsers::table.find(id.0))
        .set((
            known_browsers::remember_hash.eq(remember_hash),
            known_browsers::remembered_at.eq(now.0),
            known_browsers::remembered_epoch.eq(epoch),
        ))
        .execute(c)?;
    Ok(())
}

/// The browser whose remember token hashes to one of `remember_hashes`
/// (its keyed hash under each server key).
pub fn find_remembered(c: &mut Conn, remember_hashes: &[String]) -> Result<Option<KnownBrowser>, DbError> {
    Ok(known_browsers::table
        .filter(known_browsers::remember_hash.eq_any(remember_hashes))
        .select(KnownBrowser::as_select())
        .get_result(c)
        .optional()?)
}

/// Stop remembering one of the user's browsers (it stays known).
pub fn forget_remembered(c: &mut Conn, user: UserId, id: BrowserId) -> Result<bool, DbError> {
    Ok(diesel::update(
        known_browsers::table
            .find(id.0)
            .filter(known_browsers::user_id.eq(user.0))
            .filter(known_browsers::remember_hash.is_not_null()),
    )
    .set((
        known_browsers::remember_hash.eq(None::<String>),
        known_browsers::remembered_at.eq(None::<i64>),
        known_browsers::remembered_epoch.eq(None::<i64>),
    ))
    .execute(c)?
        == 1)
}

/// Stop remembering every browser of the user. Returns how many were.
pub fn forget_all_remembered(c: &mut Conn, user: UserId) -> Result<usize, DbError> {
    Ok(diesel::update(
        known_browsers::table
            .filter(known_browsers::user_id.eq(user.0))
            .filter(known_browsers::remember_hash.is_not_null()),
    )
    .set((
        known_browsers::remember_hash.eq(None::<String>),
        known_browsers::remembered_at.eq(None::<i64>),
        known_browsers::remembered_epoch.eq(None::<i64>),
    ))
    .execute(c)?)
}

/// How many of the user's browsers were remembered after `since` under 2FA
/// epoch `epoch` (those that skip the second factor now).
pub fn count_remembered_since(c: &mut Conn, user: UserId, epoch: i64, since: i64) -> Result<usize, DbError> {
    let n: i64 = known_browsers::table
        .filter(known_browsers::user_id.eq(user.0))
        .filter(known_browsers::remember_hash.is_not_null())
        .filter(known_browsers::remembered_epoch.eq(epoch))
        .filter(known_browsers::remembered_at.gt(since))
        .count()
        .get_result(c)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

/// Store a remember token under the active key's hash (if still `old`).
pub fn rehash_remembered(c: &mut Conn, id: BrowserId, old: &str, new: &str) -> Result<(), DbError> {
    diesel::update(
        known_browsers::table
            .find(id.0)
            .filter(known_browsers::remember_hash.eq(old)),
    )
    .set(known_browsers::remember_hash.eq(new))
    .execute(c)?;
    Ok(())
}

/// Whether browser `id` is still remembered for `user` under 2FA epoch
/// `epoch`, remembered after `since`, and alive.
pub fn still_remembered(
    c: &mut Conn,
    id: BrowserId,
    user: UserId,
    epoch: i64,
    since: i64,
    now: UnixTime,
) -> Result<bool, DbError> {
    let n: i64 = known_browsers::table
        .find(id.0)
        .filter(known_browsers::user_id.eq(user.0))
        .filter(known_browsers::remember_hash.is_not_null())
        .filter(known_browsers::remembered_epoch.eq(epoch))
        .filter(known_browsers::remembered_at.gt(since))
        .filter(known_browsers::expires_at.gt(now.0))
        .count()
        .get_result(c)?;
    Ok(n == 1)
}
