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

/// Virtual time per tick (governed ticks while raft is idle, and auto-advanced ticks).
pub const TICK: Duration = Duration::from_millis(25);

/// Virtual time per governed tick while a raft write may be in flight.
pub const BUSY_TICK: Duration = Duration::from_millis(5);

/// Real time granted to OS threads (raft log writers) after each busy governed tick: while a
/// write is in flight, virtual time runs at most about `BUSY_TICK / REAL_PER_TICK` (≈ 50×)
/// faster than real time.
pub const REAL_PER_TICK: Duration = Duration::from_micros(100);

/// Scheduler passes after a tick, so chains of wake-ups settle before the next one.
const YIELDS: usize = 4;

/// Holds off the paused clock's auto-advance while held.
#[derive(Debug, Default)]
pub(crate) struct Governor {
    hold: Option<mpsc::Sender<()>>,
    stats: TimeStats,
}

/// How the simulator moved virtual time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TimeStats {
    /// Governed ticks (raft running).
    pub governed_ticks: u64,
    /// Governed ticks that found a raft write possibly in flight and gave real time.
    pub busy_ticks: u64,
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

    /// Counters so far.
    pub(crate) fn stats(&self) -> TimeStats {
        self.stats
    }

    /// Lets the paused clock auto-advance again (idempotent).
    pub(crate) fn release(&mut self) {
        self.hold = None;
    }

    /// One governed tick: move time by [`TICK`], let the tasks run, give OS threads a moment
    /// of real time (when `busy` says a raft write may be in flight; otherwise just the
    /// processor), let the tasks run again.
    pub(crate) async fn governed_tick(&mut self, busy: impl Fn() -> bool) {
        self.stats.governed_ticks += 1;
        if busy() {
            self.stats.busy_ticks += 1;
            tokio::time::advance(BUSY_TICK).await;
            for _ in 0..YIELDS {
                tokio::task::yield_now().await;
            }
            std::thread::sleep(REAL_PER_TICK);
        } else {
            tokio::time::advance(TICK).await;
            std::thread::yield_now();
        }
        for _ in 0..YIELDS {
            tokio::task::yield_now().await;
        }
    }
}
