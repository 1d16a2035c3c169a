//! The web layer: handlers (`routes/`) that parse a request, call the
//! service (`crate::auth`) and render a page.
//!
//! Modules import downward only: `routes` → `pages`, `extract`, `forms`,
//! `session`, `middleware` → `error`, `csrf`, `cookies`, `format`,
//! `responses`, `headers`, `assets` (leaves). docs/ARCHITECTURE.md draws it.

pub mod assets;
pub mod cookies;
pub mod csrf;
pub mod error;
pub mod extract;
pub mod format;
pub mod forms;
pub mod head;
pub mod headers;
pub mod key_rollover;
pub mod metrics;
pub mod middleware;
pub mod observe;
pub mod pages;
pub mod responses;
pub mod routes;
pub mod session;

use std::sync::Arc;

use crate::auth::Auth;
use crate::core::clock::Clock;
use crate::core::keys::Keyring;
use crate::db::Db;

/// Shared by every request.
pub struct AppState {
    /// The service: every rule about accounts, passwords and factors.
    pub auth: Arc<Auth>,
    /// For the session store and the health check.
    pub db: Db,
    /// CSRF tokens and the session cookie's key.
    pub keys: Arc<Keyring>,
    pub clock: Clock,
    /// `scheme://host[:port]` of the public URL, when configured.
    pub public_origin: Option<String>,
    pub secure_cookies: bool,
    /// Peers whose `X-Forwarded-For` names the real client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Email notifications are on (`--smtp-url`): the Profile tab offers
    /// an address.
    pub mail_enabled: bool,
}
