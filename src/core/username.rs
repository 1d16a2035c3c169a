//! Usernames: validated on construction so an invalid one cannot travel inward.

use std::fmt;

pub const MAX_LEN: usize = 64;

/// A username: 1–64 characters of lowercase ASCII letters, digits, `.`, `_`
/// and `-`, starting with a letter or digit. Input is lowercased first, so
/// `Alice` and `alice` are the same account. The restricted alphabet keeps
/// names unambiguous on screen and free of `:` (which the otpauth URI forbids).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Username(String);

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsernameError {
    #[error("Enter a username.")]
    Empty,
    #[error("A username can be at most 64 characters long.")]
    TooLong,
    #[error(
        "A username may contain only letters a–z, digits, '.', '_' and '-', and must start with a letter or digit."
    )]
    BadCharacters,
}

impl Username {
    pub fn parse(input: &str) -> Result<Self, UsernameError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(UsernameError::Empty);
        }
        if s.len() > MAX_LEN {
            return Err(UsernameError::TooLong);
        }
        let lower = s.to_ascii_lowercase();
        let ok_char = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c);
        let first_ok = lower
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        if !first_ok || !lower.chars().all(ok_char) {
            return Err(UsernameError::BadCharacters);
        }
        Ok(Self(lower))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_and_lowercases() {
        assert_eq!(Username::parse(" Alice.B-2_x ").unwrap().as_str(), "alice.b-2_x");
    }

    #[test]
    fn refuses_bad_names() {
        assert_eq!(Username::parse(""), Err(UsernameError::Empty));
        assert_eq!(Username::parse("   "), Err(UsernameError::Empty));
        assert_eq!(Username::parse(&"a".repeat(65)), Err(UsernameError::TooLong));
        for bad in ["a:b", "a b", "-a", ".a", "é", "a\0", "a<b", "a/b"] {
            assert_eq!(Username::parse(bad), Err(UsernameError::BadCharacters), "{bad:?}");
        }
        assert!(Username::parse(&"a".repeat(64)).is_ok());
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn accepted_names_are_safe(input in "\\PC{0,80}") {
            if let Ok(name) = Username::parse(&input) {
                let s = name.as_str();
                prop_assert!(!s.is_empty() && s.len() <= MAX_LEN);
                prop_assert!(s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b)));
                prop_assert!(!s.contains(':'));
            }
        }
    }
}
