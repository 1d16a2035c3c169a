//! Latchkey: a self-hosted sign-in dashboard with passwords and TOTP
//! two-factor authentication.
//!
//! Layout: `core` (domain rules, no web or database types), `db` (storage),
//! `web` (handlers, templates, middleware), `startup` (the `Application`),
//! `cli` (the `latchkey` command).

pub mod cli;
pub mod config;
pub mod core;
pub mod db;
pub mod schema;
pub mod startup;
pub mod web;
