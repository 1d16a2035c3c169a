//! Latchkey: a self-hosted sign-in dashboard with passwords and TOTP
//! two-factor authentication.
//!
//! Layout (docs/ARCHITECTURE.md): `core` (domain rules, no web or database
//! types), `db` (storage), `auth` (the application service: every rule about
//! accounts, passwords and factors), `web` (handlers, templates,
//! middleware), `startup` (the `Application`), `cli` (the `latchkey` command).

pub mod auth;
pub mod cli;
pub mod config;
pub mod core;
pub mod db;
pub mod mail;
pub mod metrics;
pub mod ops;
pub mod schema;
pub mod startup;
pub mod web;
