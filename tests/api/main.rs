//! The one integration-test binary: every test starts the real server on a
//! free port with its own SQLite file and talks to it over HTTP.

mod helpers;
mod ops_support;

mod hostile;

mod admin;
mod backup;
mod browser;
mod cli;
mod crash;
mod crash_resets;
mod deploy;
mod email;
mod faults;
mod fuzz_corpus;
mod hardening;
mod input;
mod lockout;
mod login;
mod mfa;
mod mfa_races;
mod multi_instance;
mod observability;
mod polish;
mod remember;
mod rotation;
mod security;
mod sessions;
mod setup;
mod shutdown;
mod soak;
mod throttling;
mod upgrade;
mod webauthn;
