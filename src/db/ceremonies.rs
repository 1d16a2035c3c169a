//! The server's half of a WebAuthn ceremony, kept between its two
//! requests: in the database, so a ceremony begun on one instance finishes
//! on another; single use (taken by one DELETE … RETURNING); five minutes;
//! bound to what started it.

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::core::types::{UnixTime, UserId};
use crate::schema::webauthn_ceremonies;

pub struct NewCeremony<'a> {
    pub id_hash: &'a str,
    pub purpose: &'a str,
    pub owner: &'a str,
    pub user: Option<UserId>,
    pub state: &'a str,
    pub name: Option<&'a str>,
    pub expires_at: UnixTime,
}

pub fn insert(c: &mut Conn, n: NewCeremony<'_>, now: UnixTime) -> Result<(), DbError> {
    diesel::insert_into(webauthn_ceremonies::table)
        .values((
            webauthn_ceremonies::id_hash.eq(n.id_hash),
            webauthn_ceremonies::purpose.eq(n.purpose),
            webauthn_ceremonies::owner.eq(n.owner),
            webauthn_ceremonies::user_id.eq(n.user.map(|u| u.0)),
            webauthn_ceremonies::state.eq(n.state),
            webauthn_ceremonies::name.eq(n.name),
            webauthn_ceremonies::created_at.eq(now.0),
            webauthn_ceremonies::expires_at.eq(n.expires_at.0),
        ))
        .execute(c)?;
    Ok(())
}

/// A ceremony's state, taken: (user, state JSON, name).
pub type Taken = (Option<i64>, String, Option<String>);

/// Take the ceremony `id_hash` if it is for `purpose`, owned by `owner` and
/// alive. Taking deletes it: a second finish with the same id finds nothing.
pub fn take(c: &mut Conn, id_hash: &str, purpose: &str, owner: &str, now: UnixTime) -> Result<Option<Taken>, DbError> {
    let row: Option<Taken> = crate::on_backend!(c, |c| diesel::delete(
        webauthn_ceremonies::table
            .find(id_hash)
            .filter(webauthn_ceremonies::purpose.eq(purpose))
            .filter(webauthn_ceremonies::owner.eq(owner))
            .filter(webauthn_ceremonies::expires_at.gt(now.0)),
    )
    .returning((
        webauthn_ceremonies::user_id,
        webauthn_ceremonies::state,
        webauthn_ceremonies::name,
    ))
    .get_result(c)
    .optional())?;
    Ok(row)
}

pub fn delete_expired(c: &mut Conn, now: UnixTime) -> Result<usize, DbError> {
    Ok(diesel::delete(webauthn_ceremonies::table.filter(webauthn_ceremonies::expires_at.le(now.0))).execute(c)?)
}
