//! Governing the paused clock while raft members run.
//!
//! Tokio's paused clock jumps to the next timer as soon as every task waits. The raft members'
//! log writers are OS threads: while one fsyncs, every task waits on it, and the clock would
//! jump — through election timeouts and propose deadlines — before the write lands. Tokio
//! does not auto-advance while a `spawn_blocking` task runs (current-thread runtime), so the
//! [`Governor`] parks one blocking task for as long as raft runs, and the simulator moves time
//! itself, one [`TICK`] at a time, giving the writer threads [`REAL_PER_TICK`] of real time
//! after each tick.

use std::sync::mpsc;
use std::time::Duration;

/// Virtual time per tick.
pub const TICK: Duration = Duration::from_millis(10);

/// Real time granted to OS threads (raft log writers) after each governed tick: virtual time
/// runs at most about `TICK / REAL_PER_TICK` (≈ 100×) faster than real time while raft runs.
pub const REAL_PER_TICK: Duration = Duration::from_micros(100);

/// Scheduler passes after a tick, so chains of wake-ups settle before the next one.
const YIELDS: usize = 16;

/// Holds off the paused clock's auto-advance while held.
#[derive(Debug, Default)]
pub(crate) struct Governor {
    hold: Option<mpsc::Sender<()>>,
}

impl Governor {
    /// Holds off auto-advance (idempotent).
    pub(crate) fn hold(&mut self) {
        if self.hold.is_some() {
            return;
        }
        let (tx, rx) = mpsc::channel::<()>();
        // Blocks until the sender is dropped; while it runs, tokio does not auto-advance.
        drop(tokio::task::spawn_blocking(move || {
            let _ = rx.recv();
        }));
        self.hold = Some(tx);
    }

    /// Lets the paused clock auto-advance again (idempotent).
    pub(crate) fn release(&mut self) {
        self.hold = None;
    }

    /// One governed tick: move time by [`TICK`], let the tasks run, give OS threads a moment
    /// of real time (when `busy` says a raft write may be in flight; otherwise just the
    /// processor), let the tasks run again.
    pub(crate) async fn governed_tick(&self, busy: impl Fn() -> bool) {
        tokio::time::advance(TICK).await;
        for _ in 0..YIELDS {
            tokio::task::yield_now().await;
        }
        if busy() {
            std::thread::sleep(REAL_PER_TICK);
        } else {
            std::thread::yield_now();
        }
        for _ in 0..YIELDS {
            tokio::task::yield_now().await;
        }
    }
}
