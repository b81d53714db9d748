//! Wall-clock time derived from tokio time, so the paused clock moves it.

use cloudless_core::clock::Clock;
use tokio::time::Instant;

/// Wall-clock time that starts at `origin_ms` and advances with tokio time: under
/// `tokio::time::pause()` it moves only when virtual time does.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    origin_ms: u64,
    start: Instant,
}

impl SimClock {
    /// A clock showing `origin_ms` now.
    pub fn new(origin_ms: u64) -> Self {
        Self {
            origin_ms,
            start: Instant::now(),
        }
    }
}

impl Clock for SimClock {
    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.origin_ms.saturating_add(elapsed)
    }
}
