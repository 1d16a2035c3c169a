//! Every policy number in one place, with the reason for it.
//!
//! docs/SECURITY.md explains how the lockout rules work together and what
//! an attacker can and cannot do with them.

use super::throttle::{Bucket, Rule};

// ---------------------------------------------------------------- sessions

/// A session unused for this long is gone (SPEC §4: 30 minutes idle).
pub const SESSION_IDLE_SECONDS: i64 = 30 * 60;
/// A signed-in session ends this long after sign-in, used or not (SPEC §4: 12 h).
pub const SESSION_ABSOLUTE_SECONDS: i64 = 12 * 60 * 60;
/// A session ended by an administrator's reset keeps a row with no user and
/// no rights for this long, so its browser is told why on its next request
/// (the session could have lasted this long; the cookie lives until the
/// browser closes).
pub const ENDED_SESSION_NOTICE_SECONDS: i64 = SESSION_ABSOLUTE_SECONDS;
/// "Sudo mode": a password (or key) entered this recently allows sensitive
/// actions without asking again (SPEC §1.4: 10 minutes).
pub const SUDO_SECONDS: i64 = 10 * 60;

// ------------------------------------------------------------- second step

/// A sign-in whose password was right dies if its second step takes longer
/// (SPEC §3: 5 minutes) — long enough to find a phone, short enough that a
/// stolen pending session is worth little.
pub const PENDING_SECONDS: i64 = 5 * 60;
/// Wrong codes one pending sign-in may send before it dies (SPEC §3: 5).
/// Counted atomically in its database row, so five at once are five.
pub const PENDING_MAX_ATTEMPTS: i32 = 5;

/// Second-factor guesses for one account, across every session, address and
/// instance (SPEC §3: after 5, exponential, capped at one hour). A TOTP code
/// is one of 10^6 and three are valid at a time: at this pace a guesser
/// needs decades, while the real user who mistypes waits 30 s at first.
pub const SECOND_FACTOR_ACCOUNT: Rule = Rule {
    scope: "second-factor:account",
    free: 5,
    base_seconds: 30,
    cap_seconds: 60 * 60,
    forget_after: 24 * 60 * 60,
};

// --------------------------------------------------------------- enrolment

/// An unconfirmed TOTP secret is good for this long (SPEC §1.2: ≤ 10 minutes).
pub const ENROLMENT_SECONDS: i64 = 10 * 60;
/// Wrong confirmation codes per pending secret; then the secret dies and
/// Enable starts over with a new one. Without a limit, someone holding a
/// signed-in cookie (but not the phone) could guess their way to the
/// recovery codes.
pub const ENROLMENT_MAX_ATTEMPTS: i32 = 5;

// ------------------------------------------------------ the password step
//
// Who is asking decides which counters apply (docs/SECURITY.md):
// - a *known browser* (one that signed in to this account before and
//   carries its token) counts against its own counter only, so nobody
//   else's failures can lock it out;
// - a signed-in session confirming its password (sudo, password change)
//   counts against its own session's counter only;
// - anyone else (a new browser) goes through the per-(account, network)
//   counter, the account's daily budget, and the per-network limits.

/// A new browser's guesses at one account from one network. Strict: it
/// stops a single guesser at once, and never touches the real user
/// elsewhere. 15 minutes at most, so a user's own typos cost little.
pub const PASSWORD_ACCOUNT_ADDRESS: Rule = Rule {
    scope: "password:account+address",
    free: 5,
    base_seconds: 30,
    cap_seconds: 15 * 60,
    forget_after: 60 * 60,
};

/// Guesses at one account from browsers that are not known to it, from
/// anywhere: 50 at once, then one every 28.8 minutes, so no window of
/// 24 hours sees more than 100 (OWASP ASVS V2.2.1 and NIST SP 800-63B
/// §5.2.2 both say "no more than 100 consecutive failed attempts"). Taken
/// before the password is hashed (a burst gets no more than a patient
/// guesser), given back when the password was right. When it is empty the
/// account's sign-ins are *protected* (below).
pub const ACCOUNT_DAILY_BUDGET: Bucket = Bucket {
    scope: "password:account-budget",
    capacity: 50,
    refill_seconds: 24 * 60 * 60 / 50,
};

/// Wrong passwords from one network across all accounts (spraying). Past
/// it, sign-ins from that network go on only in protected form (see
/// below): never a hard lock, because an office, a campus or a carrier's
/// NAT shares one address with the people it would lock out.
pub const PASSWORD_ADDRESS: Rule = Rule {
    scope: "password:address",
    free: 30,
    base_seconds: 60,
    cap_seconds: 60 * 60,
    forget_after: 60 * 60,
};

/// Password checks one network may cause per minute, right or wrong (the
/// bcrypt work one address can make us do): 60 at once, then one a
/// second — more new-browser sign-ins than an office's busiest minute, a
/// thousand times fewer than a botnet behind one address would like.
/// Known browsers and signed-in sessions are not counted here.
pub const ADDRESS_HASH_RATE: Bucket = Bucket {
    scope: "password:address-rate",
    capacity: 60,
    refill_seconds: 1,
};

/// Password checks from one network that run at once on one instance (one
/// hashing thread per core: more would only queue), and how many more may
/// wait for a place; past that, 429 at once instead of queueing bcrypt work.
pub const ADDRESS_IN_FLIGHT: usize = 4;
pub const ADDRESS_QUEUE: usize = 64;

/// Guesses from one known browser at its own account. Its owner's typos
/// only: 10 free, then 1 minute doubling to an hour.
pub const PASSWORD_KNOWN_BROWSER: Rule = Rule {
    scope: "password:known-browser",
    free: 10,
    base_seconds: 60,
    cap_seconds: 60 * 60,
    forget_after: 24 * 60 * 60,
};

/// Wrong passwords in one signed-in session (sudo prompts, password
/// change): the session's own counter, so nobody else's failures block
/// them, and a stolen session cookie gets a handful of guesses, not more.
pub const PASSWORD_SESSION: Rule = Rule {
    scope: "password:session",
    free: 5,
    base_seconds: 30,
    cap_seconds: 15 * 60,
    forget_after: 60 * 60,
};

// A *protected sign-in*: when an account's daily budget is spent (or the
// network is past `PASSWORD_ADDRESS`), a new browser on a network that has
// not failed against this account still has its password checked, but the
// answer is always the code prompt — right or wrong, existing account or
// not — and only the right password *and* a valid second factor sign in. A
// guesser learns nothing, and a real user with 2FA is not held up at all.

// ---------------------------------------------------------------- WebAuthn

/// The server's half of a key ceremony lives this long (SPEC §6: single use,
/// 5 minutes) — the browser's own timeout for the prompt is about as long.
pub const WEBAUTHN_CEREMONY_SECONDS: i64 = 5 * 60;

// --------------------------------------------------------- known browsers

/// A known browser's token is forgotten after this long without a sign-in
/// (and on password change, 2FA reset and admin reset).
pub const KNOWN_BROWSER_SECONDS: i64 = 180 * 24 * 60 * 60;
/// The cookie's own lifetime: the longest Chromium keeps one (400 days);
/// the server-side expiry above is what counts.
pub const KNOWN_BROWSER_COOKIE_DAYS: i64 = 400;

// What the docs promise, checked when the code compiles.
const _: () = assert!(PENDING_SECONDS <= 5 * 60);
const _: () = assert!(ENROLMENT_SECONDS <= 10 * 60);
const _: () = assert!(SECOND_FACTOR_ACCOUNT.cap_seconds == 60 * 60);
// A user's own typos on a new browser never cost more than 15 minutes.
const _: () = assert!(PASSWORD_ACCOUNT_ADDRESS.cap_seconds <= 15 * 60);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_day_sees_more_than_100_guesses_from_new_browsers() {
        assert_eq!(ACCOUNT_DAILY_BUDGET.most_in(24 * 60 * 60), 100);
    }
}
