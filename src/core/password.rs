//! Password hashing with bcrypt.
//!
//! bcrypt reads only the first 72 bytes of its input. Rather than refuse long
//! passphrases or silently ignore their tail, every password is pre-hashed:
//! bcrypt(base64(SHA-256(password))) — 44 bytes, so every byte of the
//! password counts. (The same construction Dropbox described; SHA-256 here
//! only compresses, bcrypt still does the slow, salted work.)
//!
//! These functions are slow on purpose (~0.25 s at cost 12): the server calls
//! them on its hashing threads (`web::hashing`), never on an async worker.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

pub const MIN_LEN: usize = 8;
/// Generous, but bounded so a huge body cannot make us hash megabytes.
pub const MAX_LEN: usize = 1024;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PasswordPolicyError {
    #[error("Use a password of at least 8 characters.")]
    TooShort,
    #[error("A password can be at most 1024 characters long.")]
    TooLong,
    #[error("A password cannot contain control characters.")]
    ControlCharacters,
}

/// Rules for a *new* password. (Checking an existing password applies only
/// the length cap, so a policy change never locks anyone out.)
pub fn check_policy(password: &str) -> Result<(), PasswordPolicyError> {
    let chars = password.chars().count();
    if chars < MIN_LEN {
        return Err(PasswordPolicyError::TooShort);
    }
    if password.len() > MAX_LEN {
        return Err(PasswordPolicyError::TooLong);
    }
    if password.chars().any(char::is_control) {
        return Err(PasswordPolicyError::ControlCharacters);
    }
    Ok(())
}

fn prehash(password: &str) -> String {
    STANDARD.encode(Sha256::digest(password.as_bytes()))
}

pub fn hash(password: &str, cost: u32) -> Result<String, bcrypt::BcryptError> {
    bcrypt::hash(prehash(password), cost)
}

/// True when `password` matches `stored`. A malformed stored hash is a
/// mismatch, never a panic.
pub fn verify(password: &str, stored: &str) -> bool {
    bcrypt::verify(prehash(password), stored).unwrap_or(false)
}

/// The cost a bcrypt hash was made with (`$2b$12$…` → 12).
pub fn cost_of(hash: &str) -> Option<u32> {
    hash.split('$').nth(2).and_then(|c| c.parse().ok())
}

/// A hash of a random password with the given cost, checked against when the
/// username is unknown so that the answer takes as long as for a real user.
pub fn dummy_hash(cost: u32) -> String {
    let random = super::keys::hex(&super::random_bytes::<16>());
    hash(&random, cost).expect("bcrypt with a valid cost does not fail")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_passwords_are_not_truncated() {
        let base = "x".repeat(72);
        let h = hash(&format!("{base}A"), 4).unwrap();
        assert!(verify(&format!("{base}A"), &h));
        assert!(!verify(&format!("{base}B"), &h), "bytes after 72 must count");
    }

    #[test]
    fn verify_handles_garbage() {
        assert!(!verify("pw", "not a hash"));
        let h = hash("correct horse", 4).unwrap();
        assert!(verify("correct horse", &h));
        assert!(!verify("correct hors", &h));
        assert!(!verify("pw", &dummy_hash(4)));
    }

    #[test]
    fn cost_is_read_from_the_hash() {
        assert_eq!(cost_of(&hash("x", 5).unwrap()), Some(5));
        assert_eq!(cost_of("garbage"), None);
    }

    #[test]
    fn policy() {
        assert_eq!(check_policy("short"), Err(PasswordPolicyError::TooShort));
        assert_eq!(check_policy(&"a".repeat(1025)), Err(PasswordPolicyError::TooLong));
        assert_eq!(check_policy("abcdefgh\0"), Err(PasswordPolicyError::ControlCharacters));
        assert!(check_policy("correct horse battery").is_ok());
        assert!(check_policy("ünïcödé!").is_ok());
    }
}
