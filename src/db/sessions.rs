//! Server-side session rows, keyed by the SHA-256 of the session key.

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::core::limits::ENDED_SESSION_NOTICE_SECONDS;
use crate::core::types::{SessionEpoch, UnixTime, UserId};
use crate::schema::{sessions, users};

/// A session's row as written: whose it is, its state, and until when.
pub struct SessionRow<'a> {
    pub id_hash: &'a str,
    pub user: Option<UserId>,
    pub state: &'a str,
    pub expires_at: UnixTime,
}

pub fn load(c: &mut Conn, id_hash: &str, now: UnixTime) -> Result<Option<String>, DbError> {
    let q = sessions::table
        .find(id_hash)
        .filter(sessions::expires_at.gt(now.0))
        .select(sessions::state);
    // On the backend's own connection (`db`, "Hot paths"): every request
    // with a session cookie.
    Ok(crate::on_backend!(c, |c| q.get_result(c).optional())?)
}

pub fn insert(c: &mut Conn, row: &SessionRow<'_>, now: UnixTime) -> Result<(), DbError> {
    let q = diesel::insert_into(sessions::table).values((
        sessions::id_hash.eq(row.id_hash),
        sessions::user_id.eq(row.user.map(|u| u.0)),
        sessions::state.eq(row.state),
        sessions::created_at.eq(now.0),
        sessions::expires_at.eq(row.expires_at.0),
    ));
    // On the backend's own connection (`db`, "Hot paths"): every sign-in.
    crate::on_backend!(c, |c| q.execute(c))?;
    Ok(())
}

/// Move a session to a new key (`row.id_hash`): the old key stops working
/// in the same commit that makes the new one work. If the old row is
/// already gone (revoked, expired, or never stored), the new one is
/// inserted all the same. A delete and an insert, not an UPDATE of the
/// key: every sign-in does this, and diesel prepares an UPDATE again on
/// every call but caches these two.
pub fn rekey(c: &mut Conn, old_id_hash: &str, row: &SessionRow<'_>, now: UnixTime) -> Result<(), DbError> {
    c.transaction(|c| replace(c, old_id_hash, row, now))
}

/// `rekey` inside the caller's transaction (a sign-in's own commit, see
/// `auth::sign_in::SessionMove`).
pub fn replace(c: &mut Conn, old_id_hash: &str, row: &SessionRow<'_>, now: UnixTime) -> Result<(), DbError> {
    let q = diesel::delete(sessions::table.find(old_id_hash));
    crate::on_backend!(c, |c| q.execute(c))?;
    insert(c, row, now)
}

/// Update a live session. A row that is gone (revoked, expired) stays gone:
/// this never resurrects it. Nor does it sign an ended session (see
/// `end_all`: its row has no user) back in: a signed-in state is written
/// only over a row of the same user. (Signing in moves to a new key with
/// `rekey`.)
pub fn update(c: &mut Conn, row: &SessionRow<'_>, now: UnixTime) -> Result<(), DbError> {
    let live = sessions::table.find(row.id_hash).filter(sessions::expires_at.gt(now.0));
    let values = (
        sessions::user_id.eq(row.user.map(|u| u.0)),
        sessions::state.eq(row.state),
        sessions::expires_at.eq(row.expires_at.0),
    );
    match row.user {
        Some(u) => diesel::update(live.filter(sessions::user_id.eq(u.0)))
            .set(values)
            .execute(c)?,
        None => diesel::update(live).set(values).execute(c)?,
    };
    Ok(())
}

pub fn touch(c: &mut Conn, id_hash: &str, now: UnixTime, expires_at: UnixTime) -> Result<(), DbError> {
    let q = diesel::update(sessions::table.find(id_hash).filter(sessions::expires_at.gt(now.0)))
        .set(sessions::expires_at.eq(expires_at.0));
    // On the backend's own connection (`db`, "Hot paths"): page views.
    crate::on_backend!(c, |c| q.execute(c))?;
    Ok(())
}

pub fn delete(c: &mut Conn, id_hash: &str) -> Result<(), DbError> {
    diesel::delete(sessions::table.find(id_hash)).execute(c)?;
    Ok(())
}

/// End every session of a user for good: the rows go, and the user's
/// session epoch moves on, so a session that a concurrent request is
/// writing right now (a sign-in that checked the old password, a re-keyed
/// session) is refused on its next request. With `only_if_epoch`, only if
/// the epoch is still that value — the caller's own session is still
/// valid — else nothing happens and `None` comes back.
pub fn revoke_all(c: &mut Conn, user: UserId, only_if_epoch: Option<SessionEpoch>) -> Result<Option<Revoked>, DbError> {
    c.transaction(|c| {
        let bump = users::session_epoch.eq(users::session_epoch + 1);
        let n = match only_if_epoch {
            Some(e) => diesel::update(users::table.find(user.0).filter(users::session_epoch.eq(e.0)))
                .set(bump)
                .execute(c)?,
            None => diesel::update(users::table.find(user.0)).set(bump).execute(c)?,
        };
        if n == 0 {
            return Ok(None);
        }
        let ended = diesel::delete(sessions::table.filter(sessions::user_id.eq(user.0))).execute(c)?;
        let epoch: i64 = users::table.find(user.0).select(users::session_epoch).get_result(c)?;
        Ok(Some(Revoked {
            ended,
            epoch: SessionEpoch(epoch),
        }))
    })
}

/// Why an administrator ended every session of a user: the browsers of
/// those sessions are told on their next request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    /// The user's two-factor authentication was reset (it was on).
    MfaReset,
    /// The reset found two-factor authentication already off: only the
    /// sessions ended.
    ByAdministrator,
}

impl Ended {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MfaReset => "mfa_reset",
            Self::ByAdministrator => "administrator",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::MfaReset, Self::ByAdministrator]
            .into_iter()
            .find(|e| e.as_str() == s)
    }
}

/// The key of an ended session's state that says why (see `end_all`).
pub const ENDED_KEY: &str = "ended";

/// The state of an ended session: nobody signed in, only the reason, in
/// the session store's format (each value JSON-encoded).
fn ended_state(why: Ended) -> String {
    let mut state = std::collections::HashMap::new();
    state.insert(ENDED_KEY, serde_json::Value::String(why.as_str().into()).to_string());
    serde_json::to_string(&state).unwrap_or_default()
}

/// `revoke_all` for an administrator's reset: every session of the user
/// ends as surely (the epoch moves on; no row keeps the user), but each
/// live row stays for a while with no user and only the reason, so the
/// browser that holds its key — and nobody else — learns why it was signed
/// out. Only that key finds the row; a fresh browser sees nothing.
pub fn end_all(c: &mut Conn, user: UserId, why: Ended, now: UnixTime) -> Result<Option<Revoked>, DbError> {
    c.transaction(|c| {
        let n = diesel::update(users::table.find(user.0))
            .set(users::session_epoch.eq(users::session_epoch + 1))
            .execute(c)?;
        if n == 0 {
            return Ok(None);
        }
        let told = diesel::update(
            sessions::table
                .filter(sessions::user_id.eq(user.0))
                .filter(sessions::expires_at.gt(now.0)),
        )
        .set((
            sessions::user_id.eq(None::<i64>),
            sessions::state.eq(ended_state(why)),
            sessions::expires_at.eq(now.plus(ENDED_SESSION_NOTICE_SECONDS).0),
        ))
        .execute(c)?;
        let expired = diesel::delete(sessions::table.filter(sessions::user_id.eq(user.0))).execute(c)?;
        let epoch: i64 = users::table.find(user.0).select(users::session_epoch).get_result(c)?;
        Ok(Some(Revoked {
            ended: told + expired,
            epoch: SessionEpoch(epoch),
        }))
    })
}

/// What `revoke_all` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// How many session rows were deleted (the caller's own included).
    pub ended: usize,
    /// The user's new session epoch.
    pub epoch: SessionEpoch,
}

pub fn count_for_user(c: &mut Conn, user: UserId, now: UnixTime) -> Result<i64, DbError> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(user.0))
        .filter(sessions::expires_at.gt(now.0))
        .count()
        .get_result(c)?)
}

pub fn delete_expired(c: &mut Conn, now: UnixTime) -> Result<usize, DbError> {
    Ok(diesel::delete(sessions::table.filter(sessions::expires_at.le(now.0))).execute(c)?)
}

/// A user's live sessions: (state JSON, created, expires), newest first.
pub fn list_for_user(c: &mut Conn, user: UserId, now: UnixTime) -> Result<Vec<(String, i64, i64)>, DbError> {
    Ok(sessions::table
        .filter(sessions::user_id.eq(user.0))
        .filter(sessions::expires_at.gt(now.0))
        .order(sessions::expires_at.desc())
        .select((sessions::state, sessions::created_at, sessions::expires_at))
        .load(c)?)
}
