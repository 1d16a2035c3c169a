//! RFC 6238 time-based one-time codes: SHA-1, 6 digits, 30-second steps.
//!
//! Code generation is totp-lite's; this module adds what it lacks: secret
//! generation, strict parsing of what a person typed, a constant-time check
//! over the allowed window that reports *which* step matched (so the caller
//! can refuse replays), and the `otpauth://` URI.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use subtle::ConstantTimeEq;
use totp_lite::{Sha1, totp_custom};

pub const STEP_SECONDS: u64 = 30;
pub const DIGITS: u32 = 6;
pub const SECRET_BYTES: usize = 20;
/// Largest allowed skew in steps either side of now.
pub const MAX_SKEW: u8 = 2;

/// A 160-bit TOTP shared secret.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret([u8; SECRET_BYTES]);

impl std::fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpSecret(…)")
    }
}

impl TotpSecret {
    /// A fresh secret from the operating system's random generator.
    pub fn generate() -> Self {
        Self(super::random_bytes::<SECRET_BYTES>())
    }

    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        <[u8; SECRET_BYTES]>::try_from(bytes).ok().map(Self)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// RFC 4648 Base32 without padding, as authenticator apps expect.
    pub fn to_base32(&self) -> String {
        base32::encode(base32::Alphabet::Rfc4648 { padding: false }, &self.0)
    }

    /// The Base32 form in groups of four characters, for people to type.
    pub fn to_grouped(&self) -> String {
        group(&self.to_base32(), 4)
    }

    /// The code for a given time step.
    pub fn code_at_step(&self, step: u64) -> String {
        totp_custom::<Sha1>(STEP_SECONDS, DIGITS, &self.0, step * STEP_SECONDS)
    }

    /// Check `code` against the steps `now-skew ..= now+skew`.
    ///
    /// Returns the matching step. Every step of the window is computed and
    /// compared in constant time, whether or not an earlier one matched, so
    /// the time taken says nothing about the code.
    pub fn verify(&self, code: &TotpCode, unix_now: i64, skew: u8) -> Option<u64> {
        self.verify_after(code, unix_now, skew, None)
    }

    /// `verify`, preferring a step after `used` (the last accepted one):
    /// two steps of one window share a code about once in 500,000 windows,
    /// and a code typed for the current step must not be taken for the one
    /// before it and refused as a replay. Returns the first matching step
    /// after `used`, else the first matching step (which is then a replay).
    pub fn verify_after(&self, code: &TotpCode, unix_now: i64, skew: u8, used: Option<u64>) -> Option<u64> {
        let now_step = step_of(unix_now);
        let skew = u64::from(skew.min(MAX_SKEW));
        let mut first: Option<u64> = None;
        let mut fresh: Option<u64> = None;
        for step in now_step.saturating_sub(skew)..=now_step + skew {
            let expected = self.code_at_step(step);
            let hit: bool = expected.as_bytes().ct_eq(code.0.as_bytes()).into();
            if hit && first.is_none() {
                first = Some(step);
            }
            if hit && fresh.is_none() && used.is_none_or(|u| step > u) {
                fresh = Some(step);
            }
        }
        fresh.or(first)
    }
}

pub fn step_of(unix_now: i64) -> u64 {
    u64::try_from(unix_now).unwrap_or(0) / STEP_SECONDS
}

/// Six ASCII digits, as typed by a person.
#[derive(Clone, PartialEq, Eq)]
pub struct TotpCode(String);

impl std::fmt::Debug for TotpCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TotpCode(…)")
    }
}

impl TotpCode {
    /// Accepts exactly six ASCII digits once spaces and dashes are removed.
    /// Anything else (`+`, other Unicode digits, five or seven digits) is
    /// refused rather than "fixed".
    pub fn parse(input: &str) -> Option<Self> {
        let cleaned: String = input.chars().filter(|c| *c != ' ' && *c != '-').collect();
        if cleaned.len() == DIGITS as usize && cleaned.bytes().all(|b| b.is_ascii_digit()) {
            Some(Self(cleaned))
        } else {
            None
        }
    }
}

/// Characters of the issuer and account name that stay as they are in the
/// otpauth URI; everything else is percent-encoded (space as `%20`).
const URI_KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'-').remove(b'.').remove(b'_').remove(b'~');

/// `otpauth://totp/{Issuer}:{username}?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30`
pub fn otpauth_uri(issuer: &str, username: &str, secret: &TotpSecret) -> String {
    let issuer = utf8_percent_encode(issuer, URI_KEEP).to_string();
    let account = utf8_percent_encode(username, URI_KEEP).to_string();
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        secret.to_base32()
    )
}

fn group(s: &str, n: usize) -> String {
    s.as_bytes()
        .chunks(n)
        .map(|c| std::str::from_utf8(c).unwrap_or_default())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    /// Steps 59,061,240 and 59,061,241 of the RFC seed share the code
    /// 963181 (found with Python's hmac, an implementation independent of
    /// ours). After 59,061,240 was used, that code at 59,061,241 is that
    /// step's, not a replay of the one before.
    #[test]
    fn a_code_shared_by_two_steps_is_taken_for_the_unused_one() {
        let s = super::TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        let (a, b) = (59_061_240_u64, 59_061_241_u64);
        assert_eq!(s.code_at_step(a), "963181");
        assert_eq!(s.code_at_step(b), "963181");
        let code = super::TotpCode::parse("963181").unwrap();
        let now = i64::try_from(b * super::STEP_SECONDS).unwrap();
        assert_eq!(s.verify(&code, now, 1), Some(a));
        assert_eq!(s.verify_after(&code, now, 1, None), Some(a));
        assert_eq!(s.verify_after(&code, now, 1, Some(a)), Some(b));
        assert_eq!(s.verify_after(&code, now, 1, Some(b)), Some(a), "both used: a replay");
    }

    use super::*;

    /// The RFC 6238 appendix B seed for SHA-1.
    fn rfc_secret() -> TotpSecret {
        TotpSecret::from_bytes(b"12345678901234567890").unwrap()
    }

    #[test]
    fn rfc6238_sha1_vectors_truncated_to_six_digits() {
        // RFC 6238 appendix B gives 8-digit codes; the 6-digit code is the
        // same HOTP value mod 10^6, i.e. the last six digits.
        let vectors: [(u64, &str); 6] = [
            (59, "94287082"),
            (1_111_111_109, "07081804"),
            (1_111_111_111, "14050471"),
            (1_234_567_890, "89005924"),
            (2_000_000_000, "69279037"),
            (20_000_000_000, "65353130"),
        ];
        let s = rfc_secret();
        for (t, eight) in vectors {
            assert_eq!(s.code_at_step(t / 30), eight[2..], "t={t}");
        }
        // Leading zeros are kept (t=1111111109 → "081804").
        assert_eq!(s.code_at_step(1_111_111_109 / 30), "081804");
    }

    #[test]
    fn verify_accepts_window_and_reports_step() {
        let s = rfc_secret();
        let now = 1_111_111_111_i64;
        let t = step_of(now);
        for (delta, expect) in [(-2i64, false), (-1, true), (0, true), (1, true), (2, false)] {
            let step = (t as i64 + delta) as u64;
            let code = TotpCode::parse(&s.code_at_step(step)).unwrap();
            let got = s.verify(&code, now, 1);
            assert_eq!(got.is_some(), expect, "delta {delta}");
            if expect {
                assert_eq!(got, Some(step));
            }
        }
        let far = TotpCode::parse(&s.code_at_step(t + 2)).unwrap();
        assert_eq!(s.verify(&far, now, 2), Some(t + 2));
        let prev = TotpCode::parse(&s.code_at_step(t - 1)).unwrap();
        assert_eq!(s.verify(&prev, now, 0), None, "skew 0 is exact");
        assert_eq!(s.verify(&prev, now, 9), Some(t - 1), "skew is capped, not refused");
    }

    #[test]
    fn parse_is_strict() {
        for ok in ["123456", " 123 456 ", "123-456", "000000", "1 2 3 4 5 6"] {
            assert!(TotpCode::parse(ok).is_some(), "{ok:?}");
        }
        for bad in [
            "",
            "12345",
            "1234567",
            "+12345",
            "-12345",
            "１２３４５６",
            "12345a",
            "12345\t6",
            "١٢٣٤٥٦",
            "123 45",
            "0x1234",
        ] {
            assert!(TotpCode::parse(bad).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn secret_encodings() {
        let s = rfc_secret();
        assert_eq!(s.to_base32(), "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ");
        assert_eq!(s.to_grouped(), "GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ");
        let a = TotpSecret::generate();
        let b = TotpSecret::generate();
        assert_ne!(a, b);
        assert_eq!(a.to_base32().len(), 32);
    }

    #[test]
    fn uri_format_and_encoding() {
        let s = rfc_secret();
        assert_eq!(
            otpauth_uri("Acme Corp", "alice", &s),
            "otpauth://totp/Acme%20Corp:alice?secret=GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ&issuer=Acme%20Corp&algorithm=SHA1&digits=6&period=30"
        );
        let u = otpauth_uri("A+B&C", "bob", &s);
        assert!(u.starts_with("otpauth://totp/A%2BB%26C:bob?"), "{u}");
        assert!(!u.contains('+'));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Whatever comes in, parsing never panics, and it accepts exactly
        /// the strings that are six ASCII digits once spaces and dashes go.
        #[test]
        fn parse_accepts_exactly_six_ascii_digits(input in "\\PC{0,20}") {
            let cleaned: String = input.chars().filter(|c| *c != ' ' && *c != '-').collect();
            let expected = cleaned.len() == 6 && cleaned.bytes().all(|b| b.is_ascii_digit());
            prop_assert_eq!(TotpCode::parse(&input).is_some(), expected);
        }

        /// Any code survives any sprinkling of spaces and dashes.
        #[test]
        fn separators_do_not_matter(code in 0u32..1_000_000, seps in proptest::collection::vec(prop_oneof![Just(""), Just(" "), Just("-"), Just("  ")], 7)) {
            let digits = format!("{code:06}");
            let mut typed = String::new();
            for (i, ch) in digits.chars().enumerate() {
                typed.push_str(seps[i]);
                typed.push(ch);
            }
            typed.push_str(seps[6]);
            prop_assert_eq!(TotpCode::parse(&typed), TotpCode::parse(&digits));
            prop_assert!(TotpCode::parse(&typed).is_some());
        }

        /// A code verifies exactly at the steps inside the window.
        #[test]
        fn verify_matches_the_window(secret in proptest::array::uniform20(any::<u8>()), t in 1_000_000i64..4_000_000_000, delta in -3i64..=3) {
            let s = TotpSecret::from_bytes(&secret).unwrap();
            let step = (step_of(t) as i64 + delta) as u64;
            let code = TotpCode::parse(&s.code_at_step(step)).unwrap();
            match s.verify(&code, t, 1) {
                // A different step may share the code by chance; then it is that step.
                Some(found) => prop_assert!(found.abs_diff(step_of(t)) <= 1),
                None => prop_assert!(delta.abs() > 1),
            }
        }
    }
}
