//! The TOTP code parser and verifier, on arbitrary input: no panic, and
//! acceptance means exactly six ASCII digits once spaces and dashes go.
#![no_main]

use latchkey::core::totp::{TotpCode, TotpSecret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let cleaned: String = input.chars().filter(|c| *c != ' ' && *c != '-').collect();
    let expected = cleaned.len() == 6 && cleaned.bytes().all(|b| b.is_ascii_digit());
    let parsed = TotpCode::parse(input);
    assert_eq!(parsed.is_some(), expected, "{input:?}");
    if let Some(code) = parsed {
        let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
        let _ = secret.verify(&code, 1_111_111_111, 2);
    }
});
