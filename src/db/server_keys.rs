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
