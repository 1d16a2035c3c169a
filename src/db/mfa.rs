//! Second-factor state: pending enrolments, the confirmed secret, the last
//! accepted time step, and recovery codes.
//!
//! Every check-and-change here is one conditional statement, or a
//! transaction whose first statement is a conditional write (which takes the
//! lock), so concurrent requests — on one instance or many — cannot both win.

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::schema::{mfa_enrolments, recovery_codes, users};

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = mfa_enrolments)]
pub struct Enrolment {
    pub user_id: i64,
    pub secret_sealed: String,
    pub created_at: i64,
}

/// Begin (or restart) an enrolment: any earlier pending secret is replaced,
/// in one upsert (two Enables at once leave one of the two secrets).
pub fn start_enrolment(c: &mut Conn, user_id: i64, secret_sealed: &str, now: i64) -> Result<(), DbError> {
    let row = (
        mfa_enrolments::user_id.eq(user_id),
        mfa_enrolments::secret_sealed.eq(secret_sealed),
        mfa_enrolments::created_at.eq(now),
    );
    let update = (
        mfa_enrolments::secret_sealed.eq(secret_sealed),
        mfa_enrolments::created_at.eq(now),
    );
    crate::on_backend!(c, |c| diesel::insert_into(mfa_enrolments::table)
        .values(row)
        .on_conflict(mfa_enrolments::user_id)
        .do_update()
        .set(update)
        .execute(c))?;
    Ok(())
}

/// The pending enrolment, if one was started after `not_before`.
pub fn pending_enrolment(c: &mut Conn, user_id: i64, not_before: i64) -> Result<Option<Enrolment>, DbError> {
    Ok(mfa_enrolments::table
        .find(user_id)
        .filter(mfa_enrolments::created_at.ge(not_before))
        .select(Enrolment::as_select())
        .get_result(c)
        .optional()?)
}

#[derive(Debug, PartialEq, Eq)]
pub enum ConfirmOutcome {
    Enabled,
    /// The enrolment expired, was replaced, or was confirmed by a concurrent request.
    NoLongerPending,
    AlreadyEnabled,
}

/// Turn 2FA on with the enrolment's secret, record `step` as used, and store
/// the recovery codes — all or nothing.
pub fn confirm_enrolment(
    c: &mut Conn,
    user_id: i64,
    secret_sealed: &str,
    not_before: i64,
    step: i64,
    code_hashes: &[String],
    now: i64,
) -> Result<ConfirmOutcome, DbError> {
    c.transaction(|c| {
        let taken = diesel::delete(
            mfa_enrolments::table
                .find(user_id)
                .filter(mfa_enrolments::secret_sealed.eq(secret_sealed))
                .filter(mfa_enrolments::created_at.ge(not_before)),
        )
        .execute(c)?;
        if taken != 1 {
            return Ok(ConfirmOutcome::NoLongerPending);
        }
        let enabled = diesel::update(users::table.find(user_id).filter(users::totp_secret_sealed.is_null()))
            .set((
                users::totp_secret_sealed.eq(secret_sealed),
                users::totp_enabled_at.eq(now),
                users::totp_last_step.eq(step),
                users::recovery_codes_generation.eq(users::recovery_codes_generation + 1),
            ))
            .execute(c)?;
        if enabled != 1 {
            return Ok(ConfirmOutcome::AlreadyEnabled);
        }
        insert_codes(c, user_id, code_hashes, now)?;
        Ok(ConfirmOutcome::Enabled)
    })
}

fn insert_codes(c: &mut Conn, user_id: i64, code_hashes: &[String], now: i64) -> Result<(), DbError> {
    diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(c)?;
    let rows: Vec<_> = code_hashes
        .iter()
        .map(|h| {
            (
                recovery_codes::user_id.eq(user_id),
                recovery_codes::code_hash.eq(h),
                recovery_codes::created_at.eq(now),
            )
        })
        .collect();
    // A multi-row INSERT is written per backend by diesel.
    crate::on_backend!(c, |c| diesel::insert_into(recovery_codes::table)
        .values(&rows)
        .execute(c))?;
    Ok(())
}

/// Accept time step `step` for this user if, and only if, it is later than
/// every step accepted before. One conditional UPDATE: of any number of
/// concurrent requests with the same code, exactly one gets `true`.
pub fn accept_step(c: &mut Conn, user_id: i64, step: i64) -> Result<bool, DbError> {
    let n = diesel::update(
        users::table
            .find(user_id)
            .filter(users::totp_secret_sealed.is_not_null())
            .filter(users::totp_last_step.is_null().or(users::totp_last_step.lt(step))),
    )
    .set(users::totp_last_step.eq(step))
    .execute(c)?;
    Ok(n == 1)
}

/// Mark one unused recovery code of this user as used. `candidate_hashes`
/// are the code's keyed hashes under each server key. One conditional
/// UPDATE: a code is consumed once, whatever the concurrency.
pub fn consume_recovery_code(
    c: &mut Conn,
    user_id: i64,
    candidate_hashes: &[String],
    now: i64,
) -> Result<bool, DbError> {
    let n = diesel::update(
        recovery_codes::table
            .filter(recovery_codes::user_id.eq(user_id))
            .filter(recovery_codes::used_at.is_null())
            .filter(recovery_codes::code_hash.eq_any(candidate_hashes)),
    )
    .set(recovery_codes::used_at.eq(now))
    .execute(c)?;
    Ok(n >= 1)
}

pub fn remaining_recovery_codes(c: &mut Conn, user_id: i64) -> Result<i64, DbError> {
    Ok(recovery_codes::table
        .filter(recovery_codes::user_id.eq(user_id))
        .filter(recovery_codes::used_at.is_null())
        .count()
        .get_result(c)?)
}

/// Replace the user's recovery codes; `false` when 2FA is (no longer) on.
pub fn replace_recovery_codes(
    c: &mut Conn,
    user_id: i64,
    only_generation: Option<i64>,
    code_hashes: &[String],
    now: i64,
) -> Result<bool, DbError> {
    c.transaction(|c| {
        // A conditional write first: it checks that 2FA is on (and, when
        // given, that the codes are still the generation the user was
        // looking at, so a double click cannot show a set that a slower
        // twin then replaces), moves the generation on, and locks the user's
        // row (PostgreSQL) or the database (SQLite) until the codes are in.
        let target = users::table
            .find(user_id)
            .filter(users::totp_secret_sealed.is_not_null());
        let bump = users::recovery_codes_generation.eq(users::recovery_codes_generation + 1);
        let on = match only_generation {
            Some(g) => diesel::update(target.filter(users::recovery_codes_generation.eq(g)))
                .set(bump)
                .execute(c)?,
            None => diesel::update(target).set(bump).execute(c)?,
        };
        if on != 1 {
            return Ok(false);
        }
        insert_codes(c, user_id, code_hashes, now)?;
        Ok(true)
    })
}

/// Turn 2FA off: the secret, the step, every recovery code and any pending
/// enrolment go. With `only_secret`, only if 2FA is still on with that very
/// secret — the one whose code the caller checked — so a request authorised
/// by an old secret cannot turn off a newer enrolment. `false` when nothing
/// was turned off.
pub fn disable(c: &mut Conn, user_id: i64, only_secret: Option<&str>) -> Result<bool, DbError> {
    c.transaction(|c| {
        let clear = (
            users::totp_secret_sealed.eq(None::<String>),
            users::totp_enabled_at.eq(None::<i64>),
            users::totp_last_step.eq(None::<i64>),
        );
        let target = users::table
            .find(user_id)
            .filter(users::totp_secret_sealed.is_not_null());
        let n = match only_secret {
            Some(s) => diesel::update(target.filter(users::totp_secret_sealed.eq(s)))
                .set(clear)
                .execute(c)?,
            None => diesel::update(target).set(clear).execute(c)?,
        };
        if n == 0 && only_secret.is_some() {
            return Ok(false);
        }
        diesel::delete(recovery_codes::table.filter(recovery_codes::user_id.eq(user_id))).execute(c)?;
        diesel::delete(mfa_enrolments::table.find(user_id)).execute(c)?;
        Ok(n == 1)
    })
}

/// Re-seal a secret made under an older server key.
pub fn reseal_secret(c: &mut Conn, user_id: i64, old: &str, new: &str) -> Result<(), DbError> {
    diesel::update(users::table.find(user_id).filter(users::totp_secret_sealed.eq(old)))
        .set(users::totp_secret_sealed.eq(new))
        .execute(c)?;
    Ok(())
}

/// Take the lock that serialises every second-factor attempt of one user:
/// the user's row (PostgreSQL row lock; SQLite's write lock). `false` when
/// 2FA is off, or is no longer the enrolment of `enabled_at` (turned off and
/// on again since the caller read the secret it checked the code against).
pub fn lock_for_attempt(c: &mut Conn, user_id: i64, enabled_at: i64) -> Result<bool, DbError> {
    let n = diesel::update(
        users::table
            .find(user_id)
            .filter(users::totp_secret_sealed.is_not_null())
            .filter(users::totp_enabled_at.eq(enabled_at)),
    )
    .set(users::totp_last_step.eq(users::totp_last_step))
    .execute(c)?;
    Ok(n == 1)
}
