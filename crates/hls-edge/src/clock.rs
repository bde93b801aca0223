//! The store's injected clock: a monotonic instant for deadlines (grace period, ended retention,
//! segment availability, RFC 8216bis §6.2.2) and the matching wall-clock time for `Last-Modified`
//! (RFC 9110 §8.8.2). The library never reads the system clock itself: the binary passes the
//! wall-clock time of start-up to [`TokioClock`], tests drive a [`SimClock`].

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// One reading of the clock: both halves of the same moment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Now {
    pub instant: Instant,
    pub wall: SystemTime,
}

/// Where the store gets "now" from.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Now;
}

/// Tokio's monotonic clock (so `tokio::time::pause()` applies) mapped to wall-clock time from an
/// anchor taken once by the caller.
#[derive(Debug)]
pub struct TokioClock {
    anchor: Now,
}

impl TokioClock {
    /// `wall` is the wall-clock time of this moment (the binary passes `SystemTime::now()`).
    pub fn new(wall: SystemTime) -> Self {
        Self {
            anchor: Now {
                instant: tokio::time::Instant::now().into_std(),
                wall,
            },
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> Now {
        let instant = tokio::time::Instant::now().into_std();
        Now {
            instant,
            wall: self.anchor.wall + instant.saturating_duration_since(self.anchor.instant),
        }
    }
}

/// A clock that only moves when told to (deterministic tests and simulations).
#[derive(Debug)]
pub struct SimClock {
    now: Mutex<Now>,
}

impl SimClock {
    pub fn new(instant: Instant, wall: SystemTime) -> Self {
        Self {
            now: Mutex::new(Now { instant, wall }),
        }
    }

    /// Moves both halves forward by `d`.
    pub fn advance(&self, d: Duration) {
        let mut n = self.now.lock().unwrap_or_else(|e| e.into_inner());
        n.instant += d;
        n.wall += d;
    }

    /// Sets the clock to `instant`, moving wall-clock time by the same amount (backwards too).
    pub fn set(&self, instant: Instant) {
        let mut n = self.now.lock().unwrap_or_else(|e| e.into_inner());
        n.wall = if instant >= n.instant {
            n.wall + (instant - n.instant)
        } else {
            n.wall
                .checked_sub(n.instant - instant)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        };
        n.instant = instant;
    }
}

impl Clock for SimClock {
    fn now(&self) -> Now {
        *self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_clock_moves_both_halves() {
        let t0 = Instant::now();
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let c = SimClock::new(t0, w0);
        c.advance(Duration::from_secs(2));
        assert_eq!(c.now().wall, w0 + Duration::from_secs(2));
        c.set(t0 + Duration::from_secs(1));
        assert_eq!(
            c.now(),
            Now {
                instant: t0 + Duration::from_secs(1),
                wall: w0 + Duration::from_secs(1)
            }
        );
    }

    #[tokio::test(start_paused = true)]
    async fn tokio_clock_follows_paused_time() {
        let w0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1000);
        let c = TokioClock::new(w0);
        tokio::time::advance(Duration::from_secs(5)).await;
        assert_eq!(c.now().wall, w0 + Duration::from_secs(5));
    }
}
