//! What key rotation changes in the database (`crate::ops::rotation`): the
//! sealed TOTP secrets, sealed again under the new key, and the throttling
//! counters of known accounts, moved to the new key's account hash. Plus
//! the counts that tell whether a retired key is still needed.
//!
//! Every change is conditional on the value it replaces, so a server that
//! re-seals a secret at the same moment (on use) or a counter that moves
//! meanwhile is never overwritten with a stale value.

use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};

use super::{Conn, DbError};
use crate::core::types::{CredentialId, UnixTime, UserId};
use crate::schema::{credentials, known_browsers, rate_buckets, recovery_codes, throttles};

/// Where a sealed value lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SealedAt {
    /// `credentials.secret_sealed` (confirmed or pending).
    Credential(CredentialId),
    /// `users.totp_secret_sealed`: the previous release's column, kept for
    /// it (README, "Upgrading"); sealed again too, so no copy of a secret
    /// stays under the old key.
    LegacyUser,
    /// `mfa_enrolments.secret_sealed`, the same.
    LegacyEnrolment,
}

/// A sealed value and the user it is bound to.
#[derive(Clone, Debug)]
pub struct Sealed {
    pub at: SealedAt,
    pub user: UserId,
    pub value: String,
}

#[derive(QueryableByName)]
struct LegacyRow {
    #[diesel(sql_type = BigInt)]
    user_id: i64,
    #[diesel(sql_type = Text)]
    sealed: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// Whether `table` has `column` (the legacy columns go in a later release).
fn has_column(c: &mut Conn, table: &str, column: &str) -> Result<bool, DbError> {
    let q = match c {
        Conn::Sqlite(_) => diesel::sql_query("SELECT COUNT(*) AS n FROM pragma_table_info(?) WHERE name = ?"),
        Conn::Postgres(_) => diesel::sql_query(
            "SELECT COUNT(*) AS n FROM information_schema.columns \
             WHERE table_schema = current_schema() AND table_name = $1 AND column_name = $2",
        ),
    };
    let q = q.bind::<Text, _>(table).bind::<Text, _>(column);
    Ok(crate::on_backend!(c, |c| q.clone().get_result::<Count>(c))?.n > 0)
}

/// The legacy tables and columns that hold sealed secrets, if present.
const LEGACY: &[(&str, &str, &str, SealedAt)] = &[
    ("users", "totp_secret_sealed", "id", SealedAt::LegacyUser),
    ("mfa_enrolments", "secret_sealed", "user_id", SealedAt::LegacyEnrolment),
];

/// Every sealed value whose key id is not `active`.
pub fn sealed_not_under(c: &mut Conn, active: &str) -> Result<Vec<Sealed>, DbError> {
    let prefix = format!("v1.{active}.");
    let mut out: Vec<Sealed> = credentials::table
        .filter(credentials::secret_sealed.is_not_null())
        .select((
            credentials::id,
            credentials::user_id,
            credentials::secret_sealed.assume_not_null(),
        ))
        .load::<(i64, i64, String)>(c)?
        .into_iter()
        .filter(|(_, _, v)| !v.starts_with(&prefix))
        .map(|(id, user, value)| Sealed {
            at: SealedAt::Credential(CredentialId(id)),
            user: UserId(user),
            value,
        })
        .collect();
    for (table, column, user_column, at) in LEGACY {
        if !has_column(c, table, column)? {
            continue;
        }
        let q = diesel::sql_query(format!(
            "SELECT {user_column} AS user_id, {column} AS sealed FROM {table} WHERE {column} IS NOT NULL"
        ));
        let rows: Vec<LegacyRow> = crate::on_backend!(c, |c| q.clone().load(c))?;
        out.extend(
            rows.into_iter()
                .filter(|r| !r.sealed.starts_with(&prefix))
                .map(|r| Sealed {
                    at: *at,
                    user: UserId(r.user_id),
                    value: r.sealed,
                }),
        );
    }
    Ok(out)
}

/// Replace `old` with `new` where it still is. `false` if it changed meanwhile.
pub fn reseal(c: &mut Conn, s: &Sealed, new: &str) -> Result<bool, DbError> {
    let n = match s.at {
        SealedAt::Credential(id) => diesel::update(
            credentials::table
                .find(id.0)
                .filter(credentials::secret_sealed.eq(&s.value)),
        )
        .set(credentials::secret_sealed.eq(new))
        .execute(c)?,
        SealedAt::LegacyUser | SealedAt::LegacyEnrolment => {
            let (table, column, user_column, _) = LEGACY
                .iter()
                .find(|l| l.3 == s.at)
                .expect("every legacy place is listed");
            let sql = match c {
                Conn::Sqlite(_) => format!("UPDATE {table} SET {column} = ? WHERE {user_column} = ? AND {column} = ?"),
                Conn::Postgres(_) => {
                    format!("UPDATE {table} SET {column} = $1 WHERE {user_column} = $2 AND {column} = $3")
                }
            };
            let q = diesel::sql_query(sql)
                .bind::<Text, _>(new)
                .bind::<BigInt, _>(s.user.0)
                .bind::<Text, _>(&s.value);
            crate::on_backend!(c, |c| q.clone().execute(c))?
        }
    };
    Ok(n == 1)
}

type ThrottleRow = (String, String, i32, i64, i64, Option<String>);
type BucketRow = (String, String, Option<String>, i32, i64);

/// Move every counter and bucket of the account hashed as `old` to `new`
/// (the same account under the new key): its `account` tag, and its key
/// where the key starts with the account hash. A counter that already
/// exists under the new key (made by an instance on the new key while the
/// rotation rolled out) is kept, and the old one dropped. Returns how many
/// rows moved.
pub fn rekey_account(c: &mut Conn, old: &str, new: &str) -> Result<usize, DbError> {
    let moved_key = |key: &str| match key.strip_prefix(old) {
        Some(rest) => format!("{new}{rest}"),
        None => key.to_string(),
    };
    let mut moved = 0;
    let counters: Vec<ThrottleRow> = throttles::table
        .filter(throttles::account.eq(old))
        .select((
            throttles::scope,
            throttles::key,
            throttles::failures,
            throttles::last_failure,
            throttles::locked_until,
            throttles::account,
        ))
        .load(c)?;
    for (scope, key, failures, last_failure, locked_until, _) in counters {
        diesel::delete(throttles::table.find((&scope, &key))).execute(c)?;
        let row = (
            throttles::scope.eq(&scope),
            throttles::key.eq(moved_key(&key)),
            throttles::failures.eq(failures),
            throttles::last_failure.eq(last_failure),
            throttles::locked_until.eq(locked_until),
            throttles::account.eq(new),
        );
        moved += crate::on_backend!(c, |c| diesel::insert_into(throttles::table)
            .values(row)
            .on_conflict((throttles::scope, throttles::key))
            .do_nothing()
            .execute(c))?;
    }
    let buckets: Vec<BucketRow> = rate_buckets::table
        .filter(rate_buckets::account.eq(old))
        .select((
            rate_buckets::scope,
            rate_buckets::key,
            rate_buckets::account,
            rate_buckets::tokens,
            rate_buckets::refilled_at,
        ))
        .load(c)?;
    for (scope, key, _, tokens, refilled_at) in buckets {
        diesel::delete(rate_buckets::table.find((&scope, &key))).execute(c)?;
        let row = (
            rate_buckets::scope.eq(&scope),
            rate_buckets::key.eq(moved_key(&key)),
            rate_buckets::account.eq(new),
            rate_buckets::tokens.eq(tokens),
            rate_buckets::refilled_at.eq(refilled_at),
        );
        moved += crate::on_backend!(c, |c| diesel::insert_into(rate_buckets::table)
            .values(row)
            .on_conflict((rate_buckets::scope, rate_buckets::key))
            .do_nothing()
            .execute(c))?;
    }
    Ok(moved)
}

/// Unused recovery codes hashed under the key `key_id`.
pub fn unused_recovery_codes_under(c: &mut Conn, key_id: &str) -> Result<i64, DbError> {
    Ok(recovery_codes::table
        .filter(recovery_codes::used_at.is_null())
        .filter(recovery_codes::code_hash.like(format!("{key_id}:%")))
        .count()
        .get_result(c)?)
}

/// Live known browsers not seen since `since`: their token may still be
/// hashed under a key retired after it (a sign-in moves it to the active key).
pub fn known_browsers_unseen_since(c: &mut Conn, since: i64, now: UnixTime) -> Result<i64, DbError> {
    Ok(known_browsers::table
        .filter(known_browsers::expires_at.gt(now.0))
        .filter(known_browsers::last_used_at.lt(since))
        .count()
        .get_result(c)?)
}
