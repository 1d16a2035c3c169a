//! The one-time setup link that creates the first administrator.

use diesel::prelude::*;

use super::users::{self, CreateError, NewAccount, User};
use super::{Conn, DbError};
use crate::core::types::UnixTime;
use crate::schema::setup_tokens;

/// With no users yet, replace any earlier setup token by `token_hash` and
/// return `true`; with users, remove stale tokens and return `false`.
pub fn arm(c: &mut Conn, token_hash: &str, now: UnixTime) -> Result<bool, DbError> {
    c.transaction(|c| {
        diesel::delete(setup_tokens::table).execute(c)?;
        if users::count(c)? > 0 {
            return Ok(false);
        }
        diesel::insert_into(setup_tokens::table)
            .values((
                setup_tokens::token_hash.eq(token_hash),
                setup_tokens::created_at.eq(now.0),
            ))
            .execute(c)?;
        Ok(true)
    })
}

pub fn is_valid(c: &mut Conn, token_hash: &str) -> Result<bool, DbError> {
    let n: i64 = setup_tokens::table.find(token_hash).count().get_result(c)?;
    Ok(n == 1 && users::count(c)? == 0)
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("this setup link has already been used or is no longer valid")]
    Spent,
    #[error(transparent)]
    Create(#[from] CreateError),
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<diesel::result::Error> for SetupError {
    fn from(e: diesel::result::Error) -> Self {
        Self::Db(e.into())
    }
}

/// Spend the token and create the administrator in one transaction.
pub fn complete(
    c: &mut Conn,
    token_hash: &str,
    username: &str,
    password_hash: &str,
    now: UnixTime,
) -> Result<User, SetupError> {
    c.transaction(|c| {
        let spent = diesel::delete(setup_tokens::table.find(token_hash)).execute(c)?;
        // Any other armed token dies too (several instances may each have
        // armed one); on PostgreSQL this waits for a concurrent completion,
        // whose administrator the count below then sees.
        diesel::delete(setup_tokens::table).execute(c)?;
        if spent != 1 || users::count(c)? > 0 {
            return Err(SetupError::Spent);
        }
        let account = NewAccount {
            username,
            password_hash,
            is_admin: true,
            must_change_password: false,
        };
        Ok(users::create(c, account, now)?)
    })
}
