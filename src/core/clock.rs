//! Wall-clock time as Unix seconds, settable in tests.
//!
//! Every time-dependent rule (TOTP steps, session timeouts, throttling,
//! expiry of enrolments) reads the time through a [`Clock`], so tests can move
//! time instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<AtomicI64>>,
}

impl Clock {
    /// The operating system's clock.
    pub fn system() -> Self {
        Self { manual: None }
    }

    /// A clock that only moves when told to; starts at `unix_seconds`.
    pub fn manual(unix_seconds: i64) -> Self {
        Self {
            manual: Some(Arc::new(AtomicI64::new(unix_seconds))),
        }
    }

    /// The time as a [`UnixTime`].
    pub fn time(&self) -> super::types::UnixTime {
        super::types::UnixTime(self.now())
    }

    /// Unix seconds.
    pub fn now(&self) -> i64 {
        match &self.manual {
            Some(t) => t.load(Ordering::SeqCst),
            None => system_now(),
        }
    }

    /// Set a manual clock. No effect on the system clock.
    pub fn set(&self, unix_seconds: i64) {
        if let Some(t) = &self.manual {
            t.store(unix_seconds, Ordering::SeqCst);
        }
    }

    /// Move a manual clock forward (or back, with a negative amount).
    pub fn advance(&self, seconds: i64) {
        if let Some(t) = &self.manual {
            t.fetch_add(seconds, Ordering::SeqCst);
        }
    }
}

pub fn system_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manual_clock_moves_only_when_told() {
        let c = Clock::manual(1_000);
        assert_eq!(c.now(), 1_000);
        c.advance(30);
        assert_eq!(c.now(), 1_030);
        c.set(5);
        assert_eq!(c.now(), 5);
        let copy = c.clone();
        copy.advance(1);
        assert_eq!(c.now(), 6, "clones share one time");
    }

    #[test]
    fn system_clock_is_roughly_now() {
        let c = Clock::system();
        assert!(c.now() > 1_700_000_000);
        c.set(1); // ignored
        assert!(c.now() > 1_700_000_000);
    }
}
