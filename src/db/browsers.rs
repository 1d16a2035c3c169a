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

pub fn insert(c: &mut Conn, b: NewBrowser<'_>, now: UnixTime) -> Result<(), DbError> {
    diesel::insert_into(known_browsers::table)
        .values((
            known_browsers::user_id.eq(b.user.0),
            known_browsers::token_hash.eq(b.token_hash),
            known_browsers::created_at.eq(now.0),
            known_browsers::last_used_at.eq(now.0),
            known_browsers::expires_at.eq(b.expires_at.0),
            known_browsers::user_agent.eq(b.user_agent),
            known_browsers::client_address.eq(b.client_address),
        ))
        .execute(c)?;
    Ok(())
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
