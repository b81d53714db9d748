//! The in-process cluster simulator (feature `sim`): coordinators and agents of a whole
//! Cloudless cluster in one process, seeded, on tokio's paused clock, with a fault API and
//! invariant checks after every step. Researchers and the scenario tests (`tests/sim_*.rs`)
//! use it; design record: `docs/design/simulator.md`.
//!
//! ```text
//!            SimCluster (seed, step, Checker)
//!   ┌──────────────┬──────────────┴───────────────┬──────────────────────┐
//!   │ coordinators │ consensus                     │ agents               │
//!   │ Coordinator  │ 1: MemConsensus               │ Agent on FakeRuntime │
//!   │ ×N           │ 3/5: RaftConsensus on         │ ×M (zone, region,    │
//!   │              │   MemTransport, redb in tmp   │   resources, dir)    │
//!   └──────▲───────┴───────────────────────────────┴─────────┬────────────┘
//!          └──────────── SimLink (partitions, drop, delay, NotLeader hints) ◀┘
//! ```
//!
//! ```no_run
//! # async fn demo() -> Result<(), cloudless::sim::SimError> {
//! use std::time::Duration;
//! use cloudless::sim::{AgentSpec, SimCluster};
//! use cloudless::core::workload::WorkloadSpec;
//!
//! // Inside a `#[tokio::test(start_paused = true)]`.
//! let mut sim = SimCluster::builder(42)
//!     .coordinators(3)
//!     .agents((0..6).map(|i| AgentSpec::new(format!("n{i}")).zone(format!("z{}", i % 3))))
//!     .build()
//!     .await?;
//! let mut spec = WorkloadSpec::new("web:1");
//! spec.replicas = 3;
//! let web = sim.create_workload("default", "web", spec).await?;
//! sim.run_until(Duration::from_secs(30), "3 replicas running", |v| v.running_of(web).len() == 3)
//!     .await?;
//! sim.shutdown().await;
//! # Ok(()) }
//! ```

mod clock;
mod cluster;
mod consensus;
mod faults;
mod invariants;
mod link;
mod rng;
mod time;

pub use clock::SimClock;
pub use cluster::{
    AgentSpec, COORDINATOR_ID_BASE, ConsensusKind, KillRecord, SIM_ORIGIN_MS, SimBuilder,
    SimCluster, StepView,
};
pub use consensus::{SIM_CLUSTER, sim_timeouts};
pub use faults::{Fault, FaultMix, FaultSchedule, ScheduledFault, SimNode};
pub use invariants::{
    Checker, Invariant, InvariantConfig, Observation, RunningContainer, Violation,
};
pub use link::{LinkFaults, LinkStats, SimLink, SimNet};
pub use rng::SimRng;
pub use time::{BUSY_TICK, REAL_PER_TICK, TICK, TimeStats};

/// Why a simulation could not be set up or did not go as required.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// Building the cluster failed (temp dir, consensus, coordinator or agent start).
    #[error("simulation setup: {0}")]
    Setup(String),
    /// An invariant broke.
    #[error(transparent)]
    Invariant(#[from] Violation),
    /// A condition did not hold in time.
    #[error("timed out after {waited:?} waiting for {what} (seed {seed}, step {step})")]
    Timeout {
        /// What was awaited.
        what: String,
        /// How long (virtual time).
        waited: std::time::Duration,
        /// The seed.
        seed: u64,
        /// The step at which the wait gave up.
        step: u64,
    },
    /// A command was rejected or could not be committed.
    #[error("command {what}: {reason}")]
    Command {
        /// Which command.
        what: String,
        /// Why.
        reason: String,
    },
    /// A fault named a node that does not exist, or an impossible transition.
    #[error("fault {fault}: {reason}")]
    Fault {
        /// The fault.
        fault: String,
        /// Why.
        reason: String,
    },
}
