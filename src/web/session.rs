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

use std::collections::HashMap;

use actix_session::Session;
use actix_session::storage::{LoadError, SaveError, SessionKey, SessionStore, UpdateError};
use actix_web::cookie::time::Duration;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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

impl SessionStore for DbSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        let h = id_hash(key.as_ref());
        let now = self.clock.time();
        let raw = self
            .db
            .read(move |c| sessions::load(c, &h, now))
            .await
            .map_err(|e| LoadError::Other(e.into()))?;
        match raw {
            None => Ok(None),
            Some(s) => serde_json::from_str(&s)
                .map(|state| Some(tell_why_ended(state)))
                .map_err(|e| LoadError::Deserialization(e.into())),
        }
    }

    async fn save(&self, mut state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        state.remove(keys::REKEY);
        let key = new_key();
        let h = id_hash(&key);
        let json = serde_json::to_string(&state).map_err(|e| SaveError::Serialization(e.into()))?;
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
        let h = id_hash(key.as_ref());
        let rekey = state.remove(keys::REKEY).is_some();
        let json = serde_json::to_string(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
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
        let _ = self.insert(keys::USER, who.user.0);
        let _ = self.insert(keys::EPOCH, who.epoch.0);
        let _ = self.insert(keys::STAGE, Stage::SignedIn);
        let _ = self.insert(keys::SIGNED_IN_AT, now.0);
        let _ = self.insert(keys::PASSWORD_AT, who.password_at.0);
        let _ = self.insert(keys::SID, crate::core::keys::hex(&crate::core::random_bytes::<8>()));
        let _ = self.insert(keys::ADDRESS, who.address);
        if let Some(ua) = who.user_agent {
            let _ = self.insert(keys::USER_AGENT, ua.chars().take(256).collect::<String>());
        }
        let _ = self.insert(keys::PREVIOUS_SIGN_IN, who.previous_sign_in.unwrap_or(0));
        if let Some(f) = flash {
            self.set_flash(f);
        }
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
