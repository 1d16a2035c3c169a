//! Operating a deployment from the command line: the container health
//! check, SQLite backups, and server key rotation. Each runs in the CLI
//! process, over one database connection (`Db::open_single`) where it
//! needs one.

pub mod backup;
pub mod healthcheck;
pub mod rotation;
