//! The coordinator: the control-plane role that agents talk to.
//!
//! Every coordinator serves the [`ControlPlane`] contract, but only the consensus leader
//! answers; the others answer [`ControlError::NotLeader`](crate::control::ControlError) with the
//! leader hint from [`Consensus::status`]. On the leader it runs:
//!
//! ```text
//!  agents ──heartbeat──▶ service ──observe──▶ FailureDetector (pure, leader memory only)
//!         ──report─────▶    │                     │ tick: Ready → Suspect → Down (throttled)
//!         ──assignments─▶   │ RegisterNodeAs,     ▼
//!                           │ ReportNode,     SetLiveness (batched, changes only)
//!                           │ UpdateReplica        │
//!                           ▼                      ▼
//!                        Consensus ◀──── actuation: reconcile → Scheduler → AssignReplicas,
//!                           │                      to_commands, SetWorkloadStatus, events
//!                           └─watch─▶ view (state cache + per-node assignment revisions)
//! ```
//!
//! Design record: `docs/design/control-plane.md`.

mod actuation;
mod config;
mod driver;
pub mod membership;
mod revocation;
mod service;
mod view;

use std::sync::Arc;

use cloudless_core::clock::Clock;
use cloudless_core::consensus::Consensus;
use cloudless_core::ids::NodeId;
use cloudless_core::scheduler::Scheduler;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::control::ControlPlane;

pub use actuation::plan_workload_status;
pub use config::{ConfigError, CoordinatorConfig};
pub use membership::adaptive_interval;
pub use revocation::{RevocationSink, mirror_revocations};

/// What a coordinator runs against.
#[derive(Clone)]
pub struct CoordinatorDeps {
    /// This coordinator's node id (its consensus member id).
    pub node: NodeId,
    /// The replicated cluster state. The coordinator never shuts it down.
    pub consensus: Arc<dyn Consensus>,
    /// Picks nodes for new replicas.
    pub scheduler: Arc<dyn Scheduler>,
    /// Wall-clock time for the timestamps of proposed commands. Liveness timers use the async
    /// runtime's monotonic clock instead.
    pub clock: Arc<dyn Clock>,
}

/// Why a coordinator could not start.
#[derive(Debug, thiserror::Error)]
pub enum CoordinatorError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The consensus member could not be asked for its state or status.
    #[error("consensus: {0}")]
    Consensus(#[from] cloudless_core::consensus::ConsensusError),
}

/// The coordinator.
#[derive(Debug)]
pub struct Coordinator;

impl Coordinator {
    /// Validates the config, reads the current state, and starts the coordinator's tasks
    /// (state watch, leadership poll, failure detector, actuation). Whether it acts depends
    /// on leadership, checked continuously.
    pub async fn start(
        config: CoordinatorConfig,
        deps: CoordinatorDeps,
    ) -> Result<CoordinatorHandle, CoordinatorError> {
        config.validate()?;
        let shared = driver::Shared::new(config, deps).await?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let tasks = driver::spawn(&shared, stop_rx);
        Ok(CoordinatorHandle {
            service: Arc::new(service::Service::new(Arc::clone(&shared))),
            shared,
            stop: stop_tx,
            tasks,
        })
    }
}

/// A running coordinator. Dropping it aborts its tasks.
pub struct CoordinatorHandle {
    shared: Arc<driver::Shared>,
    service: Arc<service::Service>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for CoordinatorHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CoordinatorHandle")
            .field("node", &self.shared.node)
            .finish_non_exhaustive()
    }
}

impl CoordinatorHandle {
    /// What agents talk to (in-process, or behind the RPC layer, which fills the calling node
    /// from the peer's authenticated identity).
    pub fn control_plane(&self) -> Arc<dyn ControlPlane> {
        Arc::clone(&self.service) as Arc<dyn ControlPlane>
    }

    /// This coordinator's node id.
    pub fn node(&self) -> NodeId {
        self.shared.node
    }

    /// True while this coordinator acts as the leader.
    pub fn is_leader(&self) -> bool {
        self.shared.is_leader()
    }

    /// Stops its tasks and waits for them. The consensus is the caller's and keeps running.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        for task in std::mem::take(&mut self.tasks) {
            let _ = task.await;
        }
    }
}

impl Drop for CoordinatorHandle {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
