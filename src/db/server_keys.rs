//! Which server keys have written to this database.

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::core::types::UnixTime;
use crate::schema::server_keys;

/// A key id whose key file does not match what this database has seen.
#[derive(Debug, PartialEq, Eq)]
pub struct Mismatch {
    pub key_id: String,
}

/// Record the fingerprints of keys not seen before, and report the first
/// key whose id is known but whose fingerprint differs.
pub fn check_and_record(
    c: &mut Conn,
    fingerprints: &[(String, String)],
    now: UnixTime,
) -> Result<Option<Mismatch>, DbError> {
    for (id, fp) in fingerprints {
        let row = (
            server_keys::key_id.eq(id),
            server_keys::fingerprint.eq(fp),
            server_keys::created_at.eq(now.0),
        );
        crate::on_backend!(c, |c| diesel::insert_into(server_keys::table)
            .values(row)
            .on_conflict(server_keys::key_id)
            .do_nothing()
            .execute(c))?;
        let stored: String = server_keys::table
            .find(id)
            .select(server_keys::fingerprint)
            .get_result(c)?;
        if &stored != fp {
            return Ok(Some(Mismatch { key_id: id.clone() }));
        }
    }
    Ok(None)
}

/// A server key as this database knows it.
#[derive(Clone, Debug, PartialEq, Eq, Queryable, Selectable)]
#[diesel(table_name = server_keys)]
pub struct KeyRecord {
    pub key_id: String,
    pub fingerprint: String,
    pub created_at: i64,
    /// When `latchkey key rotate` made it the current key.
    pub activated_at: Option<i64>,
    /// When `latchkey key rotate` retired it (its master key is gone).
    pub retired_at: Option<i64>,
}

/// Every key this database has seen, oldest first.
pub fn all(c: &mut Conn) -> Result<Vec<KeyRecord>, DbError> {
    Ok(server_keys::table
        .order((server_keys::created_at.asc(), server_keys::key_id.asc()))
        .select(KeyRecord::as_select())
        .load(c)?)
}

/// The current key: the one made current last, if a rotation ever did.
/// (Two made current in the same second — `key rotate --all` — are told
/// apart by which was created later: a rotation activates the newer key.)
pub fn current(records: &[KeyRecord]) -> Option<&KeyRecord> {
    records
        .iter()
        .filter(|r| r.activated_at.is_some() && r.retired_at.is_none())
        .max_by_key(|r| (r.activated_at, r.created_at, r.key_id.len(), r.key_id.clone()))
}

pub fn mark_activated(c: &mut Conn, key_id: &str, now: UnixTime) -> Result<(), DbError> {
    diesel::update(server_keys::table.find(key_id))
        .set(server_keys::activated_at.eq(now.0))
        .execute(c)?;
    Ok(())
}

pub fn mark_retired(c: &mut Conn, key_id: &str, now: UnixTime) -> Result<(), DbError> {
    diesel::update(
        server_keys::table
            .find(key_id)
            .filter(server_keys::retired_at.is_null()),
    )
    .set(server_keys::retired_at.eq(now.0))
    .execute(c)?;
    Ok(())
}
