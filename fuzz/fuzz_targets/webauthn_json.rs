//! The key ceremonies' JSON, as a browser (or an attacker) sends it: parsed
//! and verified against real ceremony states. Every input ends in `Ok` or
//! an error, never a panic.
#![no_main]

use latchkey::auth::webauthn::fuzz_check;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    fuzz_check(data);
});
