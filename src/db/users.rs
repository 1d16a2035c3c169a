//! Accounts.

use diesel::prelude::*;

use super::fixed::{Fixed, FixedSql};
use super::{Conn, DbError};
use crate::core::types::{SessionEpoch, UnixTime, UserId};
use crate::schema::users;

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    #[diesel(deserialize_as = i64)]
    pub id: UserId,
    pub username: String,
    pub password_hash: String,
    pub is_admin: bool,
    #[diesel(deserialize_as = i64)]
    pub created_at: UnixTime,
    pub last_login_at: Option<i64>,
    pub must_change_password: bool,
    /// Sessions signed in under another value are no longer valid.
    #[diesel(deserialize_as = i64)]
    pub session_epoch: SessionEpoch,
    pub recovery_codes_generation: i64,
    /// The random WebAuthn user handle, once the user has registered a key.
    pub webauthn_handle: Option<String>,
    /// Moves on whenever 2FA turns on or off: a browser remembered under
    /// another value no longer skips the second factor.
    pub mfa_epoch: i64,
    /// The address for security notifications, verified or not.
    pub email: Option<String>,
    /// When `email` was verified (`None`: it gets only its verification).
    pub email_verified_at: Option<i64>,
    /// "Email me about sign-ins from new browsers".
    pub notify_new_browser: bool,
    /// The security-log id of the latest sign-in (`None`: never signed in).
    pub last_sign_in_event: Option<i64>,
}

impl User {
    /// The address notifications go to: a verified one.
    pub fn verified_email(&self) -> Option<&str> {
        self.email.as_deref().filter(|_| self.email_verified_at.is_some())
    }
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUser<'a> {
    username: &'a str,
    password_hash: &'a str,
    is_admin: bool,
    created_at: i64,
    must_change_password: bool,
}

/// A new account: who, with which password hash, and how.
#[derive(Clone, Copy, Debug)]
pub struct NewAccount<'a> {
    pub username: &'a str,
    pub password_hash: &'a str,
    pub is_admin: bool,
    /// A temporary password, to be changed at first sign-in.
    pub must_change_password: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("a user named `{0}` already exists")]
    Exists(String),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for CreateError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Create an account in one INSERT (there is never an account with a
/// temporary password that is not marked as such).
pub fn create(c: &mut Conn, account: NewAccount<'_>, now: UnixTime) -> Result<User, CreateError> {
    let row = NewUser {
        username: account.username,
        password_hash: account.password_hash,
        is_admin: account.is_admin,
        created_at: now.0,
        must_change_password: account.must_change_password,
    };
    match diesel::insert_into(users::table).values(&row).execute(c) {
        Ok(_) => find_by_name(c, account.username)?
            .ok_or_else(|| CreateError::Db(DbError::Query(diesel::result::Error::NotFound))),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Err(CreateError::Exists(account.username.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn find(c: &mut Conn, id: UserId) -> Result<Option<User>, DbError> {
    let q = users::table.find(id.0);
    // On the backend's own connection (`db`, "Hot paths"): every signed-in
    // page. (`as_select` names the backend, so it goes in each arm.)
    Ok(crate::on_backend!(c, |c| q
        .select(User::as_select())
        .get_result(c)
        .optional())?)
}

pub fn find_by_name(c: &mut Conn, name: &str) -> Result<Option<User>, DbError> {
    let q = users::table.filter(users::username.eq(name));
    // On the backend's own connection: every password step.
    Ok(crate::on_backend!(c, |c| q
        .select(User::as_select())
        .get_result(c)
        .optional())?)
}

pub fn count(c: &mut Conn) -> Result<i64, DbError> {
    Ok(users::table.count().get_result(c)?)
}

/// Every password hash, for the costs they were made with.
pub fn password_hashes(c: &mut Conn) -> Result<Vec<String>, DbError> {
    Ok(users::table.select(users::password_hash).load(c)?)
}

/// Set a password the user chose (which also ends any "must change" state).
pub fn set_password(c: &mut Conn, id: UserId, hash: &str) -> Result<(), DbError> {
    diesel::update(users::table.find(id.0))
        .set((users::password_hash.eq(hash), users::must_change_password.eq(false)))
        .execute(c)?;
    Ok(())
}

/// Store a new hash of the *same* password (a changed bcrypt cost), unless
/// the password changed meanwhile.
pub fn rehash_password(c: &mut Conn, id: UserId, old_hash: &str, new_hash: &str) -> Result<(), DbError> {
    diesel::update(users::table.find(id.0).filter(users::password_hash.eq(old_hash)))
        .set(users::password_hash.eq(new_hash))
        .execute(c)?;
    Ok(())
}

#[derive(Debug, PartialEq, Eq)]
pub enum AdminChange {
    Done,
    /// Refused: the last administrator cannot be demoted.
    LastAdmin,
    NoSuchUser,
}

/// Grant or remove admin rights, never removing the last administrator.
pub fn set_admin(c: &mut Conn, id: UserId, admin: bool) -> Result<AdminChange, DbError> {
    c.transaction(|c| {
        // Lock every administrator row first (PostgreSQL; SQLite takes its
        // write lock here), so two admins demoting each other at once are
        // serialised and the second sees the first one's change.
        diesel::update(users::table.filter(users::is_admin.eq(true)))
            .set(users::is_admin.eq(users::is_admin))
            .execute(c)?;
        if find(c, id)?.is_none() {
            return Ok(AdminChange::NoSuchUser);
        }
        if !admin && admin_count_besides(c, id)? == 0 {
            return Ok(AdminChange::LastAdmin);
        }
        diesel::update(users::table.find(id.0))
            .set(users::is_admin.eq(admin))
            .execute(c)?;
        Ok(AdminChange::Done)
    })
}

/// Administrators other than `id`.
pub fn admin_count_besides(c: &mut Conn, id: UserId) -> Result<i64, DbError> {
    Ok(users::table
        .filter(users::is_admin.eq(true))
        .filter(users::id.ne(id.0))
        .count()
        .get_result(c)?)
}

pub fn all(c: &mut Conn) -> Result<Vec<User>, DbError> {
    Ok(users::table
        .order(users::username.asc())
        .select(User::as_select())
        .load(c)?)
}

/// A sign-in, and its security-log row (the next one's "previous sign-in").
pub fn record_login(c: &mut Conn, id: UserId, event: i64, now: UnixTime) -> Result<(), DbError> {
    // Kept prepared (`fixed`): this runs for every sign-in.
    struct RecordLogin;
    impl FixedSql for RecordLogin {
        const PARTS: &'static [&'static str] = &[
            "UPDATE users SET last_login_at = ",
            ", last_sign_in_event = ",
            " WHERE id = ",
            "",
        ];
    }
    Fixed::<RecordLogin, 3>::new([now.0, event, id.0]).run(c)?;
    Ok(())
}

/// The user's lock, like `lock`, and their row as it is under it (`None`
/// when the user is gone); a sign-in completes with this row, not with one
/// read before the lock. On PostgreSQL `SELECT … FOR NO KEY UPDATE`, the
/// lock `lock`'s UPDATE takes: it excludes the other lockers but not the
/// foreign-key checks of rows that name the user (a sign-in that writes
/// the user's new session row while another request of the same browser
/// holds that row would otherwise wait on each other). On SQLite a
/// plain SELECT: it is for the server's writer, whose every call runs in a
/// transaction that began `IMMEDIATE` (`db::Lane`), holding the write lock
/// already. Unlike `lock`'s UPDATE, neither is prepared again on every call
/// (diesel caches no UPDATE statement), and this is the busiest path.
pub fn lock_get(c: &mut Conn, id: UserId) -> Result<Option<User>, DbError> {
    let row = users::table.find(id.0);
    Ok(match c {
        Conn::Sqlite(c) => row.select(User::as_select()).get_result(c).optional()?,
        Conn::Postgres(c) => row
            .select(User::as_select())
            .for_no_key_update()
            .get_result(c)
            .optional()?,
    })
}

/// Take the lock that serialises changes to one user's factors and
/// second-factor attempts: the user's row (a PostgreSQL row lock; SQLite's
/// write lock). `false` when the user is gone.
pub fn lock(c: &mut Conn, id: UserId) -> Result<bool, DbError> {
    let n = diesel::update(users::table.find(id.0))
        .set(users::recovery_codes_generation.eq(users::recovery_codes_generation))
        .execute(c)?;
    Ok(n == 1)
}

/// Move the recovery-code generation on: only if it is still `expected`
/// (when given). `false` when it had moved already (a double click).
pub fn bump_codes_generation(c: &mut Conn, id: UserId, expected: Option<i64>) -> Result<bool, DbError> {
    let bump = users::recovery_codes_generation.eq(users::recovery_codes_generation + 1);
    let n = match expected {
        Some(g) => diesel::update(users::table.find(id.0).filter(users::recovery_codes_generation.eq(g)))
            .set(bump)
            .execute(c)?,
        None => diesel::update(users::table.find(id.0)).set(bump).execute(c)?,
    };
    Ok(n == 1)
}

/// The user's WebAuthn handle: the stored one, or `candidate` stored now
/// (when two requests race, the first one's stays).
pub fn webauthn_handle(c: &mut Conn, id: UserId, candidate: &str) -> Result<String, DbError> {
    diesel::update(users::table.find(id.0).filter(users::webauthn_handle.is_null()))
        .set(users::webauthn_handle.eq(candidate))
        .execute(c)?;
    Ok(users::table
        .find(id.0)
        .select(users::webauthn_handle.assume_not_null())
        .get_result(c)?)
}

pub fn find_by_webauthn_handle(c: &mut Conn, handle: &str) -> Result<Option<User>, DbError> {
    Ok(users::table
        .filter(users::webauthn_handle.eq(handle))
        .select(User::as_select())
        .get_result(c)
        .optional()?)
}

/// 2FA turned on or off: browsers remembered before no longer count.
pub fn bump_mfa_epoch(c: &mut Conn, id: UserId) -> Result<(), DbError> {
    diesel::update(users::table.find(id.0))
        .set(users::mfa_epoch.eq(users::mfa_epoch + 1))
        .execute(c)?;
    Ok(())
}

/// Set (or clear) the user's address; `verified_at` when an administrator
/// vouches for it, `None` when it still has to be verified.
pub fn set_email(c: &mut Conn, id: UserId, email: Option<&str>, verified_at: Option<UnixTime>) -> Result<(), DbError> {
    diesel::update(users::table.find(id.0))
        .set((
            users::email.eq(email),
            users::email_verified_at.eq(verified_at.map(|t| t.0)),
        ))
        .execute(c)?;
    Ok(())
}

/// Verify the address, if it is still `email`: `true` if this did it.
pub fn verify_email(c: &mut Conn, id: UserId, email: &str, now: UnixTime) -> Result<bool, DbError> {
    Ok(diesel::update(
        users::table
            .find(id.0)
            .filter(users::email.eq(email))
            .filter(users::email_verified_at.is_null()),
    )
    .set(users::email_verified_at.eq(now.0))
    .execute(c)?
        == 1)
}

pub fn set_notify_new_browser(c: &mut Conn, id: UserId, on: bool) -> Result<(), DbError> {
    diesel::update(users::table.find(id.0))
        .set(users::notify_new_browser.eq(on))
        .execute(c)?;
    Ok(())
}

/// The next sign-in must choose a new password before anything else.
pub fn require_password_change(c: &mut Conn, id: UserId) -> Result<(), DbError> {
    diesel::update(users::table.find(id.0))
        .set(users::must_change_password.eq(true))
        .execute(c)?;
    Ok(())
}
