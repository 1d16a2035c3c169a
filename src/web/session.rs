//! Sessions: state on the server, a key in the cookie.
//!
//! actix-session handles the cookie (encrypted, HttpOnly, SameSite=Lax) and
//! key renewal; `DbSessionStore` keeps the state in the `sessions` table, so
//! a session ends for real when its row is deleted — on logout, 2FA disable,
//! password change or an administrator's reset — on every instance at once.
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
use crate::db::{Db, sessions};

/// Idle timeout: a session unused for this long is gone.
pub const IDLE_SECONDS: i64 = 30 * 60;
/// Absolute lifetime of a signed-in session.
pub const ABSOLUTE_SECONDS: i64 = 12 * 60 * 60;
/// A login waiting for its second factor dies after this long.
pub const PENDING_SECONDS: i64 = 5 * 60;
/// Wrong codes a pending login may send before it dies.
pub const PENDING_MAX_FAILURES: u32 = 5;
/// "Sudo mode": how long a password entry allows sensitive actions.
pub const SUDO_SECONDS: i64 = 10 * 60;

type State = HashMap<String, String>;

#[derive(Clone)]
pub struct DbSessionStore {
    pub db: Db,
    pub clock: Clock,
}

fn id_hash(key: &str) -> String {
    crate::core::keys::hex(&Sha256::digest(key.as_bytes()))
}

fn user_of(state: &State) -> Option<i64> {
    state.get(keys::USER).and_then(|v| v.parse().ok())
}

fn ttl_seconds(ttl: &Duration) -> i64 {
    ttl.whole_seconds().clamp(1, IDLE_SECONDS)
}

impl SessionStore for DbSessionStore {
    async fn load(&self, key: &SessionKey) -> Result<Option<State>, LoadError> {
        let h = id_hash(key.as_ref());
        let now = self.clock.now();
        let raw = self
            .db
            .run(move |c| sessions::load(c, &h, now))
            .await
            .map_err(|e| LoadError::Other(e.into()))?;
        match raw {
            None => Ok(None),
            Some(s) => serde_json::from_str(&s)
                .map(Some)
                .map_err(|e| LoadError::Deserialization(e.into())),
        }
    }

    async fn save(&self, state: State, ttl: &Duration) -> Result<SessionKey, SaveError> {
        let key = URL_SAFE_NO_PAD.encode(crate::core::random_bytes::<32>());
        let h = id_hash(&key);
        let json = serde_json::to_string(&state).map_err(|e| SaveError::Serialization(e.into()))?;
        let now = self.clock.now();
        let expires = now + ttl_seconds(ttl);
        let user = user_of(&state);
        self.db
            .run(move |c| sessions::insert(c, &h, user, &json, now, expires))
            .await
            .map_err(|e| SaveError::Other(e.into()))?;
        SessionKey::try_from(key).map_err(|e| SaveError::Other(e.into()))
    }

    async fn update(&self, key: SessionKey, state: State, ttl: &Duration) -> Result<SessionKey, UpdateError> {
        let h = id_hash(key.as_ref());
        let json = serde_json::to_string(&state).map_err(|e| UpdateError::Serialization(e.into()))?;
        let now = self.clock.now();
        let expires = now + ttl_seconds(ttl);
        let user = user_of(&state);
        // A revoked session is not brought back: the update touches nothing,
        // and the next request with this cookie finds no state.
        self.db
            .run(move |c| sessions::update(c, &h, user, &json, now, expires))
            .await
            .map_err(|e| UpdateError::Other(e.into()))?;
        Ok(key)
    }

    async fn update_ttl(&self, key: &SessionKey, ttl: &Duration) -> Result<(), anyhow::Error> {
        let h = id_hash(key.as_ref());
        let now = self.clock.now();
        let expires = now + ttl_seconds(ttl);
        self.db.run(move |c| sessions::touch(c, &h, now, expires)).await?;
        Ok(())
    }

    async fn delete(&self, key: &SessionKey) -> Result<(), anyhow::Error> {
        let h = id_hash(key.as_ref());
        self.db.run(move |c| sessions::delete(c, &h)).await?;
        Ok(())
    }
}

/// Names of the values kept in a session.
pub mod keys {
    pub const USER: &str = "uid";
    pub const STAGE: &str = "stage";
    pub const SIGNED_IN_AT: &str = "signed_in_at";
    pub const PASSWORD_AT: &str = "password_at";
    pub const PENDING_AT: &str = "pending_at";
    pub const PENDING_FAILURES: &str = "pending_failures";
    pub const NEXT: &str = "next";
    pub const FLASH: &str = "flash";
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

/// Typed access to the session's values.
pub trait SessionExt {
    fn stage(&self) -> Option<Stage>;
    fn user_id(&self) -> Option<i64>;
    fn int(&self, key: &str) -> i64;
    fn set_flash(&self, flash: Flash);
    fn take_flash(&self) -> Option<Flash>;
    /// Replace the whole session with a fully signed-in one under a new key.
    fn sign_in(&self, user_id: i64, now: i64, password_at: i64);
    /// Replace the whole session with a pending-second-factor one under a new key.
    fn begin_second_factor(&self, user_id: i64, now: i64, next: Option<&str>);
}

impl SessionExt for Session {
    fn stage(&self) -> Option<Stage> {
        self.get::<Stage>(keys::STAGE).ok().flatten()
    }

    fn user_id(&self) -> Option<i64> {
        self.get::<i64>(keys::USER).ok().flatten()
    }

    fn int(&self, key: &str) -> i64 {
        self.get::<i64>(key).ok().flatten().unwrap_or(0)
    }

    fn set_flash(&self, flash: Flash) {
        let _ = self.insert(keys::FLASH, flash);
    }

    fn take_flash(&self) -> Option<Flash> {
        let f = self.get::<Flash>(keys::FLASH).ok().flatten();
        if f.is_some() {
            self.remove(keys::FLASH);
        }
        f
    }

    fn sign_in(&self, user_id: i64, now: i64, password_at: i64) {
        let flash = self.take_flash();
        self.clear();
        self.renew();
        let _ = self.insert(keys::USER, user_id);
        let _ = self.insert(keys::STAGE, Stage::SignedIn);
        let _ = self.insert(keys::SIGNED_IN_AT, now);
        let _ = self.insert(keys::PASSWORD_AT, password_at);
        if let Some(f) = flash {
            self.set_flash(f);
        }
    }

    fn begin_second_factor(&self, user_id: i64, now: i64, next: Option<&str>) {
        self.clear();
        self.renew();
        let _ = self.insert(keys::USER, user_id);
        let _ = self.insert(keys::STAGE, Stage::Pending);
        let _ = self.insert(keys::PENDING_AT, now);
        let _ = self.insert(keys::PASSWORD_AT, now);
        let _ = self.insert(keys::PENDING_FAILURES, 0);
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
