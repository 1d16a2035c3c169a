//! Email addresses and what the messages' links do: setting and verifying
//! an address, "This wasn't me", the unfinished-sign-in alert, and the
//! mail worker's side of the outbox (claim, outcome).
//!
//! A message's link is `REFERENCE.MAC`: the outbox row's random reference
//! and a keyed MAC of it (purpose `email-link`), so nothing secret is
//! stored and a resent duplicate carries the same link. `link_used_at`
//! makes it single use.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use diesel::Connection as _;
use subtle::ConstantTimeEq;

use super::{Actor, Auth, AuthResult, Client};
use crate::core::notice::{self, Notice};
use crate::core::types::{UnixTime, UserId};
use crate::db::events::{self, Event, Kind};
use crate::db::outbox::{self, Message};
use crate::db::users::{self, User};
use crate::db::{browsers, credentials, pending, recovery, sessions};
use crate::mail::Delivery;

/// What became of setting an address.
#[derive(Debug, PartialEq, Eq)]
pub enum EmailChange {
    /// Saved; a verification message is on its way.
    VerificationSent,
    /// Saved and verified (an administrator vouched for it).
    Verified,
    Removed,
    /// Not an address.
    Invalid,
    /// Too many verification messages today.
    TooMany,
    Unchanged,
}

/// A link from a message, checked.
#[derive(Debug)]
pub struct Link {
    pub message: Message,
    pub user: User,
}

/// Why a link does nothing.
#[derive(Debug, PartialEq, Eq)]
pub enum LinkRefusal {
    /// Not a link of ours, or for another purpose.
    Unknown,
    Used,
    Expired,
    /// A verification link for an address the account no longer has.
    Superseded,
}

impl Auth {
    /// The link token of a message.
    pub fn email_link(&self, m: &Message) -> String {
        let mac = self.keys.mac("email-link", link_data(m).as_bytes());
        format!("{}.{}", m.reference, URL_SAFE_NO_PAD.encode(mac))
    }

    /// Check a link token for messages of `verify` (or of every other kind).
    pub async fn check_email_link(&self, token: &str, verify: bool) -> AuthResult<Result<Link, LinkRefusal>> {
        let Some((reference, mac)) = token.split_once('.') else {
            return Ok(Err(LinkRefusal::Unknown));
        };
        if reference.len() != 32 || !reference.bytes().all(|b| b.is_ascii_hexdigit()) || mac.len() > 64 {
            return Ok(Err(LinkRefusal::Unknown));
        }
        let Ok(mac) = URL_SAFE_NO_PAD.decode(mac) else {
            return Ok(Err(LinkRefusal::Unknown));
        };
        let reference = reference.to_string();
        let Some(m) = self.db.read(move |c| outbox::find_by_reference(c, &reference)).await? else {
            return Ok(Err(LinkRefusal::Unknown));
        };
        let right = self
            .keys
            .mac_candidates("email-link", link_data(&m).as_bytes())
            .iter()
            .any(|k| bool::from(k.as_slice().ct_eq(&mac)));
        let is_verify = m.notice() == Some(Notice::Verify);
        if !right || is_verify != verify || (!is_verify && m.notice().is_none_or(|n| !n.has_not_me_link())) {
            return Ok(Err(LinkRefusal::Unknown));
        }
        let Some(user) = (match m.user_id {
            Some(id) => self.find_user(UserId(id)).await?,
            None => None,
        }) else {
            return Ok(Err(LinkRefusal::Unknown));
        };
        if m.link_used_at.is_some() {
            return Ok(Err(LinkRefusal::Used));
        }
        let lifetime = if verify {
            notice::VERIFY_SECONDS
        } else {
            notice::NOT_ME_SECONDS
        };
        if self.now().0 >= m.created_at + lifetime {
            return Ok(Err(LinkRefusal::Expired));
        }
        if verify && user.email.as_deref() != Some(m.to_address.as_str()) {
            return Ok(Err(LinkRefusal::Superseded));
        }
        Ok(Ok(Link { message: m, user }))
    }

    /// Set (or with an empty `email`, remove) the user's own address: it
    /// gets a verification message, and notifications once verified.
    pub async fn set_own_email(&self, user: &User, email: &str, client: &Client) -> AuthResult<EmailChange> {
        let email = email.trim();
        if email.is_empty() {
            if user.email.is_none() {
                return Ok(EmailChange::Unchanged);
            }
            self.store_email(user, None, Actor::User { client }).await?;
            return Ok(EmailChange::Removed);
        }
        if !notice::plausible_address(email) || email.parse::<lettre::Address>().is_err() {
            return Ok(EmailChange::Invalid);
        }
        if user.email.as_deref() == Some(email) && user.email_verified_at.is_some() {
            return Ok(EmailChange::Unchanged);
        }
        self.store_email(user, Some(email), Actor::User { client }).await
    }

    /// An administrator (or the command line) sets a user's address: it
    /// counts as verified — they vouch for it.
    pub async fn set_email_as_admin(&self, user: &User, email: &str, actor: Actor<'_>) -> AuthResult<EmailChange> {
        let email = email.trim();
        if !notice::plausible_address(email) || email.parse::<lettre::Address>().is_err() {
            return Ok(EmailChange::Invalid);
        }
        self.store_email(user, Some(email), actor).await
    }

    async fn store_email(&self, user: &User, email: Option<&str>, actor: Actor<'_>) -> AuthResult<EmailChange> {
        let (id, now) = (user.id, self.now());
        let vouched = !matches!(actor, Actor::User { .. });
        let mut event = actor.event(Kind::EmailChanged, user);
        event.detail = Some(match (email, &event.detail) {
            (Some(e), Some(by)) => format!("{e}, {by}"),
            (Some(e), None) => format!("{e} (not verified yet)"),
            (None, Some(by)) => format!("removed, {by}"),
            (None, None) => "removed".into(),
        });
        let email = email.map(str::to_string);
        let client_address = event.client_address.clone();
        let user_agent = event.user_agent.clone();
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    // The user's row first: the write lock, and one change at a time.
                    users::lock(c, id)?;
                    if !vouched
                        && email.is_some()
                        && outbox::verifications_since(c, id, UnixTime(now.0 - 24 * 60 * 60))? >= notice::VERIFY_PER_DAY
                    {
                        return Ok(EmailChange::TooMany);
                    }
                    // The old verified address hears of the change (someone
                    // in the account cannot silence its emails unnoticed).
                    let old = users::find(c, id)?.and_then(|u| u.verified_email().map(str::to_string));
                    if let Some(old) = old.filter(|o| Some(o.as_str()) != email.as_deref()) {
                        let what = match &email {
                            Some(e) => format!("changed to {e}"),
                            None => "removed".into(),
                        };
                        outbox::enqueue(
                            c,
                            Notice::EmailChanged,
                            Some(id),
                            &old,
                            Some(&what),
                            client_address.as_deref(),
                            user_agent.as_deref(),
                            now,
                        )?;
                    }
                    let Some(address) = email else {
                        users::set_email(c, id, None, None)?;
                        events::record(c, &event, now)?;
                        return Ok(EmailChange::Removed);
                    };
                    if vouched {
                        users::set_email(c, id, Some(&address), Some(now))?;
                        events::record(c, &event, now)?;
                        return Ok(EmailChange::Verified);
                    }
                    users::set_email(c, id, Some(&address), None)?;
                    events::record(c, &event, now)?;
                    outbox::enqueue(
                        c,
                        Notice::Verify,
                        Some(id),
                        &address,
                        None,
                        client_address.as_deref(),
                        user_agent.as_deref(),
                        now,
                    )?;
                    Ok(EmailChange::VerificationSent)
                })
            })
            .await?)
    }

    /// Send the verification message again (the same limit per day).
    pub async fn resend_verification(&self, user: &User, client: &Client) -> AuthResult<EmailChange> {
        match user.email.as_deref() {
            Some(e) if user.email_verified_at.is_none() => {
                let e = e.to_string();
                self.store_email(user, Some(&e), Actor::User { client }).await
            }
            _ => Ok(EmailChange::Unchanged),
        }
    }

    /// Follow a verification link (after its confirmation page).
    pub async fn verify_email(&self, token: &str, client: &Client) -> AuthResult<Result<User, LinkRefusal>> {
        let link = match self.check_email_link(token, true).await? {
            Ok(l) => l,
            Err(r) => return Ok(Err(r)),
        };
        let now = self.now();
        let mut event = client.event(Kind::EmailVerified, Some(&link.user));
        event.detail = Some(link.message.to_address.clone());
        let (m, user) = (link.message, link.user);
        let done = self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    if !outbox::use_link(c, m.id, now)? {
                        return Ok(Err(LinkRefusal::Used));
                    }
                    if !users::verify_email(c, user.id, &m.to_address, now)? {
                        return Ok(Err(LinkRefusal::Superseded));
                    }
                    events::record(c, &event, now)?;
                    Ok(Ok(user))
                })
            })
            .await?;
        Ok(done)
    }

    /// "This wasn't me": every session of the user ends, their remembered
    /// browsers and pending sign-ins are forgotten, and the next sign-in
    /// must choose a new password. One commit; the link works once.
    pub async fn not_me(&self, token: &str, client: &Client) -> AuthResult<Result<User, LinkRefusal>> {
        let link = match self.check_email_link(token, false).await? {
            Ok(l) => l,
            Err(r) => return Ok(Err(r)),
        };
        let now = self.now();
        let subject = link
            .message
            .notice()
            .map(|n| n.subject(&self.settings.issuer))
            .unwrap_or_default();
        let mut event = client.event(Kind::NotMe, Some(&link.user));
        event.detail = Some(format!("from the message “{subject}”"));
        let (m, user) = (link.message, link.user);
        let removed = client.event(Kind::FactorRemoved, Some(&user));
        let off = client.event(Kind::MfaDisabled, Some(&user));
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    if !outbox::use_link(c, m.id, now)? {
                        return Ok(Err(LinkRefusal::Used));
                    }
                    let id = user.id;
                    sessions::revoke_all(c, id, None)?;
                    pending::delete_for_user(c, id)?;
                    let n = browsers::forget_all_remembered(c, id)?;
                    super::account::log_forgotten(c, &event, n, "“This wasn’t me”", now)?;
                    browsers::forget_all(c, id)?;
                    users::require_password_change(c, id)?;
                    users::set_notify_new_browser(c, id, true)?;
                    // Undo what someone else may have done since the message:
                    // sign-in methods added from then on (a passkey would
                    // sign them in without the password)…
                    let mut undone = vec![];
                    for k in credentials::confirmed(c, id)? {
                        if k.confirmed_at.is_some_and(|t| t >= m.created_at) {
                            credentials::remove(c, id, k.id)?;
                            let mut e = removed.clone();
                            e.detail = Some(format!("“{}”, added after the message: “This wasn’t me”", k.name));
                            events::record(c, &e, now)?;
                            undone.push(k.name);
                        }
                    }
                    if !undone.is_empty() && !credentials::has_confirmed(c, id)? {
                        super::account::turn_off(c, id, &off, now)?;
                        events::record(c, &off, now)?;
                    }
                    match m.notice() {
                        // …the recovery codes they may have seen…
                        Some(Notice::CodesRegenerated) => {
                            recovery::delete_all(c, id)?;
                        }
                        // …and the address the message went to, which they replaced.
                        Some(Notice::EmailChanged) => {
                            users::set_email(c, id, Some(&m.to_address), Some(now))?;
                        }
                        _ => {}
                    }
                    let mut event = event;
                    if !undone.is_empty() {
                        event.detail = Some(format!(
                            "{}; removed: {}",
                            event.detail.unwrap_or_default(),
                            undone.join(", ")
                        ));
                    }
                    events::record(c, &event, now)?;
                    Ok(Ok(user))
                })
            })
            .await?)
    }

    /// "Email me about sign-ins from new browsers".
    pub async fn set_notify_new_browser(&self, user: &User, on: bool, client: &Client) -> AuthResult<()> {
        let (id, now) = (user.id, self.now());
        let mut event = client.event(Kind::NotificationsChanged, Some(user));
        event.detail = Some(format!(
            "emails about sign-ins from new browsers {}",
            if on { "on" } else { "off" }
        ));
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    users::set_notify_new_browser(c, id, on)?;
                    events::record(c, &event, now)
                })
            })
            .await?)
    }

    /// Pending sign-ins whose five minutes passed with the password right
    /// and the second step not completed: each is logged (and so mailed),
    /// then deleted — unless the user has signed in since. Returns how many
    /// were handled (at most 50 per call).
    pub async fn finish_unfinished_sign_ins(&self) -> AuthResult<usize> {
        let now = self.now();
        // Looked for beside the writer, once a second, with no index on the
        // expiry (a scan of a small table): the writer only gets a call when
        // there is something to do. What was read stays due: an expired
        // sign-in is never accepted again, and one finished meanwhile is
        // gone (its delete below finds nothing and it is skipped).
        let due = self.db.read(move |c| pending::expired_with_user(c, now, 50)).await?;
        if due.is_empty() {
            return Ok(0);
        }
        Ok(self
            .db
            .run(move |c| {
                c.transaction(|c| {
                    let mut n = 0;
                    for p in due {
                        if !pending::delete(c, &p.id_hash)? {
                            continue;
                        }
                        n += 1;
                        let Some(user) = p.user().map(|u| users::find(c, u)).transpose()?.flatten() else {
                            continue;
                        };
                        // The same browser finished a sign-in after all (the
                        // person left this one and tried again): no alert. A
                        // sign-in from elsewhere does not silence it.
                        if events::signed_in_since_from(
                            c,
                            user.id,
                            p.created_at,
                            p.client_address.as_deref(),
                            p.user_agent.as_deref(),
                        )? {
                            continue;
                        }
                        let event = Event {
                            kind: Kind::SignInUnfinished,
                            user_id: Some(user.id),
                            username: Some(user.username.clone()),
                            client_address: p.client_address.clone(),
                            user_agent: p.user_agent.clone(),
                            detail: Some(format!(
                                "password right at {}; the second step was not completed",
                                crate::web::format::format_time(p.created_at.0)
                            )),
                        };
                        events::record(c, &event, now)?;
                    }
                    Ok(n)
                })
            })
            .await?)
    }

    /// The mail worker takes the next due message for `lease` seconds.
    pub async fn claim_mail(&self, lease: i64) -> AuthResult<Option<(Message, Option<User>)>> {
        let now = self.now();
        Ok(self
            .db
            .run(move |c| {
                let Some(m) = outbox::claim_due(c, now, lease, 1)?.into_iter().next() else {
                    return Ok(None);
                };
                let user = match m.user_id {
                    Some(id) => users::find(c, UserId(id))?,
                    None => None,
                };
                Ok(Some((m, user)))
            })
            .await?)
    }

    /// Record what became of sending `m`. A temporary failure is tried
    /// again after a growing delay, for 24 hours; a permanent one is
    /// recorded, and logged for the administrators.
    pub async fn mail_outcome(&self, m: &Message, outcome: &Delivery) -> AuthResult<()> {
        let now = self.now();
        let (id, created, attempts, user, claim) = (m.id, m.created_at, m.attempts, m.user_id, m.claimed_until);
        let kind = m.kind.clone();
        let outcome = outcome.clone();
        self.db
            .run(move |c| {
                c.transaction(|c| {
                    let failed = |c: &mut crate::db::Conn, error: &str| {
                        // A worker that lost its claim records nothing: the
                        // message is the new holder's now.
                        if !outbox::mark_failed(c, id, claim, now, error)? {
                            return Ok(());
                        }
                        let e = Event {
                            kind: Kind::MailFailed,
                            user_id: user.map(UserId),
                            username: None,
                            client_address: None,
                            user_agent: None,
                            detail: Some(format!("{kind}: {error}")),
                        };
                        events::record(c, &e, now)
                    };
                    match &outcome {
                        Delivery::Sent => outbox::mark_sent(c, id, now),
                        Delivery::Permanent(error) => failed(c, error),
                        Delivery::Temporary(error) => {
                            let at = now.0 + notice::retry_delay(attempts);
                            if at >= created + notice::GIVE_UP_SECONDS {
                                failed(c, &format!("gave up after 24 hours: {error}"))
                            } else {
                                outbox::retry_at(c, id, claim, UnixTime(at), error).map(|_| ())
                            }
                        }
                    }
                })
            })
            .await?;
        Ok(())
    }

    /// Every message to the user, oldest first.
    pub async fn mail_for(&self, user: UserId) -> AuthResult<Vec<Message>> {
        Ok(self.db.read(move |c| outbox::for_user(c, user)).await?)
    }

    /// The latest messages, for the administrators' mail page.
    pub async fn recent_mail(&self, limit: i64) -> AuthResult<Vec<Message>> {
        Ok(self.db.read(move |c| outbox::recent(c, limit)).await?)
    }
}

/// What a link's MAC covers: the message's kind and reference.
fn link_data(m: &Message) -> String {
    format!("{}:{}", m.kind, m.reference)
}
