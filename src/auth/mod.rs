//! The application service: every rule about accounts, passwords, factors,
//! sign-in and administration, behind one type, [`Auth`].
//!
//! It takes the database, the keyring and the clock — never an HTTP
//! request — so the rules can be tested without a server, and the web
//! handlers and the command line share them. Each state change, the
//! sessions it ends and its security-log row are one transaction.
//!
//! - `password`: the password step, with the lockout rules (docs/SECURITY.md)
//! - `sign_in`: pending sign-ins, the second step, completing a sign-in
//! - `factors`: checking a second factor, dispatching on its kind
//! - `totp`: TOTP enrolment
//! - `account`: a user's own changes (password, sessions, codes, 2FA off,
//!   known browsers) and what their pages show
//! - `admin`: administration, shared by the web pages and the CLI
//! - `email`: addresses, the messages' links ("This wasn't me",
//!   verification), the unfinished-sign-in alert, the outbox's outcomes
//! - `hashing`: the bcrypt threads and the timing-safe check

pub mod account;
pub mod admin;
pub mod email;
pub mod factors;
pub mod hashing;
pub mod password;
pub mod sign_in;
pub mod totp;
pub mod webauthn;

#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::core::address::ClientAddress;
use crate::core::clock::Clock;
use crate::core::keys::Keyring;
use crate::core::types::UnixTime;
use crate::db::events::{Event, Kind};
use crate::db::users::User;
use crate::db::{Db, DbError};

pub use hashing::Hasher;

/// What the service was configured with.
#[derive(Clone, Debug)]
pub struct AuthSettings {
    /// Shown in authenticator apps and as the relying party's name.
    pub issuer: String,
    /// `scheme://host[:port]` people use: the WebAuthn origin and relying party.
    pub public_origin: Option<String>,
    /// TOTP steps accepted either side of now.
    pub totp_skew: u8,
}

/// The service. Cheap to share (`Arc`); every method takes `&self`.
pub struct Auth {
    pub(crate) db: Db,
    pub(crate) keys: Arc<Keyring>,
    pub(crate) clock: Clock,
    pub(crate) settings: AuthSettings,
    pub(crate) hasher: Hasher,
    /// The relying party for security keys and passkeys, when the public
    /// URL allows them (a domain name).
    pub(crate) webauthn: Option<webauthn_rs::prelude::Webauthn>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").field("db", &self.db).finish_non_exhaustive()
    }
}

/// What can go wrong inside the service that is not an answer for the
/// user: the database (busy: worth a retry; or broken), or a bug.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0:#}")]
    Internal(anyhow::Error),
}

impl AuthError {
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Self::Internal(e.into())
    }
}

impl From<hashing::HashingError> for AuthError {
    fn from(e: hashing::HashingError) -> Self {
        Self::Internal(e.into())
    }
}

pub type AuthResult<T> = Result<T, AuthError>;

/// Who is asking, as far as the rules care: the network, the browser, and
/// the known-browser token it carries. (The web layer reads it off the
/// request; the CLI has none.)
#[derive(Clone, Debug)]
pub struct Client {
    pub address: ClientAddress,
    pub user_agent: Option<String>,
    /// The known-browser cookie's value, if the browser sent one.
    pub browser_token: Option<String>,
    /// The "remember this browser" cookie's value, if it sent one.
    pub remember_token: Option<String>,
}

impl Client {
    /// A client with nothing known about it (tests, tools).
    pub fn unknown() -> Self {
        Self {
            address: ClientAddress::unknown(),
            user_agent: None,
            browser_token: None,
            remember_token: None,
        }
    }

    /// A security-log entry about `user`, from this client.
    pub fn event(&self, kind: Kind, user: Option<&User>) -> Event {
        Event {
            kind,
            user_id: user.map(|u| u.id),
            username: user.map(|u| u.username.clone()),
            client_address: Some(self.address.shown.clone()),
            user_agent: self.user_agent.clone(),
            detail: None,
        }
    }
}

/// Who makes an administrative change.
#[derive(Clone, Copy, Debug)]
pub enum Actor<'a> {
    /// The user, about their own account.
    User {
        client: &'a Client,
    },
    Admin {
        admin: &'a User,
        client: &'a Client,
    },
    CommandLine,
}

impl Actor<'_> {
    /// A security-log entry about `target`, naming who acted (the user
    /// themselves: no name).
    pub fn event(&self, kind: Kind, target: &User) -> Event {
        match self {
            Actor::User { client } => client.event(kind, Some(target)),
            Actor::Admin { admin, client } => {
                let mut e = client.event(kind, Some(target));
                e.detail = Some(format!("by {}", admin.username));
                e
            }
            Actor::CommandLine => Event {
                kind,
                user_id: Some(target.id),
                username: Some(target.username.clone()),
                client_address: None,
                user_agent: None,
                detail: Some("command line".into()),
            },
        }
    }
}

impl Auth {
    /// The service over `db`. Reads the stored password hashes once, so that
    /// checks take as long as the costliest of them (see `Hasher`).
    pub async fn new(
        db: Db,
        keys: Arc<Keyring>,
        clock: Clock,
        settings: AuthSettings,
        bcrypt_cost: u32,
    ) -> AuthResult<Self> {
        let stored = db.read(crate::db::users::password_hashes).await?;
        let hasher = Hasher::new(bcrypt_cost, &stored);
        let webauthn = match webauthn::relying_party(settings.public_origin.as_deref(), &settings.issuer) {
            Ok(rp) => Some(rp),
            Err(why) => {
                tracing::info!("security keys and passkeys are off: {why}");
                None
            }
        };
        Ok(Self {
            db,
            keys,
            clock,
            settings,
            hasher,
            webauthn,
        })
    }

    pub fn now(&self) -> UnixTime {
        self.clock.time()
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    pub fn keys(&self) -> &Keyring {
        &self.keys
    }

    pub fn settings(&self) -> &AuthSettings {
        &self.settings
    }

    /// Get ready to check passwords (the dummy hash, the timing): the
    /// server calls this before it listens.
    pub async fn warm_up(&self) -> AuthResult<()> {
        Ok(self.hasher.warm_up().await?)
    }

    /// Record a security event on its own (one that changes nothing else:
    /// a sign-out).
    pub async fn record_event(&self, event: Event) -> AuthResult<()> {
        let now = self.now();
        Ok(self.db.run(move |c| crate::db::events::record(c, &event, now)).await?)
    }

    /// Whether the database answers.
    pub async fn healthy(&self) -> bool {
        self.db.ping().await
    }

    /// Tidy up rows nobody can use any more: expired sessions, pending
    /// sign-ins and known browsers, and stale throttling counters.
    pub async fn sweep(&self) -> AuthResult<()> {
        // Sign-ins left at the second step get their alert before they go.
        while self.finish_unfinished_sign_ins().await? > 0 {}
        let now = self.now();
        self.db
            .run(move |c| {
                crate::db::sessions::delete_expired(c, now)?;
                crate::db::pending::delete_expired(c, now)?;
                crate::db::outbox::delete_old(c, now)?;
                crate::db::browsers::delete_expired(c, now)?;
                crate::db::ceremonies::delete_expired(c, now)?;
                crate::db::throttles::delete_stale(c, now.0, 2 * 24 * 60 * 60)?;
                Ok(())
            })
            .await?;
        Ok(())
    }

    /// Hash a new password at the configured cost, on the hashing threads.
    pub async fn hash_password(&self, password: crate::core::types::Password) -> AuthResult<String> {
        Ok(self.hasher.hash(password).await?)
    }

    /// The key that throttling counts an account under: a keyed hash of
    /// the name as typed (lower-cased), whether or not such a user exists —
    /// so unknown names are counted exactly like real ones, and a password
    /// typed into the username field is never stored readable.
    pub fn account_key(&self, typed: &str) -> String {
        account_key(&self.keys, typed)
    }
}

/// See [`Auth::account_key`].
pub fn account_key(keys: &Keyring, typed: &str) -> String {
    let normal = typed.trim().to_lowercase();
    crate::core::keys::hex(&keys.mac("throttle-account", normal.as_bytes())[..16])
}

/// The same under the key `key_id` of the file, if it holds that key's
/// master key (key rotation moves counters from the old key's name).
pub fn account_key_under(keys: &Keyring, key_id: &str, typed: &str) -> Option<String> {
    let normal = typed.trim().to_lowercase();
    let mac = keys.mac_with(key_id, "throttle-account", normal.as_bytes())?;
    Some(crate::core::keys::hex(&mac[..16]))
}

/// "al…(9)": enough for an administrator to recognise a typo of a real
/// name, too little to be a password.
pub fn mask(typed: &str) -> String {
    let shown: String = typed.chars().take(2).collect();
    format!("{shown}…({})", typed.chars().count())
}
