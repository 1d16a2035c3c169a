//! The outbox: email notifications written in the same commit as the event
//! that causes them, and sent later by a server's mail worker
//! (`crate::mail::worker`). See the migration for the claim protocol.

use diesel::prelude::*;

use super::events::{Event, Kind};
use super::{Conn, DbError};
use crate::core::notice::{self, Notice};
use crate::core::types::{UnixTime, UserId};
use crate::schema::{credentials, outbox, users};

#[derive(Clone, Debug, Queryable, Selectable)]
#[diesel(table_name = outbox)]
pub struct Message {
    pub id: i64,
    pub reference: String,
    pub user_id: Option<i64>,
    pub kind: String,
    pub to_address: String,
    pub detail: Option<String>,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    pub created_at: i64,
    pub next_attempt_at: i64,
    pub attempts: i32,
    pub claimed_until: Option<i64>,
    pub sent_at: Option<i64>,
    pub failed_at: Option<i64>,
    pub last_error: Option<String>,
    pub link_used_at: Option<i64>,
}

impl Message {
    pub fn notice(&self) -> Option<Notice> {
        Notice::parse(&self.kind)
    }
}

/// A new message's reference: 128 random bits, hex. It names the message
/// (its Message-ID) and, with a keyed MAC, makes its link.
pub fn new_reference() -> String {
    crate::core::keys::hex(&crate::core::random_bytes::<16>())
}

/// Put a message in the outbox, due now.
#[allow(clippy::too_many_arguments)]
pub fn enqueue(
    c: &mut Conn,
    notice: Notice,
    user: Option<UserId>,
    to: &str,
    detail: Option<&str>,
    client_address: Option<&str>,
    user_agent: Option<&str>,
    now: UnixTime,
) -> Result<String, DbError> {
    let reference = new_reference();
    diesel::insert_into(outbox::table)
        .values((
            outbox::reference.eq(&reference),
            outbox::user_id.eq(user.map(|u| u.0)),
            outbox::kind.eq(notice.as_str()),
            outbox::to_address.eq(to),
            outbox::detail.eq(detail),
            outbox::client_address.eq(client_address),
            outbox::user_agent.eq(user_agent.map(|s| truncate(s, 256))),
            outbox::created_at.eq(now.0),
            outbox::next_attempt_at.eq(now.0),
        ))
        .execute(c)?;
    Ok(reference)
}

fn truncate(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The notice a security event sends to its user, if any.
fn notice_for(kind: Kind) -> Option<Notice> {
    Some(match kind {
        Kind::MfaEnabled => Notice::MfaOn,
        Kind::MfaDisabled => Notice::MfaOff,
        Kind::FactorAdded => Notice::FactorAdded,
        Kind::FactorRemoved => Notice::FactorRemoved,
        Kind::RecoveryCodeUsed => Notice::RecoveryCodeUsed,
        Kind::RecoveryCodesRegenerated => Notice::CodesRegenerated,
        Kind::PasswordChanged => Notice::PasswordChanged,
        Kind::MfaResetByAdmin => Notice::AdminReset,
        Kind::AdminUnlocked => Notice::AdminUnlocked,
        Kind::PasswordLocked | Kind::SecondFactorLocked => Notice::Locked,
        Kind::SignInAbandoned | Kind::SignInUnfinished => Notice::Unfinished,
        Kind::NotMe => Notice::Secured,
        _ => return None,
    })
}

/// Called for every security event, in its transaction: the notice it
/// causes, if its user has a verified address.
pub fn for_event(c: &mut Conn, e: &Event, now: UnixTime) -> Result<(), DbError> {
    let (Some(notice), Some(user)) = (notice_for(e.kind), e.user_id) else {
        return Ok(());
    };
    // The first factor added and the last removed: "turned on / off" says it.
    if matches!(notice, Notice::FactorAdded | Notice::FactorRemoved) {
        let confirmed: i64 = credentials::table
            .filter(credentials::user_id.eq(user.0))
            .filter(credentials::confirmed_at.is_not_null())
            .count()
            .get_result(c)?;
        if (notice == Notice::FactorAdded && confirmed <= 1) || (notice == Notice::FactorRemoved && confirmed == 0) {
            return Ok(());
        }
    }
    notify(c, notice, user, e, now)
}

/// Send `notice` about `e` to `user`, if they have a verified address (and
/// want it, for the optional ones; and not again so soon, for those others
/// can cause).
pub fn notify(c: &mut Conn, notice: Notice, user: UserId, e: &Event, now: UnixTime) -> Result<(), DbError> {
    let found: Option<(Option<String>, Option<i64>, bool)> = users::table
        .find(user.0)
        .select((users::email, users::email_verified_at, users::notify_new_browser))
        .get_result(c)
        .optional()?;
    let Some((Some(to), Some(_), wants_optional)) = found else {
        return Ok(());
    };
    send(c, notice, user, &to, wants_optional, e, now)
}

/// `notify`, for a user row the caller read in this transaction (under the
/// user's lock): no second read of the address.
pub fn notify_user(
    c: &mut Conn,
    notice: Notice,
    user: &super::users::User,
    e: &Event,
    now: UnixTime,
) -> Result<(), DbError> {
    match user.verified_email() {
        Some(to) => send(c, notice, user.id, to, user.notify_new_browser, e, now),
        None => Ok(()),
    }
}

fn send(
    c: &mut Conn,
    notice: Notice,
    user: UserId,
    to: &str,
    wants_optional: bool,
    e: &Event,
    now: UnixTime,
) -> Result<(), DbError> {
    if notice.optional() && !wants_optional {
        return Ok(());
    }
    if notice.limited() {
        let recent: i64 = outbox::table
            .filter(outbox::user_id.eq(user.0))
            .filter(outbox::kind.eq(notice.as_str()))
            .filter(outbox::created_at.gt(now.0 - notice::ONCE_PER_SECONDS))
            .count()
            .get_result(c)?;
        if recent > 0 {
            return Ok(());
        }
    }
    enqueue(
        c,
        notice,
        Some(user),
        to,
        e.detail.as_deref(),
        e.client_address.as_deref(),
        e.user_agent.as_deref(),
        now,
    )?;
    Ok(())
}

/// How many verification messages the user has had since `since`.
pub fn verifications_since(c: &mut Conn, user: UserId, since: UnixTime) -> Result<i64, DbError> {
    Ok(outbox::table
        .filter(outbox::user_id.eq(user.0))
        .filter(outbox::kind.eq(Notice::Verify.as_str()))
        .filter(outbox::created_at.gt(since.0))
        .count()
        .get_result(c)?)
}

/// Claim up to `limit` messages that are due, for `lease` seconds: each
/// claimed by one conditional UPDATE, so two workers never both get one.
/// On PostgreSQL the candidates are read `FOR UPDATE SKIP LOCKED`, so
/// workers of several instances take different rows instead of queueing.
pub fn claim_due(c: &mut Conn, now: UnixTime, lease: i64, limit: i64) -> Result<Vec<Message>, DbError> {
    let due = outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(outbox::failed_at.is_null())
        .filter(outbox::next_attempt_at.le(now.0))
        .filter(outbox::claimed_until.is_null().or(outbox::claimed_until.le(now.0)))
        .order(outbox::id.asc())
        .limit(limit)
        .select(outbox::id);
    match c {
        Conn::Postgres(_) => c.transaction(|c| {
            let Conn::Postgres(pg) = c else { unreachable!() };
            let ids: Vec<i64> = due.for_update().skip_locked().load(pg)?;
            claim(c, &ids, now, lease)
        }),
        // One writer at a time: each claim is its own conditional UPDATE
        // (a transaction that began with the read would have to upgrade
        // its lock, which SQLite refuses rather than waits for).
        Conn::Sqlite(_) => {
            let ids: Vec<i64> = due.load(c)?;
            claim(c, &ids, now, lease)
        }
    }
}

fn claim(c: &mut Conn, ids: &[i64], now: UnixTime, lease: i64) -> Result<Vec<Message>, DbError> {
    let mut claimed = Vec::with_capacity(ids.len());
    for &id in ids {
        let n = diesel::update(
            outbox::table
                .find(id)
                .filter(outbox::sent_at.is_null())
                .filter(outbox::failed_at.is_null())
                .filter(outbox::next_attempt_at.le(now.0))
                .filter(outbox::claimed_until.is_null().or(outbox::claimed_until.le(now.0))),
        )
        .set((
            outbox::claimed_until.eq(now.0 + lease),
            outbox::attempts.eq(outbox::attempts + 1),
        ))
        .execute(c)?;
        if n == 1 {
            claimed.push(outbox::table.find(id).select(Message::as_select()).get_result(c)?);
        }
    }
    Ok(claimed)
}

/// Delivered (whoever holds the claim now: the message went out, and
/// must not go out again).
pub fn mark_sent(c: &mut Conn, id: i64, now: UnixTime) -> Result<(), DbError> {
    diesel::update(outbox::table.find(id).filter(outbox::sent_at.is_null()))
        .set((
            outbox::sent_at.eq(now.0),
            outbox::failed_at.eq(None::<i64>),
            outbox::claimed_until.eq(None::<i64>),
            outbox::last_error.eq(None::<String>),
        ))
        .execute(c)?;
    Ok(())
}

/// A temporary failure: try again at `at` — if this worker still holds the
/// claim it made (`claim`: its `claimed_until`); `false` if it lost it.
pub fn retry_at(c: &mut Conn, id: i64, claim: Option<i64>, at: UnixTime, error: &str) -> Result<bool, DbError> {
    Ok(diesel::update(
        outbox::table
            .find(id)
            .filter(outbox::sent_at.is_null())
            .filter(outbox::claimed_until.eq(claim)),
    )
    .set((
        outbox::next_attempt_at.eq(at.0),
        outbox::claimed_until.eq(None::<i64>),
        outbox::last_error.eq(truncate(error, 500)),
    ))
    .execute(c)?
        == 1)
}

/// A permanent failure (or 24 hours of temporary ones): never tried again —
/// if this worker still holds its claim; `false` if it lost it.
pub fn mark_failed(c: &mut Conn, id: i64, claim: Option<i64>, now: UnixTime, error: &str) -> Result<bool, DbError> {
    Ok(diesel::update(
        outbox::table
            .find(id)
            .filter(outbox::sent_at.is_null())
            .filter(outbox::claimed_until.eq(claim)),
    )
    .set((
        outbox::failed_at.eq(now.0),
        outbox::claimed_until.eq(None::<i64>),
        outbox::last_error.eq(truncate(error, 500)),
    ))
    .execute(c)?
        == 1)
}

pub fn find_by_reference(c: &mut Conn, reference: &str) -> Result<Option<Message>, DbError> {
    Ok(outbox::table
        .filter(outbox::reference.eq(reference))
        .select(Message::as_select())
        .get_result(c)
        .optional()?)
}

/// Spend the message's link: `true` for the one request that did.
pub fn use_link(c: &mut Conn, id: i64, now: UnixTime) -> Result<bool, DbError> {
    Ok(
        diesel::update(outbox::table.find(id).filter(outbox::link_used_at.is_null()))
            .set(outbox::link_used_at.eq(now.0))
            .execute(c)?
            == 1,
    )
}

/// The most recent messages, newest first (the administrators' mail page).
pub fn recent(c: &mut Conn, limit: i64) -> Result<Vec<Message>, DbError> {
    Ok(outbox::table
        .order(outbox::id.desc())
        .limit(limit)
        .select(Message::as_select())
        .load(c)?)
}

/// Every message to `user`, oldest first (tests and the CLI).
pub fn for_user(c: &mut Conn, user: UserId) -> Result<Vec<Message>, DbError> {
    Ok(outbox::table
        .filter(outbox::user_id.eq(user.0))
        .order(outbox::id.asc())
        .select(Message::as_select())
        .load(c)?)
}

/// Tidy up: messages older than 30 days (their links died long before).
pub fn delete_old(c: &mut Conn, now: UnixTime) -> Result<usize, DbError> {
    Ok(diesel::delete(outbox::table.filter(outbox::created_at.lt(now.0 - 30 * 24 * 60 * 60))).execute(c)?)
}

/// Messages still waiting to go out (the metrics and the health of mail).
pub fn waiting(c: &mut Conn) -> Result<i64, DbError> {
    Ok(outbox::table
        .filter(outbox::sent_at.is_null())
        .filter(outbox::failed_at.is_null())
        .count()
        .get_result(c)?)
}
