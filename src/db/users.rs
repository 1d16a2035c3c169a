//! Accounts.

use diesel::prelude::*;

use super::{Conn, DbError};
use crate::schema::{recovery_codes, users};

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = users)]
pub struct User {
    pub id: i64,
    pub username: String,
    pub password_hash: String,
    pub is_admin: bool,
    pub created_at: i64,
    pub last_login_at: Option<i64>,
    pub totp_secret_sealed: Option<String>,
    pub totp_enabled_at: Option<i64>,
    pub totp_last_step: Option<i64>,
    pub must_change_password: bool,
    /// Sessions signed in under another value are no longer valid.
    pub session_epoch: i64,
    pub recovery_codes_generation: i64,
}

impl User {
    pub fn mfa_enabled(&self) -> bool {
        self.totp_secret_sealed.is_some()
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

pub fn create(
    c: &mut Conn,
    username: &str,
    password_hash: &str,
    is_admin: bool,
    now: i64,
) -> Result<User, CreateError> {
    insert(c, username, password_hash, is_admin, now, false)
}

fn insert(
    c: &mut Conn,
    username: &str,
    password_hash: &str,
    is_admin: bool,
    now: i64,
    must_change_password: bool,
) -> Result<User, CreateError> {
    let row = NewUser {
        username,
        password_hash,
        is_admin,
        created_at: now,
        must_change_password,
    };
    match diesel::insert_into(users::table).values(&row).execute(c) {
        Ok(_) => {
            find_by_name(c, username)?.ok_or_else(|| CreateError::Db(DbError::Query(diesel::result::Error::NotFound)))
        }
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Err(CreateError::Exists(username.to_string()))
        }
        Err(e) => Err(e.into()),
    }
}

pub fn find(c: &mut Conn, id: i64) -> Result<Option<User>, DbError> {
    Ok(users::table
        .find(id)
        .select(User::as_select())
        .get_result(c)
        .optional()?)
}

pub fn find_by_name(c: &mut Conn, name: &str) -> Result<Option<User>, DbError> {
    Ok(users::table
        .filter(users::username.eq(name))
        .select(User::as_select())
        .get_result(c)
        .optional()?)
}

pub fn count(c: &mut Conn) -> Result<i64, DbError> {
    Ok(users::table.count().get_result(c)?)
}

/// Set a password the user chose (which also ends any "must change" state).
pub fn set_password(c: &mut Conn, id: i64, hash: &str) -> Result<(), DbError> {
    diesel::update(users::table.find(id))
        .set((users::password_hash.eq(hash), users::must_change_password.eq(false)))
        .execute(c)?;
    Ok(())
}

/// Create an account with a temporary password, to be changed at first sign-in.
pub fn create_with_temporary_password(
    c: &mut Conn,
    username: &str,
    password_hash: &str,
    is_admin: bool,
    now: i64,
) -> Result<User, CreateError> {
    // One INSERT: there is never an account with a temporary password that
    // is not marked as such.
    insert(c, username, password_hash, is_admin, now, true)
}

#[derive(Debug, PartialEq, Eq)]
pub enum AdminChange {
    Done,
    /// Refused: the last administrator cannot be demoted.
    LastAdmin,
    NoSuchUser,
}

/// Grant or remove admin rights, never removing the last administrator.
pub fn set_admin(c: &mut Conn, id: i64, admin: bool) -> Result<AdminChange, DbError> {
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
        if !admin {
            let others: i64 = users::table
                .filter(users::is_admin.eq(true))
                .filter(users::id.ne(id))
                .count()
                .get_result(c)?;
            if others == 0 {
                return Ok(AdminChange::LastAdmin);
            }
        }
        diesel::update(users::table.find(id))
            .set(users::is_admin.eq(admin))
            .execute(c)?;
        Ok(AdminChange::Done)
    })
}

pub fn all(c: &mut Conn) -> Result<Vec<User>, DbError> {
    Ok(users::table
        .order(users::username.asc())
        .select(User::as_select())
        .load(c)?)
}

pub fn record_login(c: &mut Conn, id: i64, now: i64) -> Result<(), DbError> {
    diesel::update(users::table.find(id))
        .set(users::last_login_at.eq(now))
        .execute(c)?;
    Ok(())
}

/// One line of `latchkey user list`.
#[derive(Debug)]
pub struct Summary {
    pub username: String,
    pub is_admin: bool,
    pub mfa_enabled_at: Option<i64>,
    pub recovery_codes_left: i64,
    pub last_login_at: Option<i64>,
}

pub fn list(c: &mut Conn) -> Result<Vec<Summary>, DbError> {
    let rows: Vec<User> = users::table
        .order(users::username.asc())
        .select(User::as_select())
        .load(c)?;
    let mut out = Vec::with_capacity(rows.len());
    for u in rows {
        let left: i64 = recovery_codes::table
            .filter(recovery_codes::user_id.eq(u.id))
            .filter(recovery_codes::used_at.is_null())
            .count()
            .get_result(c)?;
        out.push(Summary {
            username: u.username,
            is_admin: u.is_admin,
            mfa_enabled_at: u.totp_secret_sealed.as_ref().and(u.totp_enabled_at),
            recovery_codes_left: left,
            last_login_at: u.last_login_at,
        });
    }
    Ok(out)
}

/// Store a new hash of the *same* password (a changed bcrypt cost).
pub fn rehash_password(c: &mut Conn, id: i64, old_hash: &str, new_hash: &str) -> Result<(), DbError> {
    diesel::update(users::table.find(id).filter(users::password_hash.eq(old_hash)))
        .set(users::password_hash.eq(new_hash))
        .execute(c)?;
    Ok(())
}
