//! The web layer: thin handlers that parse, call the core, and render.

pub mod assets;
pub mod auth;
pub mod error;
pub mod forms;
pub mod hashing;
pub mod middleware;
pub mod pages;
pub mod routes;
pub mod session;
pub mod sudo;

use std::sync::Arc;

use crate::core::clock::Clock;
use crate::core::keys::Keyring;
use crate::db::Db;

/// Shared by every request.
pub struct AppState {
    pub db: Db,
    pub keys: Arc<Keyring>,
    pub clock: Clock,
    pub issuer: String,
    pub bcrypt_cost: u32,
    pub totp_skew: u8,
    /// Checked when the username is unknown, so failures take equally long.
    pub dummy_hash: String,
    /// `scheme://host[:port]` of the public URL, when configured.
    pub public_origin: Option<String>,
    pub secure_cookies: bool,
    /// Peers whose `X-Forwarded-For` names the real client.
    pub trusted_proxies: Vec<std::net::IpAddr>,
}
