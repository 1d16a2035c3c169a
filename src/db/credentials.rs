//! Second-factor credentials: one row per authenticator app or key. "2FA is
//! on" means the user has at least one confirmed row; a row not yet
//! confirmed is a pending enrolment that belongs to the session that
//! started it.
//!
//! Every check-and-change here is one conditional statement, so concurrent
//! requests — on one instance or many — cannot both win.

use diesel::prelude::*;

use super::fixed::{Fixed, FixedSql};
use super::{Conn, DbError};
use crate::core::types::{CredentialId, TimeStep, UnixTime, UserId};
use crate::schema::credentials;

/// What a credential is; stored as text in `credentials.kind`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CredentialKind {
    Totp,
    WebAuthn,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Totp => "totp",
            Self::WebAuthn => "webauthn",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "totp" => Some(Self::Totp),
            "webauthn" => Some(Self::WebAuthn),
            _ => None,
        }
    }
}

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = credentials)]
pub struct Credential {
    #[diesel(deserialize_as = i64)]
    pub id: CredentialId,
    #[diesel(deserialize_as = i64)]
    pub user_id: UserId,
    pub kind: String,
    pub name: String,
    pub secret_sealed: Option<String>,
    pub public_data: Option<String>,
    pub external_id: Option<String>,
    #[diesel(deserialize_as = i64)]
    pub created_at: UnixTime,
    pub confirmed_at: Option<i64>,
    pub last_used_at: Option<i64>,
    pub last_step: Option<i64>,
    pub pending_owner: Option<String>,
    pub attempts: i32,
}

impl Credential {
    pub fn kind(&self) -> Option<CredentialKind> {
        CredentialKind::parse(&self.kind)
    }

    pub fn is_confirmed(&self) -> bool {
        self.confirmed_at.is_some()
    }
}

/// The user's confirmed credentials, oldest first.
pub fn confirmed(c: &mut Conn, user: UserId) -> Result<Vec<Credential>, DbError> {
    let q = credentials::table
        .filter(credentials::user_id.eq(user.0))
        .filter(credentials::confirmed_at.is_not_null())
        .order(credentials::id.asc());
    // On the backend's own connection (`db`, "Hot paths"): every second step.
    Ok(crate::on_backend!(c, |c| q.select(Credential::as_select()).load(c))?)
}

/// Whether 2FA is on: at least one confirmed credential.
pub fn has_confirmed(c: &mut Conn, user: UserId) -> Result<bool, DbError> {
    let n: i64 = credentials::table
        .filter(credentials::user_id.eq(user.0))
        .filter(credentials::confirmed_at.is_not_null())
        .count()
        .get_result(c)?;
    Ok(n > 0)
}

/// When 2FA went on: the oldest confirmation among the current credentials.
pub fn enabled_since(c: &mut Conn, user: UserId) -> Result<Option<i64>, DbError> {
    Ok(credentials::table
        .filter(credentials::user_id.eq(user.0))
        .select(diesel::dsl::min(credentials::confirmed_at))
        .get_result(c)?)
}

/// A credential stored already confirmed (an import, or seeding a test
/// database the way enrolment would have left it).
pub struct NewConfirmed<'a> {
    pub user: UserId,
    pub kind: CredentialKind,
    pub name: &'a str,
    pub secret_sealed: Option<&'a str>,
    pub last_step: Option<TimeStep>,
}

pub fn insert_confirmed(c: &mut Conn, n: NewConfirmed<'_>, now: UnixTime) -> Result<CredentialId, DbError> {
    let id: i64 = crate::on_backend!(c, |c| diesel::insert_into(credentials::table)
        .values((
            credentials::user_id.eq(n.user.0),
            credentials::kind.eq(n.kind.as_str()),
            credentials::name.eq(n.name),
            credentials::secret_sealed.eq(n.secret_sealed),
            credentials::created_at.eq(now.0),
            credentials::confirmed_at.eq(now.0),
            credentials::last_step.eq(n.last_step.map(|s| s.0)),
        ))
        .returning(credentials::id)
        .get_result(c))?;
    Ok(CredentialId(id))
}

/// A pending enrolment: a new row that is not confirmed yet.
pub struct NewPending<'a> {
    pub user: UserId,
    pub kind: CredentialKind,
    pub name: &'a str,
    pub secret_sealed: Option<&'a str>,
    pub owner: &'a str,
}

/// Begin (or restart) an enrolment of `kind`: any earlier pending one of
/// that kind goes, and the new row is owned by `owner` (a session's public
/// id). Call it inside a transaction that holds the user's lock.
pub fn start_pending(c: &mut Conn, p: NewPending<'_>, now: UnixTime) -> Result<CredentialId, DbError> {
    diesel::delete(
        credentials::table
            .filter(credentials::user_id.eq(p.user.0))
            .filter(credentials::kind.eq(p.kind.as_str()))
            .filter(credentials::confirmed_at.is_null()),
    )
    .execute(c)?;
    let id: i64 = crate::on_backend!(c, |c| diesel::insert_into(credentials::table)
        .values((
            credentials::user_id.eq(p.user.0),
            credentials::kind.eq(p.kind.as_str()),
            credentials::name.eq(p.name),
            credentials::secret_sealed.eq(p.secret_sealed),
            credentials::created_at.eq(now.0),
            credentials::pending_owner.eq(p.owner),
        ))
        .returning(credentials::id)
        .get_result(c))?;
    Ok(CredentialId(id))
}

/// The pending enrolment of `kind` that `owner` started after `not_before`.
pub fn pending(
    c: &mut Conn,
    user: UserId,
    kind: CredentialKind,
    owner: &str,
    not_before: UnixTime,
) -> Result<Option<Credential>, DbError> {
    Ok(credentials::table
        .filter(credentials::user_id.eq(user.0))
        .filter(credentials::kind.eq(kind.as_str()))
        .filter(credentials::confirmed_at.is_null())
        .filter(credentials::pending_owner.eq(owner))
        .filter(credentials::created_at.ge(not_before.0))
        .select(Credential::as_select())
        .get_result(c)
        .optional()?)
}

/// Count one confirmation attempt against a pending enrolment, if it is
/// still pending, still `owner`'s, and has attempts left. One conditional
/// UPDATE: of any number of concurrent attempts, at most `max` get `true`.
pub fn take_enrolment_attempt(
    c: &mut Conn,
    id: CredentialId,
    owner: &str,
    not_before: UnixTime,
    max: i32,
) -> Result<bool, DbError> {
    let n = diesel::update(
        credentials::table
            .find(id.0)
            .filter(credentials::confirmed_at.is_null())
            .filter(credentials::pending_owner.eq(owner))
            .filter(credentials::created_at.ge(not_before.0))
            .filter(credentials::attempts.lt(max)),
    )
    .set(credentials::attempts.eq(credentials::attempts + 1))
    .execute(c)?;
    Ok(n == 1)
}

/// Confirm a pending enrolment (TOTP: with the step its code matched).
/// `false` if it was no longer pending.
pub fn confirm(c: &mut Conn, id: CredentialId, step: Option<TimeStep>, now: UnixTime) -> Result<bool, DbError> {
    let n = diesel::update(
        credentials::table
            .find(id.0)
            .filter(credentials::confirmed_at.is_null()),
    )
    .set((
        credentials::confirmed_at.eq(now.0),
        credentials::last_step.eq(step.map(|s| s.0)),
        credentials::pending_owner.eq(None::<String>),
        credentials::attempts.eq(0),
    ))
    .execute(c)?;
    Ok(n == 1)
}

/// Remove a pending enrolment (expired, or out of attempts).
pub fn delete_pending(c: &mut Conn, id: CredentialId) -> Result<(), DbError> {
    diesel::delete(
        credentials::table
            .find(id.0)
            .filter(credentials::confirmed_at.is_null()),
    )
    .execute(c)?;
    Ok(())
}

/// Accept TOTP step `step` for this credential if, and only if, it is later
/// than every step accepted before. One conditional UPDATE: of any number
/// of concurrent requests with the same code, exactly one gets `true`.
pub fn accept_step(c: &mut Conn, id: CredentialId, step: TimeStep, now: UnixTime) -> Result<bool, DbError> {
    // Kept prepared (`fixed`): this runs for every accepted code.
    struct AcceptStep;
    impl FixedSql for AcceptStep {
        const PARTS: &'static [&'static str] = &[
            "UPDATE credentials SET last_step = ",
            ", last_used_at = ",
            " WHERE id = ",
            " AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < ",
            ")",
        ];
    }
    let n = Fixed::<AcceptStep, 4>::new([step.0, now.0, id.0, step.0]).run(c)?;
    Ok(n == 1)
}

/// Whether the credential is still confirmed and present (it may have been
/// removed since the caller read it).
pub fn still_confirmed(c: &mut Conn, id: CredentialId) -> Result<bool, DbError> {
    let n: i64 = credentials::table
        .find(id.0)
        .filter(credentials::confirmed_at.is_not_null())
        .count()
        .get_result(c)?;
    Ok(n == 1)
}

/// Re-seal a secret made under an older server key.
pub fn reseal(c: &mut Conn, id: CredentialId, old: &str, new: &str) -> Result<(), DbError> {
    diesel::update(credentials::table.find(id.0).filter(credentials::secret_sealed.eq(old)))
        .set(credentials::secret_sealed.eq(new))
        .execute(c)?;
    Ok(())
}

/// Remove every credential of the user, confirmed or pending. Returns how
/// many confirmed ones there were.
pub fn remove_all(c: &mut Conn, user: UserId) -> Result<usize, DbError> {
    let confirmed = diesel::delete(
        credentials::table
            .filter(credentials::user_id.eq(user.0))
            .filter(credentials::confirmed_at.is_not_null()),
    )
    .execute(c)?;
    diesel::delete(credentials::table.filter(credentials::user_id.eq(user.0))).execute(c)?;
    Ok(confirmed)
}

/// Remove one confirmed credential of this user. `false` if it was not there.
pub fn remove(c: &mut Conn, user: UserId, id: CredentialId) -> Result<bool, DbError> {
    let n = diesel::delete(
        credentials::table
            .find(id.0)
            .filter(credentials::user_id.eq(user.0))
            .filter(credentials::confirmed_at.is_not_null()),
    )
    .execute(c)?;
    Ok(n == 1)
}

/// Every user's confirmed credential kinds (for the Users page and `user list`).
pub fn kinds_by_user(c: &mut Conn) -> Result<Vec<(i64, String, i64)>, DbError> {
    Ok(credentials::table
        .filter(credentials::confirmed_at.is_not_null())
        .select((
            credentials::user_id,
            credentials::kind,
            credentials::confirmed_at.assume_not_null(),
        ))
        .load(c)?)
}

/// A new WebAuthn credential, confirmed by its registration ceremony.
/// `None` when a credential with this id is already registered (to anyone).
pub fn insert_webauthn(
    c: &mut Conn,
    user: UserId,
    name: &str,
    public_data: &str,
    external_id: &str,
    now: UnixTime,
) -> Result<Option<CredentialId>, DbError> {
    let taken: i64 = credentials::table
        .filter(credentials::external_id.eq(external_id))
        .count()
        .get_result(c)?;
    if taken > 0 {
        return Ok(None);
    }
    let id: i64 = crate::on_backend!(c, |c| diesel::insert_into(credentials::table)
        .values((
            credentials::user_id.eq(user.0),
            credentials::kind.eq(CredentialKind::WebAuthn.as_str()),
            credentials::name.eq(name),
            credentials::public_data.eq(public_data),
            credentials::external_id.eq(external_id),
            credentials::created_at.eq(now.0),
            credentials::confirmed_at.eq(now.0),
        ))
        .returning(credentials::id)
        .get_result(c))?;
    Ok(Some(CredentialId(id)))
}

/// The confirmed credential with this external (WebAuthn) id.
pub fn find_by_external_id(c: &mut Conn, external_id: &str) -> Result<Option<Credential>, DbError> {
    Ok(credentials::table
        .filter(credentials::external_id.eq(external_id))
        .filter(credentials::confirmed_at.is_not_null())
        .select(Credential::as_select())
        .get_result(c)
        .optional()?)
}

/// After a use: the credential as the library updated it (counter, backup
/// state), and when.
pub fn record_use(c: &mut Conn, id: CredentialId, public_data: Option<&str>, now: UnixTime) -> Result<(), DbError> {
    match public_data {
        Some(p) => diesel::update(credentials::table.find(id.0))
            .set((credentials::public_data.eq(p), credentials::last_used_at.eq(now.0)))
            .execute(c)?,
        None => diesel::update(credentials::table.find(id.0))
            .set(credentials::last_used_at.eq(now.0))
            .execute(c)?,
    };
    Ok(())
}

/// Rename one of the user's credentials. `false` if it is not theirs.
pub fn rename(c: &mut Conn, user: UserId, id: CredentialId, name: &str) -> Result<bool, DbError> {
    Ok(diesel::update(
        credentials::table
            .find(id.0)
            .filter(credentials::user_id.eq(user.0))
            .filter(credentials::confirmed_at.is_not_null()),
    )
    .set(credentials::name.eq(name))
    .execute(c)?
        == 1)
}
