//! The recovery-code parser on arbitrary input: no panic, and whatever it
//! accepts round-trips through the displayed form.
#![no_main]

use latchkey::core::recovery::RecoveryCode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    if let Some(code) = RecoveryCode::parse(input) {
        assert_eq!(code.canonical().len(), 15);
        assert_eq!(RecoveryCode::parse(&code.display()), Some(code.clone()));
        assert_eq!(RecoveryCode::parse(&code.display().to_lowercase()), Some(code));
    }
});
