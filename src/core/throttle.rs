//! Throttling rules for guesses of passwords and codes.
//!
//! Pure arithmetic over a counter's state; the storage layer keeps the state
//! in the database (so it holds across sessions, addresses and instances) and
//! applies a rule inside one transaction.
//!
//! Each rule lets `free` consecutive failures through, then locks the key for
//! `base · 2^(failures − free)` seconds, capped at `cap`. A counter forgets
//! failures older than `forget_after`; a success resets it.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Stable name, stored with the counter.
    pub scope: &'static str,
    pub free: u32,
    pub base_seconds: i64,
    pub cap_seconds: i64,
    pub forget_after: i64,
}

/// Password guesses for one account from one client address. Strict: it
/// stops a single attacker, and never touches the real user elsewhere.
pub const PASSWORD_ACCOUNT_ADDRESS: Rule = Rule {
    scope: "password:account+address",
    free: 5,
    base_seconds: 30,
    cap_seconds: 15 * 60,
    forget_after: 60 * 60,
};

/// Password guesses for one account from anywhere. Lenient and short, so an
/// attacker spread over many addresses slows to a crawl but can lock the
/// real user out for two minutes at most.
pub const PASSWORD_ACCOUNT: Rule = Rule {
    scope: "password:account",
    free: 20,
    base_seconds: 10,
    cap_seconds: 2 * 60,
    forget_after: 60 * 60,
};

/// Password guesses from one client address across all accounts (spraying).
pub const PASSWORD_ADDRESS: Rule = Rule {
    scope: "password:address",
    free: 30,
    base_seconds: 60,
    cap_seconds: 60 * 60,
    forget_after: 60 * 60,
};

/// Second-factor guesses for one account, across every session, address and
/// instance (SPEC §3: after 5, exponential, capped at one hour).
pub const SECOND_FACTOR_ACCOUNT: Rule = Rule {
    scope: "second-factor:account",
    free: 5,
    base_seconds: 30,
    cap_seconds: 60 * 60,
    forget_after: 24 * 60 * 60,
};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counter {
    pub failures: u32,
    pub last_failure: i64,
    pub locked_until: i64,
}

impl Rule {
    /// Seconds until the key may try again, or `None` when it may now.
    pub fn retry_after(&self, counter: &Counter, now: i64) -> Option<i64> {
        (counter.locked_until > now).then(|| counter.locked_until - now)
    }

    /// The counter after one more failure at `now`.
    pub fn record_failure(&self, prev: Option<Counter>, now: i64) -> Counter {
        let failures = match prev {
            Some(c) if now - c.last_failure <= self.forget_after => c.failures.saturating_add(1),
            _ => 1,
        };
        let locked_until = if failures >= self.free {
            let doublings = (failures - self.free).min(30);
            now + self.base_seconds.saturating_mul(1 << doublings).min(self.cap_seconds)
        } else {
            0
        };
        Counter {
            failures,
            last_failure: now,
            locked_until,
        }
    }
}

/// "in 2 minutes", "in 45 seconds", "in 1 hour".
pub fn describe_wait(seconds: i64) -> String {
    let s = seconds.max(1);
    let (n, unit) = if s < 90 {
        (s, "second")
    } else if s < 3600 {
        ((s + 59) / 60, "minute")
    } else {
        ((s + 3599) / 3600, "hour")
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_failures_then_exponential_then_cap() {
        let r = SECOND_FACTOR_ACCOUNT;
        let mut c = None;
        let mut locks = vec![];
        for i in 0..12 {
            let next = r.record_failure(c, 1000 + i);
            locks.push(next.locked_until - (1000 + i));
            c = Some(next);
        }
        assert_eq!(&locks[..4], &[-1000, -1001, -1002, -1003], "first four are free");
        assert_eq!(&locks[4..9], &[30, 60, 120, 240, 480]);
        assert_eq!(*locks.last().unwrap(), 3600, "capped at one hour");
    }

    #[test]
    fn old_failures_are_forgotten() {
        let r = PASSWORD_ACCOUNT_ADDRESS;
        let c = Counter {
            failures: 9,
            last_failure: 0,
            locked_until: 10,
        };
        assert_eq!(r.record_failure(Some(c), 3601).failures, 1);
        assert_eq!(r.record_failure(Some(c), 3600).failures, 10);
    }

    #[test]
    fn retry_after() {
        let r = PASSWORD_ACCOUNT;
        let c = Counter {
            failures: 25,
            last_failure: 100,
            locked_until: 160,
        };
        assert_eq!(r.retry_after(&c, 100), Some(60));
        assert_eq!(r.retry_after(&c, 160), None);
    }

    #[test]
    fn account_wide_lock_is_short() {
        // Whoever guesses, the real user waits two minutes at most.
        let r = PASSWORD_ACCOUNT;
        let mut c = None;
        for i in 0..100 {
            c = Some(r.record_failure(c, i));
        }
        assert!(c.unwrap().locked_until - 99 <= 120);
    }

    #[test]
    fn waits_read_well() {
        assert_eq!(describe_wait(1), "1 second");
        assert_eq!(describe_wait(45), "45 seconds");
        assert_eq!(describe_wait(120), "2 minutes");
        assert_eq!(describe_wait(3600), "1 hour");
        assert_eq!(describe_wait(3 * 3600), "3 hours");
    }
}
