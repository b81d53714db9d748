//! The agent's node-local decision core (CLD-REQ-031, -032; DESIGN §4): desired replicas and
//! observed containers in, container actions out. Pure — no I/O, no clock, no tasks — so every
//! decision is tested by asserting the exact action list. The agent driver (`cloudless::agent`)
//! performs the actions against a `Runtime` and feeds the results back.
//!
//! ```text
//!  set_desired(replicas) ─┐
//!  observe(list())  ──────┤                       ┌─▶ Start / Restart / Stop / Remove
//!  handle_outcome(..) ────┼─▶ Supervisor ─poll_actions(now)─┼─▶ Probe(request)
//!  handle_probe_result ───┘   (slots, probes,     └─▶ Report(status change)
//!                              backoff timers)  next_wakeup() ─▶ when to poll again
//! ```
//!
//! Rules: a container already running for a desired replica is adopted, never restarted; one
//! container per replica at a time (a new attempt is created only after the previous one is
//! gone, `Restart` removes it first); an exited container restarts per its restart policy after
//! an exponential backoff; a failing liveness probe stops the container (its exit then follows
//! the restart policy); readiness gates `ready`; containers of replicas no longer desired are
//! stopped with a grace period, then removed.

mod backoff;
mod core;
pub mod probe;
mod slot;
mod types;

#[cfg(test)]
mod tests;

pub use self::core::Supervisor;
pub use backoff::restart_delay_ms;
pub use probe::ProbeTracker;
pub use types::{
    Action, DesiredReplica, Outcome, ProbeKind, ProbeRequest, REPLICA_LABEL, ReplicaRecord,
    ReplicaStatus, StopReason, WORKLOAD_LABEL, parse_container_id,
};

/// Node-wide knobs of the supervisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SupervisorConfig {
    /// Cap on any restart backoff, in milliseconds.
    pub max_backoff_ms: u64,
    /// A container that ran at least this long before exiting resets the backoff sequence.
    pub reset_after_ms: u64,
    /// Grace period for stops, in milliseconds.
    pub stop_grace_ms: u64,
}

impl Default for SupervisorConfig {
    fn default() -> Self {
        Self {
            max_backoff_ms: 300_000,
            reset_after_ms: 60_000,
            stop_grace_ms: 10_000,
        }
    }
}
