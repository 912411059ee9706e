//! The wall clock, as the engine sees it: a port, so that the engine's tests run on paused
//! time.

use jiff::Timestamp;

/// The wall clock, as the engine sees it.
pub trait Clock: Send + Sync {
    fn now(&self) -> Timestamp;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
}

/// For tests: wall-clock time that starts at a given instant and moves with (paused) tokio
/// time.
#[cfg(test)]
pub struct PausedClock {
    base: Timestamp,
    t0: tokio::time::Instant,
}

#[cfg(test)]
impl PausedClock {
    /// The clock at `at` (RFC 3339) now.
    pub fn at(at: &str) -> PausedClock {
        PausedClock {
            base: at.parse().expect("an RFC 3339 time"),
            t0: tokio::time::Instant::now(),
        }
    }
}

#[cfg(test)]
impl Clock for PausedClock {
    fn now(&self) -> Timestamp {
        self.base + jiff::SignedDuration::try_from(self.t0.elapsed()).unwrap()
    }
}
