//! RFC 6238 (TOTP, HMAC-SHA1, 6 digits, 30 s) written here from the RFC, so the
//! codes the load test sends do not come from the server's own implementation.

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const STEP: u64 = 30;

/// RFC 4226 HOTP: dynamic truncation of HMAC-SHA1(key, counter), not yet reduced.
fn hotp_raw(key: &[u8], counter: u64) -> u32 {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(&counter.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let off = usize::from(h[19] & 0x0f);
    (u32::from(h[off] & 0x7f) << 24)
        | (u32::from(h[off + 1]) << 16)
        | (u32::from(h[off + 2]) << 8)
        | u32::from(h[off + 3])
}

/// The six-digit code for time step `step`, with its leading zeros.
pub fn code(key: &[u8], step: u64) -> String {
    format!("{:06}", hotp_raw(key, step) % 1_000_000)
}

pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// RFC 6238 appendix B, SHA-1 rows (8 digits). Panics on a mismatch: a load
/// test with wrong codes would only measure refusals.
pub fn self_check() {
    let key = b"12345678901234567890";
    let vectors: [(u64, u32); 6] = [
        (59, 94_287_082),
        (1_111_111_109, 7_081_804),
        (1_111_111_111, 14_050_471),
        (1_234_567_890, 89_005_924),
        (2_000_000_000, 69_279_037),
        (20_000_000_000, 65_353_130),
    ];
    for (t, expected) in vectors {
        assert_eq!(hotp_raw(key, t / STEP) % 100_000_000, expected, "RFC 6238 vector t={t}");
    }
    assert_eq!(code(key, 1_111_111_109 / STEP), "081804", "leading zeros kept");
}

/// A user's TOTP state as the load test knows it: codes must go out with
/// strictly increasing steps (the server refuses a step it has accepted, and
/// every earlier one), and only within T-1..=T+1.
#[derive(Clone)]
pub struct Totp {
    pub key: [u8; 20],
    pub last_step: u64,
}

impl Totp {
    /// The next step to use now, if this user has one left in the window.
    /// T-1 is skipped in the last 2 s of a step: by the time the request
    /// arrives, the server may already be in the next step, where T-1 of the
    /// client is out of the window (which would be our mistake, not the
    /// server's).
    pub fn next_step(&self, unix_now: u64) -> Option<u64> {
        let now_step = unix_now / STEP;
        let lowest = if unix_now % STEP >= STEP - 2 {
            now_step
        } else {
            now_step - 1
        };
        let step = (self.last_step + 1).max(lowest);
        (step <= now_step + 1).then_some(step)
    }
}
