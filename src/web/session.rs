//! Sessions: state on the server, a key in the cookie.
//!
//! actix-session handles the cookie (encrypted, HttpOnly, SameSite=Lax) and
//! key renewal; `DbSessionStore` keeps the state in the `sessions` table, so
//! a session ends for real when its row is deleted — on logout, 2FA disable,
//! password change — or, on an administrator's reset, emptied of its user
//! and left with only the reason (told once to that browser), on every
//! instance at once.
//! The table is keyed by SHA-256 of the session key: reading the database
//! gives nobody a usable cookie.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock};

use actix_session::Session;
use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::auth::sign_in::{SessionMove, SignedIn};
use crate::core::clock::Clock;
use crate::core::limits::SESSION_IDLE_SECONDS as IDLE_SECONDS;
use crate::core::types::{SessionEpoch, UnixTime, UserId};
use crate::db::Db;
use crate::db::sessions::{self, SessionRow};

type State = HashMap<String, String>;

#[derive(Clone)]
pub struct DbSessionStore {
    pub db: Db,
    pub clock: Clock,
}

fn id_hash(key: &str) -> String {
    crate::core::keys::hex(&Sha256::digest(key.as_bytes()))
}

/// A fresh session key: 256 random bits.
fn new_key() -> String {
    URL_SAFE_NO_PAD.encode(crate::core::random_bytes::<32>())
}

fn user_of(state: &State) -> Option<UserId> {
    state.get(keys::USER).and_then(|v| v.parse().ok()).map(UserId)
}

fn ttl_seconds(ttl: &Duration) -> i64 {
    ttl.whole_seconds().clamp(1, IDLE_SECONDS)
}

/// A state as stored: keys in order, so the same state is always the same
/// text (`SessionMove`'s digest compares them).
fn encode(state: &State) -> Result<String, serde_json::Error> {
    serde_json::to_string(&state.iter().collect::<BTreeMap<_, _>>())
}

fn digest(json: &str) -> String {
    crate::core::keys::hex(&Sha256::digest(json.as_bytes()))
}

/// The values only the store reads and writes (`load` adds the row's id,
/// `SessionExt` the markers): never stored.
fn take_internal(state: &mut State) -> (bool, Option<Moved>) {
    state.remove(keys::ROW);
    let rekey = state.remove(keys::REKEY).is_some();
    let moved = state
        .remove(keys::MOVED)
        .and_then(|m| serde_json::from_str::<String>(&m).ok())
        .and_then(|m| Moved::parse(&m));
    (rekey, moved)
}

/// Where a sign-in's own commit moved this session (`keys::MOVED`): the new
/// key, and the digest of the state it wrote there.
struct Moved {
    key: String,
    digest: String,
}

impl Moved {
    fn marker(&self) -> String {
        format!("{}.{}", self.key, self.digest)
    }

    /// Session keys are base64url, digests hex: neither has a dot.
    fn parse(marker: &str) -> Option<Self> {
        let (key, digest) = marker.split_once('.')?;
        Some(Self {
            key: key.to_string(),
            digest: digest.to_string(),
        })
    }
}

impl SessionStore for DbSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        let h = id_hash(key.as_ref());
        let now = self.clock.time();
        let raw = self
            .db
            .read({
                let h = h.clone();
                move |c| sessions::load(c, &h, now)
            })
            .await
            .map_err(|e| LoadError::Other(e.into()))?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let mut state = tell_why_ended(serde_json::from_str(&raw).map_err(|e| LoadError::Deserialization(e.into()))?);
        // None is ever stored (`take_internal` before every write); should
        // one be, it still means nothing.
        let _ = take_internal(&mut state);
        // Which row this is, for a sign-in that moves it in its own commit
        // (`SessionExt::prepare_move`); taken out again before any write.
        let row = serde_json::to_string(&h).map_err(|e| LoadError::Other(e.into()))?;
        state.insert(keys::ROW.to_string(), row);
        Ok(Some(state))
    }

    async fn save(&self, mut state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        // A new session: it was loaded from no row, so nothing moved it.
        let _ = take_internal(&mut state);
        let key = new_key();
        let h = id_hash(&key);
        let json = encode(&state).map_err(|e| SaveError::Serialization(e.into()))?;
        let now = self.clock.time();
        let expires = now.plus(ttl_seconds(ttl));
        let user = user_of(&state);
        self.db
            .run(move |c| {
                let row = SessionRow {
                    id_hash: &h,
                    user,
                    state: &json,
                    expires_at: expires,
                };
                sessions::insert(c, &row, now)
            })
            .await
            .map_err(|e| SaveError::Other(e.into()))?;
        SessionKey::try_from(key).map_err(|e| SaveError::Other(e.into()))
    }

    async fn update(&self, key: SessionKey, mut state: State, ttl: &Duration) -> Result<SessionKey, UpdateError> {
        let (rekey, moved) = take_internal(&mut state);
        let json = encode(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
        // Moved by the sign-in's own commit (`SessionExt::prepare_move`):
        // the old key's row is gone, and the new key's row holds this very
        // state unless the handler changed it afterwards. Only then, or on
        // a re-key asked for since, is there anything left to write: to
        // the new key's row, as below.
        let key = match moved {
            Some(m) => {
                let unchanged = digest(&json) == m.digest;
                let key = SessionKey::try_from(m.key).map_err(|e| UpdateError::Other(e.into()))?;
                if unchanged && !rekey {
                    return Ok(key);
                }
                key
            }
            None => key,
        };
        let h = id_hash(key.as_ref());
        let now = self.clock.time();
        let expires = now.plus(ttl_seconds(ttl));
        let user = user_of(&state);
        if rekey {
            // `SessionExt::rekey`: the state moves to a new key in one
            // statement, and the old key is dead from that commit on.
            let new = new_key();
            let new_h = id_hash(&new);
            self.db
                .run(move |c| {
                    let row = SessionRow {
                        id_hash: &new_h,
                        user,
                        state: &json,
                        expires_at: expires,
                    };
                    sessions::rekey(c, &h, &row, now)
                })
                .await
                .map_err(|e| UpdateError::Other(e.into()))?;
            return SessionKey::try_from(new).map_err(|e| UpdateError::Other(e.into()));
        }
        // A revoked session is not brought back: the update touches nothing,
        // and the next request with this cookie finds no state.
        self.db
            .run(move |c| {
                let row = SessionRow {
                    id_hash: &h,
                    user,
                    state: &json,
                    expires_at: expires,
                };
                sessions::update(c, &row, now)
            })
            .await
            .map_err(|e| UpdateError::Other(e.into()))?;
        Ok(key)
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        let h = id_hash(key.as_ref());
        let now = self.clock.time();
        let expires = now.plus(ttl_seconds(ttl));
        self.db.run(move |c| sessions::touch(c, &h, now, expires)).await?;
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        let h = id_hash(key.as_ref());
        self.db.run(move |c| sessions::delete(c, &h)).await?;
        Ok(())
    }
}

/// A session an administrator ended (`sessions::end_all`) comes back as an
/// anonymous one whose message says why: the login page shows it, and
/// taking it writes the row over. Only the browser holding this session's
/// key gets here.
fn tell_why_ended(mut state: State) -> State {
    let Some(why) = state.remove(sessions::ENDED_KEY) else {
        return state;
    };
    let text = match serde_json::from_str::<String>(&why)
        .ok()
        .and_then(|w| sessions::Ended::parse(&w))
    {
        Some(sessions::Ended::MfaReset) => ENDED_BY_MFA_RESET,
        _ => ENDED_BY_ADMINISTRATOR,
    };
    if let Ok(flash) = serde_json::to_string(&Flash::info(text)) {
        state.insert(keys::FLASH.to_string(), flash);
    }
    state
}

/// What the sign-in page tells the browser of a session ended by an
/// administrator's reset (`sessions::Ended`). Not which reset: whoever
/// holds the old cookie — perhaps the thief the reset was for — must not
/// learn that the account now signs in with a password alone. The owner
/// hears the rest by email and at the next sign-in.
pub const ENDED_BY_MFA_RESET: &str = ENDED_BY_ADMINISTRATOR;
pub const ENDED_BY_ADMINISTRATOR: &str = "Your session was ended by an administrator. Sign in again.";

/// Names of the values kept in a session.
pub mod keys {
    pub const USER: &str = "uid";
    pub const STAGE: &str = "stage";
    pub const SIGNED_IN_AT: &str = "signed_in_at";
    pub const PASSWORD_AT: &str = "password_at";
    /// The random id of the pending sign-in (`pending_sign_ins`).
    pub const PENDING: &str = "pending";
    /// Whether the pending sign-in is a protected one (changes the prompt).
    pub const PROTECTED: &str = "protected";
    pub const NEXT: &str = "next";
    pub const FLASH: &str = "flash";
    /// A random public id for the sessions list and the per-session
    /// password counter (not the session key).
    pub const SID: &str = "sid";
    pub const ADDRESS: &str = "address";
    pub const USER_AGENT: &str = "user_agent";
    /// The user's session epoch when this session was signed in.
    pub const EPOCH: &str = "epoch";
    /// A signed-out browser's nonce that owns its passkey ceremony.
    pub const PASSKEY_NONCE: &str = "passkey_nonce";
    /// New recovery codes, sealed, until their one showing.
    pub const FRESH_CODES: &str = "fresh_codes";
    /// Recovery codes were shown: `true` for the first set (2FA just
    /// turned on), `false` for a new set. Read and dropped by Copied.
    pub const CODES_SHOWN: &str = "codes_shown";
    /// The id of the sign-in before this session's (`0`: there was none),
    /// for "Previous sign-in".
    pub const PREVIOUS_SIGN_IN: &str = "previous_sign_in";
    /// A new account's temporary password, sealed, until its one showing.
    pub const CREATED_USER: &str = "created_user";
    /// Set by `SessionExt::rekey`, read and dropped by the store: never stored.
    pub const REKEY: &str = "_rekey";
    /// The id hash of the row this session was loaded from: set by the
    /// store's `load`, dropped before every write.
    pub const ROW: &str = "_row";
    /// Set by `SessionExt::finish_move`: the key a sign-in's commit moved
    /// this session to, and the digest of the state it wrote. Read and
    /// dropped by the store: never stored.
    pub const MOVED: &str = "_moved";
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// Password accepted, second factor outstanding.
    Pending,
    /// Fully signed in.
    SignedIn,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlashKind {
    Success,
    Info,
    Error,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Flash {
    pub kind: FlashKind,
    pub text: String,
}

impl Flash {
    pub fn success(text: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Success,
            text: text.into(),
        }
    }
    pub fn info(text: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Info,
            text: text.into(),
        }
    }
    pub fn error(text: impl Into<String>) -> Self {
        Self {
            kind: FlashKind::Error,
            text: text.into(),
        }
    }
    pub fn is_error(&self) -> bool {
        self.kind == FlashKind::Error
    }
    pub fn class(&self) -> &'static str {
        match self.kind {
            FlashKind::Success => "flash flash-success",
            FlashKind::Info => "flash flash-info",
            FlashKind::Error => "flash flash-error",
        }
    }
}

/// Who a session is signed in as, and how: the user and their session
/// epoch (read from the row whose password or code was just checked), when
/// the password was checked, and from where.
pub struct SignInAs<'a> {
    pub user: UserId,
    pub epoch: SessionEpoch,
    pub password_at: UnixTime,
    pub address: &'a str,
    pub user_agent: Option<&'a str>,
    /// The security-log id of the account's sign-in before this one.
    pub previous_sign_in: Option<i64>,
}

/// Typed access to the session's values.
pub trait SessionExt {
    fn stage(&self) -> Option<Stage>;
    fn user_id(&self) -> Option<UserId>;
    fn int(&self, key: &str) -> i64;
    fn text(&self, key: &str) -> Option<String>;
    fn set_flash(&self, flash: Flash);
    /// Move this session to a new key when the response is written (after a
    /// sign-in, a password change, 2FA changes: no key that existed before
    /// works after). It replaces actix-session's `renew`, which deletes the
    /// old row and inserts a new one in two commits; `DbSessionStore::update`
    /// does it in one statement.
    fn rekey(&self);
    fn take_flash(&self) -> Option<Flash>;
    /// Replace the whole session with a fully signed-in one under a new key.
    fn sign_in(&self, who: &SignInAs<'_>, now: UnixTime);
    /// Replace the whole session with a pending-second-factor one under a
    /// new key: `pending` is the pending sign-in's random id.
    fn begin_second_factor(&self, pending: &str, protected: bool, next: Option<&str>);
    /// Prepare this session to be signed in by the commit that completes
    /// its sign-in (`auth::sign_in::SessionMove`): that commit deletes this
    /// session's row and writes the signed-in state under a new key, so the
    /// store has nothing left to write. `None` for a session that has no
    /// row yet. `flash` gives the message the signed-in session carries
    /// (`None`: the one this session has, if any).
    fn prepare_move(
        &self,
        address: &str,
        user_agent: Option<&str>,
        now: UnixTime,
        flash: impl Fn(&SignedIn) -> Option<Flash> + Send + 'static,
    ) -> Option<(SessionMove, MoveTicket)>;
    /// After the commit: this session becomes what it wrote, under the new
    /// key. `false` (nothing changed) if the commit did not move it; sign
    /// in with `sign_in` then.
    fn finish_move(&self, ticket: &MoveTicket) -> bool;
}

/// The handler's half of a `SessionMove`: the new key, and what the commit
/// wrote under it (set only if it ran).
pub struct MoveTicket {
    key: String,
    written: Arc<OnceLock<Written>>,
}

struct Written {
    values: Vec<(&'static str, serde_json::Value)>,
    /// The state as the commit wrote it.
    json: String,
}

/// The values of a fully signed-in session. One function for `sign_in`
/// and `prepare_move`, so both write the same state.
fn signed_in_values(
    who: &SignInAs<'_>,
    now: UnixTime,
    sid: String,
    flash: Option<Flash>,
) -> Vec<(&'static str, serde_json::Value)> {
    use serde_json::Value;
    let mut v = vec![
        (keys::USER, Value::from(who.user.0)),
        (keys::EPOCH, Value::from(who.epoch.0)),
        (
            keys::STAGE,
            serde_json::to_value(Stage::SignedIn).unwrap_or(Value::Null),
        ),
        (keys::SIGNED_IN_AT, Value::from(now.0)),
        (keys::PASSWORD_AT, Value::from(who.password_at.0)),
        (keys::SID, Value::from(sid)),
        (keys::ADDRESS, Value::from(who.address)),
        (keys::PREVIOUS_SIGN_IN, Value::from(who.previous_sign_in.unwrap_or(0))),
    ];
    if let Some(ua) = who.user_agent {
        v.push((keys::USER_AGENT, Value::from(ua.chars().take(256).collect::<String>())));
    }
    if let Some(f) = flash.and_then(|f| serde_json::to_value(f).ok()) {
        v.push((keys::FLASH, f));
    }
    v
}

/// A random public id for a session (`keys::SID`).
fn new_sid() -> String {
    crate::core::keys::hex(&crate::core::random_bytes::<8>())
}

impl SessionExt for Session {
    fn stage(&self) -> Option<Stage> {
        self.get::<Stage>(keys::STAGE).ok().flatten()
    }

    fn user_id(&self) -> Option<UserId> {
        self.get::<i64>(keys::USER).ok().flatten().map(UserId)
    }

    fn int(&self, key: &str) -> i64 {
        self.get::<i64>(key).ok().flatten().unwrap_or(0)
    }

    fn text(&self, key: &str) -> Option<String> {
        self.get::<String>(key).ok().flatten()
    }

    fn set_flash(&self, flash: Flash) {
        let _ = self.insert(keys::FLASH, flash);
    }

    fn rekey(&self) {
        let _ = self.insert(keys::REKEY, true);
    }

    fn take_flash(&self) -> Option<Flash> {
        let f = self.get::<Flash>(keys::FLASH).ok().flatten();
        if f.is_some() {
            self.remove(keys::FLASH);
        }
        f
    }

    fn sign_in(&self, who: &SignInAs<'_>, now: UnixTime) {
        let flash = self.take_flash();
        self.clear();
        self.rekey();
        for (k, v) in signed_in_values(who, now, new_sid(), flash) {
            let _ = self.insert(k, v);
        }
    }

    fn prepare_move(
        &self,
        address: &str,
        user_agent: Option<&str>,
        now: UnixTime,
        flash: impl Fn(&SignedIn) -> Option<Flash> + Send + 'static,
    ) -> Option<(SessionMove, MoveTicket)> {
        let from = self.text(keys::ROW)?;
        let kept = self.get::<Flash>(keys::FLASH).ok().flatten();
        let key = new_key();
        let written = Arc::new(OnceLock::new());
        let (sid, address, user_agent) = (new_sid(), address.to_string(), user_agent.map(str::to_string));
        let out = written.clone();
        let state = move |done: &SignedIn| {
            let who = SignInAs {
                user: done.user.id,
                epoch: done.user.session_epoch,
                password_at: done.password_at,
                address: &address,
                user_agent: user_agent.as_deref(),
                previous_sign_in: done.previous_sign_in,
            };
            let values = signed_in_values(&who, now, sid, flash(done).or(kept));
            let state: State = values.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            // This runs on the database's writer: the digest is left to
            // `finish_move`, on the request's thread.
            let json = encode(&state).ok()?;
            out.set(Written {
                values,
                json: json.clone(),
            })
            .ok()?;
            Some((json, now.plus(IDLE_SECONDS)))
        };
        let moving = SessionMove {
            from,
            to: id_hash(&key),
            state: Box::new(state),
        };
        Some((moving, MoveTicket { key, written }))
    }

    fn finish_move(&self, ticket: &MoveTicket) -> bool {
        let Some(w) = ticket.written.get() else {
            return false;
        };
        self.clear();
        for (k, v) in &w.values {
            let _ = self.insert(*k, v);
        }
        let moved = Moved {
            key: ticket.key.clone(),
            digest: digest(&w.json),
        };
        let _ = self.insert(keys::MOVED, moved.marker());
        true
    }

    fn begin_second_factor(&self, pending: &str, protected: bool, next: Option<&str>) {
        self.clear();
        self.rekey();
        let _ = self.insert(keys::STAGE, Stage::Pending);
        let _ = self.insert(keys::PENDING, pending);
        if protected {
            let _ = self.insert(keys::PROTECTED, true);
        }
        if let Some(n) = next {
            let _ = self.insert(keys::NEXT, n);
        }
    }
}

/// A `next` path is followed only when it stays on this site: one leading
/// slash, no scheme, no backslash, no control characters.
pub fn safe_next(next: Option<&str>) -> Option<String> {
    let n = next?;
    let ok = n.starts_with('/')
        && !n.starts_with("//")
        && !n.starts_with("/\\")
        && n.len() <= 512
        && n.bytes().all(|b| b.is_ascii_graphic())
        && !n.contains('\\')
        && !n.starts_with("/login")
        && !n.starts_with("/logout");
    ok.then(|| n.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_info_reads_stored_state() {
        let state =
            r#"{"uid":"5","stage":"\"signed_in\"","signed_in_at":"100","sid":"\"ab\"","address":"\"10.0.0.1\""}"#;
        let info = SessionInfo::from_state(state, 5000).unwrap();
        assert_eq!(
            (info.sid.as_str(), info.address.as_str(), info.signed_in_at),
            ("ab", "10.0.0.1", 100)
        );
        assert_eq!(info.last_active, 5000 - IDLE_SECONDS);
        assert!(SessionInfo::from_state(r#"{"stage":"\"pending\""}"#, 1).is_none());
    }

    /// The store on a real SQLite file (the server's writer and readers).
    fn store() -> (DbSessionStore, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open(&crate::db::DatabaseUrl::Sqlite(dir.path().join("s.db"))).unwrap();
        let clock = Clock::manual(1_800_000_000);
        (DbSessionStore { db, clock }, dir)
    }

    fn state(pairs: &[(&str, &str)]) -> State {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    async fn stored(store: &DbSessionStore, key: &str) -> Option<String> {
        let (h, now) = (id_hash(key), store.clock.time());
        store.db.read(move |c| sessions::load(c, &h, now)).await.unwrap()
    }

    /// The store's `update` of the session under `key`, as the middleware
    /// calls it at the end of a request.
    async fn update(store: &DbSessionStore, key: &str, state: State) -> SessionKey {
        let key = SessionKey::try_from(key.to_string()).unwrap();
        store
            .update(key, state, &Duration::seconds(IDLE_SECONDS))
            .await
            .unwrap()
    }

    #[test]
    fn internal_values_are_never_stored() {
        let (store, _dir) = store();
        actix_web::rt::System::new().block_on(async {
            let ttl = Duration::seconds(IDLE_SECONDS);
            let key = store.save(state(&[("a", "1")]), &ttl).await.unwrap();
            let mut loaded = store.load(&key).await.unwrap().unwrap();
            assert_eq!(loaded[keys::ROW], format!("\"{}\"", id_hash(key.as_ref())));
            loaded.insert("b".into(), "2".into());
            loaded.insert(keys::REKEY.into(), "true".into());
            let moved = store.update(key, loaded, &ttl).await.unwrap();
            let json = stored(&store, moved.as_ref()).await.unwrap();
            assert_eq!(json, r#"{"a":"1","b":"2"}"#);
        });
    }

    /// A session a sign-in's commit moved (`SessionExt::finish_move`): the
    /// store writes nothing when the state is what that commit wrote, and
    /// writes it over the new key's row when the handler changed it since.
    #[test]
    fn a_moved_session_is_written_only_if_it_changed_since() {
        let (store, _dir) = store();
        actix_web::rt::System::new().block_on(async {
            let ttl = Duration::seconds(IDLE_SECONDS);
            let now = store.clock.time();
            let old = store.save(state(&[("stage", "\"pending\"")]), &ttl).await.unwrap();
            // What the commit does: the old row goes, the new one is written
            // (with an expiry the store would not choose, to see whether it
            // writes again).
            // (No user: a row with one needs that user in `users`.)
            let signed_in = state(&[("sid", "\"ab\""), ("stage", "\"signed_in\"")]);
            let json = encode(&signed_in).unwrap();
            let new = new_key();
            let (from, to, written) = (id_hash(old.as_ref()), id_hash(&new), json.clone());
            store
                .db
                .run(move |c| {
                    let row = SessionRow {
                        id_hash: &to,
                        user: None,
                        state: &written,
                        expires_at: now.plus(60),
                    };
                    sessions::replace(c, &from, &row, now)
                })
                .await
                .unwrap();
            let marker = Moved {
                key: new.clone(),
                digest: digest(&json),
            };
            let with_marker = |mut s: State| {
                s.insert(keys::MOVED.into(), serde_json::to_string(&marker.marker()).unwrap());
                s.insert(keys::ROW.into(), serde_json::to_string(&id_hash(old.as_ref())).unwrap());
                s
            };
            let expires = |key: String| {
                let db = store.db.clone();
                async move {
                    let h = id_hash(&key);
                    db.read(move |c| {
                        use diesel::prelude::*;
                        Ok(crate::schema::sessions::table
                            .find(h)
                            .select(crate::schema::sessions::expires_at)
                            .get_result::<i64>(c)?)
                    })
                    .await
                    .unwrap()
                }
            };

            // Unchanged: the new key comes back, and nothing is written.
            let key = update(&store, old.as_ref(), with_marker(signed_in.clone())).await;
            assert_eq!(key.as_ref(), new);
            assert_eq!(expires(new.clone()).await, now.plus(60).0);
            assert_eq!(stored(&store, &new).await.unwrap(), json);
            assert_eq!(stored(&store, old.as_ref()).await, None);

            // Changed after the commit: written over the new key's row.
            let mut changed = signed_in.clone();
            changed.insert("flash".into(), "\"x\"".into());
            let key = update(&store, old.as_ref(), with_marker(changed.clone())).await;
            assert_eq!(key.as_ref(), new);
            assert_eq!(stored(&store, &new).await.unwrap(), encode(&changed).unwrap());
            assert_eq!(expires(new.clone()).await, now.plus(IDLE_SECONDS).0);

            // A re-key asked for after the commit moves it on again.
            let mut again = with_marker(changed.clone());
            again.insert(keys::REKEY.into(), "true".into());
            let newer = update(&store, old.as_ref(), again).await;
            assert_ne!(newer.as_ref(), new);
            assert_eq!(stored(&store, &new).await, None);
            assert_eq!(stored(&store, newer.as_ref()).await.unwrap(), encode(&changed).unwrap());
            assert_eq!(stored(&store, old.as_ref()).await, None);
        });
    }

    #[test]
    fn next_must_stay_on_site() {
        assert_eq!(safe_next(Some("/settings/account")), Some("/settings/account".into()));
        assert_eq!(safe_next(Some("/x?y=1")), Some("/x?y=1".into()));
        for bad in [
            "//evil.example",
            "/\\evil.example",
            "https://evil.example",
            "evil",
            "/a b",
            "/\n",
            "/login",
            "javascript:alert(1)",
            "/%0d\\x",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(safe_next(None), None);
    }
}

/// One of a user's sessions, as the Sessions tab shows it.
#[derive(Debug)]
pub struct SessionInfo {
    pub sid: String,
    pub browser: String,
    pub address: String,
    pub signed_in_at: i64,
    pub last_active: i64,
}

impl SessionInfo {
    /// Read a stored state (actix-session keeps each value JSON-encoded).
    /// `None` for sessions that are not signed in.
    pub fn from_state(state: &str, expires_at: i64) -> Option<Self> {
        let map: State = serde_json::from_str(state).ok()?;
        let text = |k: &str| map.get(k).and_then(|v| serde_json::from_str::<String>(v).ok());
        let int = |k: &str| map.get(k).and_then(|v| v.parse::<i64>().ok());
        if map.get(keys::STAGE).and_then(|v| serde_json::from_str::<Stage>(v).ok()) != Some(Stage::SignedIn) {
            return None;
        }
        Some(Self {
            sid: text(keys::SID).unwrap_or_default(),
            browser: crate::web::format::describe_user_agent(text(keys::USER_AGENT).as_deref().unwrap_or("")),
            address: text(keys::ADDRESS).unwrap_or_else(|| "unknown".into()),
            signed_in_at: int(keys::SIGNED_IN_AT).unwrap_or(0),
            // The idle deadline moves with every request.
            last_active: expires_at - IDLE_SECONDS,
        })
    }
}
