//! Sign-ins waiting for their second step. The session holds a random id,
//! this table its SHA-256 and the count of wrong codes — counted here, in
//! one conditional statement, so wrong codes sent at once are each counted
//! (and a code for an account is checked under that user's row lock, so
//! the count read there is current).

use diesel::prelude::*;

use super::users::User;
use super::{Conn, DbError};
use crate::core::types::{UnixTime, UserId};
use crate::schema::{pending_sign_ins, users};

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = pending_sign_ins)]
pub struct PendingSignIn {
    pub id_hash: String,
    /// `None`: a protected sign-in whose password was not right (or whose
    /// account has no second factor): it can never complete.
    pub user_id: Option<i64>,
    #[diesel(deserialize_as = i64)]
    pub created_at: UnixTime,
    #[diesel(deserialize_as = i64)]
    pub expires_at: UnixTime,
    pub attempts: i32,
    pub protected: bool,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
}

impl PendingSignIn {
    pub fn user(&self) -> Option<UserId> {
        self.user_id.map(UserId)
    }
}

pub struct NewPending<'a> {
    pub id_hash: &'a str,
    pub user: Option<UserId>,
    pub expires_at: UnixTime,
    pub protected: bool,
    pub client_address: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

pub fn insert(c: &mut Conn, p: NewPending<'_>, now: UnixTime) -> Result<(), DbError> {
    diesel::insert_into(pending_sign_ins::table)
        .values((
            pending_sign_ins::id_hash.eq(p.id_hash),
            pending_sign_ins::user_id.eq(p.user.map(|u| u.0)),
            pending_sign_ins::created_at.eq(now.0),
            pending_sign_ins::expires_at.eq(p.expires_at.0),
            pending_sign_ins::protected.eq(p.protected),
            pending_sign_ins::client_address.eq(p.client_address),
            pending_sign_ins::user_agent.eq(p.user_agent),
        ))
        .execute(c)?;
    Ok(())
}

/// The pending sign-in, while it is alive.
pub fn find(c: &mut Conn, id_hash: &str, now: UnixTime) -> Result<Option<PendingSignIn>, DbError> {
    let q = pending_sign_ins::table
        .find(id_hash)
        .filter(pending_sign_ins::expires_at.gt(now.0));
    // On the backend's own connection (`db`, "Hot paths"): every second step.
    Ok(crate::on_backend!(c, |c| q
        .select(PendingSignIn::as_select())
        .get_result(c)
        .optional())?)
}

/// A live pending sign-in and its user (`None`: none, or gone), in one
/// statement: the second step's read before its transaction.
pub fn find_with_user(
    c: &mut Conn,
    id_hash: &str,
    now: UnixTime,
) -> Result<Option<(PendingSignIn, Option<User>)>, DbError> {
    let q = pending_sign_ins::table
        .left_join(users::table.on(users::id.nullable().eq(pending_sign_ins::user_id)))
        .filter(pending_sign_ins::id_hash.eq(id_hash))
        .filter(pending_sign_ins::expires_at.gt(now.0));
    // On the backend's own connection (`db`, "Hot paths").
    Ok(crate::on_backend!(c, |c| q
        .select((PendingSignIn::as_select(), Option::<User>::as_select()))
        .get_result(c)
        .optional())?)
}

/// Take one attempt: `true` if the sign-in is alive and had attempts left.
/// One conditional UPDATE, so five attempts at once use five of them and a
/// sixth finds none.
pub fn take_attempt(c: &mut Conn, id_hash: &str, now: UnixTime, max: i32) -> Result<bool, DbError> {
    let n = diesel::update(
        pending_sign_ins::table
            .find(id_hash)
            .filter(pending_sign_ins::expires_at.gt(now.0))
            .filter(pending_sign_ins::attempts.lt(max)),
    )
    .set(pending_sign_ins::attempts.eq(pending_sign_ins::attempts + 1))
    .execute(c)?;
    Ok(n == 1)
}

/// Finish a pending sign-in whose code was accepted, under the user's lock:
/// `false` if it died meanwhile (expired, cancelled, used up or finished by
/// another request), and then nothing is deleted.
pub fn finish(c: &mut Conn, id_hash: &str, now: UnixTime, max: i32) -> Result<bool, DbError> {
    let q = diesel::delete(
        pending_sign_ins::table
            .find(id_hash)
            .filter(pending_sign_ins::expires_at.gt(now.0))
            .filter(pending_sign_ins::attempts.lt(max)),
    );
    // On the backend's own connection (`db`, "Hot paths"): every accepted code.
    Ok(crate::on_backend!(c, |c| q.execute(c))? == 1)
}

/// Finish (or abandon) a pending sign-in. `false` if it was already gone —
/// a concurrent request finished it first.
pub fn delete(c: &mut Conn, id_hash: &str) -> Result<bool, DbError> {
    Ok(diesel::delete(pending_sign_ins::table.find(id_hash)).execute(c)? == 1)
}

pub fn delete_for_user(c: &mut Conn, user: UserId) -> Result<usize, DbError> {
    Ok(diesel::delete(pending_sign_ins::table.filter(pending_sign_ins::user_id.eq(user.0))).execute(c)?)
}

/// Delete expired sign-ins that never had a right password (no user).
/// Those with a user are for `expired_with_user`: each gets its alert first.
pub fn delete_expired(c: &mut Conn, now: UnixTime) -> Result<usize, DbError> {
    Ok(diesel::delete(
        pending_sign_ins::table
            .filter(pending_sign_ins::expires_at.le(now.0))
            .filter(pending_sign_ins::user_id.is_null()),
    )
    .execute(c)?)
}

/// Expired sign-ins whose password was right (oldest first, at most `limit`).
pub fn expired_with_user(c: &mut Conn, now: UnixTime, limit: i64) -> Result<Vec<PendingSignIn>, DbError> {
    Ok(pending_sign_ins::table
        .filter(pending_sign_ins::expires_at.le(now.0))
        .filter(pending_sign_ins::user_id.is_not_null())
        .order(pending_sign_ins::expires_at.asc())
        .limit(limit)
        .select(PendingSignIn::as_select())
        .load(c)?)
}

/// End a pending sign-in now (it can no longer complete); the sweep and the
/// mail worker deal with it as with any expired one.
pub fn expire(c: &mut Conn, id_hash: &str, now: UnixTime) -> Result<bool, DbError> {
    Ok(diesel::update(
        pending_sign_ins::table
            .find(id_hash)
            .filter(pending_sign_ins::expires_at.gt(now.0)),
    )
    .set(pending_sign_ins::expires_at.eq(now.0))
    .execute(c)?
        == 1)
}
