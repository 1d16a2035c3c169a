//! Recovery codes: ten single-use codes, each 75 bits, shown once.
//!
//! Alphabet: digits and capital letters without 0, 1, I and O, so nothing is
//! ambiguous on paper. 15 characters × 5 bits = 75 bits ≥ the 64 required.
//! Shown as `XXXXX-XXXXX-XXXXX`; input is case-, space- and dash-insensitive.

use std::fmt;

pub const COUNT: usize = 10;
pub const LEN: usize = 15;
const GROUP: usize = 5;
const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";

/// A recovery code in canonical form (15 upper-case characters, no dashes).
#[derive(Clone, PartialEq, Eq)]
pub struct RecoveryCode(String);

impl fmt::Debug for RecoveryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecoveryCode(…)")
    }
}

impl RecoveryCode {
    pub fn generate() -> Self {
        let bytes = super::random_bytes::<LEN>();
        // 256 is a multiple of 32, so masking keeps the choice uniform.
        let s = bytes.iter().map(|b| ALPHABET[usize::from(b & 31)] as char).collect();
        Self(s)
    }

    pub fn generate_set() -> Vec<Self> {
        (0..COUNT).map(|_| Self::generate()).collect()
    }

    pub fn parse(input: &str) -> Option<Self> {
        let cleaned: String = input
            .chars()
            .filter(|c| *c != ' ' && *c != '-')
            .map(|c| c.to_ascii_uppercase())
            .collect();
        if cleaned.len() == LEN && cleaned.bytes().all(|b| ALPHABET.contains(&b)) {
            Some(Self(cleaned))
        } else {
            None
        }
    }

    /// Canonical form, the input of the keyed hash.
    pub fn canonical(&self) -> &str {
        &self.0
    }

    /// `XXXXX-XXXXX-XXXXX`, for display.
    pub fn display(&self) -> String {
        self.0
            .as_bytes()
            .chunks(GROUP)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("-")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_codes_are_well_formed_and_distinct() {
        let set = RecoveryCode::generate_set();
        assert_eq!(set.len(), 10);
        for c in &set {
            let d = c.display();
            assert_eq!(d.len(), 17);
            assert_eq!(RecoveryCode::parse(&d).as_ref(), Some(c));
        }
        let mut canon: Vec<_> = set.iter().map(|c| c.canonical().to_string()).collect();
        canon.sort();
        canon.dedup();
        assert_eq!(canon.len(), 10);
        // 15 symbols of 32 = 75 bits.
        assert!(LEN as f64 * (ALPHABET.len() as f64).log2() >= 64.0);
    }

    #[test]
    fn parse_is_case_space_and_dash_insensitive() {
        let c = RecoveryCode::parse("ABCDE-FGHJK-LMNPQ").unwrap();
        for variant in ["abcde fghjk lmnpq", "abcdefghjklmnpq", " ABCDE-fghjk - LMNPQ "] {
            assert_eq!(RecoveryCode::parse(variant).as_ref(), Some(&c), "{variant:?}");
        }
        for bad in [
            "ABCDE-FGHJK-LMNP",
            "ABCDE-FGHJK-LMNPQR",
            "ABCDE-FGHJK-LMNP0",
            "ABCDE-FGHJK-LMNPI",
            "123456",
            "",
        ] {
            assert!(RecoveryCode::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn alphabet_has_no_ambiguous_characters() {
        for c in [b'0', b'1', b'I', b'O'] {
            assert!(!ALPHABET.contains(&c));
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn parse_never_panics_and_is_canonical(input in "\\PC{0,40}") {
            if let Some(code) = RecoveryCode::parse(&input) {
                prop_assert_eq!(code.canonical().len(), LEN);
                prop_assert_eq!(RecoveryCode::parse(&code.display()), Some(code));
            }
        }

        /// Case, spaces and dashes never change which code was typed.
        #[test]
        fn case_spaces_and_dashes_are_ignored(idx in proptest::collection::vec(0usize..32, LEN), mask in proptest::collection::vec(0u8..4, LEN)) {
            let canonical: String = idx.iter().map(|i| ALPHABET[*i] as char).collect();
            let mut typed = String::new();
            for (ch, m) in canonical.chars().zip(&mask) {
                match m {
                    0 => typed.push(ch),
                    1 => typed.push(ch.to_ascii_lowercase()),
                    2 => { typed.push(' '); typed.push(ch); }
                    _ => { typed.push('-'); typed.push(ch.to_ascii_lowercase()); }
                }
            }
            prop_assert_eq!(RecoveryCode::parse(&typed).map(|c| c.canonical().to_string()), Some(canonical));
        }
    }
}
