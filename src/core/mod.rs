//! The domain core: plain Rust with no web or database types.
//!
//! Everything here is unit-tested on its own; the web and storage layers only
//! call into it.

pub mod address;
pub mod clock;
pub mod keys;
pub mod limits;
pub mod notice;
pub mod password;
pub mod policy;
pub mod qr;
pub mod recovery;
pub mod throttle;
pub mod totp;
pub mod types;
pub mod username;

/// Fill `buf` from the operating system's random generator.
///
/// A failure of the OS generator is not something we can recover from
/// safely (we would hand out guessable secrets), so it aborts the request.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).expect("the operating system's random generator failed");
    buf
}
