//! The registry's source of time, injected so tests and retention can control it.

use std::sync::atomic::{AtomicI64, Ordering};

/// Gives the current time in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + 'static {
    /// Now, in milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Whether this is the machine's clock, which on a shared log must agree with the
    /// database's (see [`MAX_SKEW_MS`]); a test's clock stands wherever the test puts it.
    fn is_wall_clock(&self) -> bool {
        false
    }
}

/// How far a gateway's wall clock may be from PostgreSQL's on a shared log. Every gateway
/// decides retention, lifecycle and version times by its own clock: one running ahead would
/// delete a COMPLIANCE-locked version early, and the event it records, stamped by that clock,
/// would look lawful to `verify`. A batch whose clock is further off is refused.
pub const MAX_SKEW_MS: i64 = 2_000;

/// The system's wall clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since_epoch.as_millis()).unwrap_or(i64::MAX)
    }

    fn is_wall_clock(&self) -> bool {
        true
    }
}

/// A clock that moves only when told to: for tests and for `retention plan --at`.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    /// A clock standing at `now_ms`.
    #[must_use]
    pub fn new(now_ms: i64) -> Self {
        Self(AtomicI64::new(now_ms))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }

    /// Sets the clock.
    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
