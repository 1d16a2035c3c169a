//! Throttling rules for guesses of passwords and codes.
//!
//! Pure arithmetic over a counter's state; the storage layer keeps the state
//! in the database (so it holds across sessions, addresses and instances) and
//! applies a rule inside one transaction.
//!
//! Two kinds of limit:
//! - a [`Rule`] counts consecutive failures: it lets `free` through, then
//!   locks the key for `base · 2^(failures − free)` seconds, capped at `cap`.
//!   A counter forgets failures older than `forget_after`; a success resets it.
//! - a [`Bucket`] is a token bucket: `capacity` tokens, one more every
//!   `refill_seconds`; each attempt takes one before it is checked.
//!
//! The numbers themselves, and why, are in `core::limits`.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    /// Stable name, stored with the counter.
    pub scope: &'static str,
    pub free: u32,
    pub base_seconds: i64,
    pub cap_seconds: i64,
    pub forget_after: i64,
}

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

impl Rule {
    /// Take back one failure counted up front for an attempt that turned
    /// out right (without forgiving the others, as a reset would).
    pub fn forgive_one(&self, counter: Counter) -> Counter {
        let failures = counter.failures.saturating_sub(1);
        Counter {
            failures,
            locked_until: if failures < self.free { 0 } else { counter.locked_until },
            ..counter
        }
    }
}

/// A token bucket (the model is crates.io's rate limiter).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Stable name, stored with the bucket.
    pub scope: &'static str,
    pub capacity: u32,
    /// One token comes back every this many seconds.
    pub refill_seconds: i64,
}

/// A bucket's stored state: tokens left as of `refilled_at`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BucketState {
    pub tokens: u32,
    pub refilled_at: i64,
}

impl Bucket {
    /// The state at `now`, with the tokens earned since the last refill
    /// added (a missing state is a full bucket).
    pub fn at(&self, state: Option<BucketState>, now: i64) -> BucketState {
        let Some(s) = state else {
            return BucketState {
                tokens: self.capacity,
                refilled_at: now,
            };
        };
        let period = self.refill_seconds.max(1);
        let earned = (now - s.refilled_at).max(0) / period;
        let tokens = (i64::from(s.tokens) + earned).min(i64::from(self.capacity)) as u32;
        let refilled_at = if tokens >= self.capacity {
            now
        } else {
            s.refilled_at + earned * period
        };
        BucketState { tokens, refilled_at }
    }

    /// Take one token at `now`: the new state, or the seconds until a token
    /// is back.
    pub fn take(&self, state: Option<BucketState>, now: i64) -> Result<BucketState, i64> {
        let s = self.at(state, now);
        if s.tokens == 0 {
            return Err((s.refilled_at + self.refill_seconds - now).max(1));
        }
        Ok(BucketState {
            tokens: s.tokens - 1,
            ..s
        })
    }

    /// Give one token back (an attempt that turned out right).
    pub fn give_back(&self, state: Option<BucketState>, now: i64) -> BucketState {
        let s = self.at(state, now);
        BucketState {
            tokens: (s.tokens + 1).min(self.capacity),
            ..s
        }
    }

    /// Seconds until a token is available, if none is now.
    pub fn retry_after(&self, state: Option<BucketState>, now: i64) -> Option<i64> {
        let s = self.at(state, now);
        (s.tokens == 0).then(|| (s.refilled_at + self.refill_seconds - now).max(1))
    }

    /// The most tokens that can be taken in any window of `seconds`.
    pub fn most_in(&self, seconds: i64) -> i64 {
        i64::from(self.capacity) + seconds / self.refill_seconds.max(1)
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

    use crate::core::limits::{
        ACCOUNT_DAILY_BUDGET, PASSWORD_ACCOUNT_ADDRESS, PASSWORD_KNOWN_BROWSER, SECOND_FACTOR_ACCOUNT,
    };

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
    fn forgiving_one_failure_lifts_a_lock_it_caused() {
        let r = PASSWORD_ACCOUNT_ADDRESS;
        let mut c = None;
        for t in 0..5 {
            c = Some(r.record_failure(c, t));
        }
        let locked = c.unwrap();
        assert!(locked.locked_until > 4);
        let back = r.forgive_one(locked);
        assert_eq!((back.failures, back.locked_until), (4, 0));
        let six = r.record_failure(Some(locked), 5);
        assert_eq!(
            r.forgive_one(six).locked_until,
            six.locked_until,
            "earlier failures still lock"
        );
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
        let r = PASSWORD_KNOWN_BROWSER;
        let c = Counter {
            failures: 25,
            last_failure: 100,
            locked_until: 160,
        };
        assert_eq!(r.retry_after(&c, 100), Some(60));
        assert_eq!(r.retry_after(&c, 160), None);
    }

    #[test]
    fn a_bucket_allows_capacity_then_one_per_period() {
        let b = Bucket {
            scope: "t",
            capacity: 3,
            refill_seconds: 10,
        };
        let mut s = None;
        for _ in 0..3 {
            s = Some(b.take(s, 1000).unwrap());
        }
        assert_eq!(b.take(s, 1000), Err(10));
        assert_eq!(b.take(s, 1009), Err(1));
        let next = b.take(s, 1010).unwrap();
        assert_eq!(next.tokens, 0);
        assert!(b.take(Some(next), 1010).is_err(), "one token per period");
        // Back to full after a long pause, never more.
        assert_eq!(b.at(Some(next), 1_000_000).tokens, 3);
        assert_eq!(b.give_back(Some(next), 1010).tokens, 1);
    }

    /// The daily budget: whatever the pace, no window of 24 hours sees more
    /// than 100 attempts (SPEC §3).
    #[test]
    fn the_daily_budget_never_allows_more_than_100_in_24_hours() {
        let b = ACCOUNT_DAILY_BUDGET;
        assert_eq!(b.most_in(24 * 3600), 100);
        // A guesser who takes a token the moment one is there, for 3 days.
        let mut s = None;
        let mut taken = vec![];
        for t in 0..(3 * 24 * 3600) {
            if let Ok(next) = b.take(s, t) {
                s = Some(next);
                taken.push(t);
            }
        }
        for (i, start) in taken.iter().enumerate() {
            let in_window = taken[i..].iter().take_while(|t| **t < start + 24 * 3600).count();
            assert!(in_window <= 100, "{in_window} in the day from {start}");
        }
        assert!(taken.len() >= 150, "and the budget does come back ({})", taken.len());
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
