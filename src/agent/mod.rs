//! The agent: keeps the replicas the coordinators assign to this node running.
//!
//! One task owns all mutable state (the [`Supervisor`](cloudless_runtime::supervisor::Supervisor)
//! decision core, the held assignment set, unsent reports) and talks to the outside through the
//! [`ControlPlane`], the [`Runtime`] and short-lived helper tasks (one per container operation
//! or probe) whose results come back over a channel. Design record:
//! `docs/design/agent-supervisor.md`.
//!
//! ```text
//!   ControlPlane ◀─heartbeat/assignments/report─┐
//!                                               │
//!   data_dir/agent-state.json ◀─persist── agent task ──actions──▶ op tasks ──▶ Runtime
//!                                               ▲  ▲                   │
//!                                   probe tasks─┘  └──── completions ──┘ + events + list()
//! ```
//!
//! With the control plane unreachable the agent keeps supervising the assignment set it last
//! fetched (persisted, so it survives an agent restart), and sends its latest unsent reports on
//! reconnect. Stopping the agent leaves containers running; a new agent on the same data dir
//! adopts them.

mod config;
mod control_loop;
mod driver;
mod persist;
mod probes;
pub mod remote;
mod resources;

use std::collections::BTreeMap;
use std::sync::Arc;

use cloudless_core::clock::Clock;
use cloudless_core::ids::{NodeId, ReplicaId, Revision};
use cloudless_core::runtime::Runtime;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::control::{ControlPlane, ReplicaReport};

pub use config::{AgentConfig, ConfigError};
pub use persist::StateError;
pub use remote::{ReplicaHost, ReplicaStreamServer, serve_replica_streams};
pub use resources::{
    FixedResourceProbe, HostResources, ProcResourceProbe, ResourceProbe, ResourceProbeError,
};

/// What an agent runs against.
#[derive(Clone)]
pub struct AgentDeps {
    /// This node's id (from enrollment).
    pub node: NodeId,
    /// The coordinators.
    pub control: Arc<dyn ControlPlane>,
    /// The container runtime.
    pub runtime: Arc<dyn Runtime>,
    /// Wall-clock time (timestamps in reports and the state file).
    pub clock: Arc<dyn Clock>,
    /// Reads the host's capacity.
    pub resources: Arc<dyn ResourceProbe>,
}

/// Why an agent could not start.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The configuration is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The persisted state could not be read or written.
    #[error(transparent)]
    State(#[from] StateError),
    /// The host's resources could not be read.
    #[error("resource probe: {0}")]
    Resources(#[from] ResourceProbeError),
    /// The runtime could not be asked for its containers or events.
    #[error("runtime {runtime}: {reason}")]
    Runtime {
        /// The runtime's name.
        runtime: String,
        /// What failed.
        reason: String,
    },
}

/// What the agent currently knows, published after every change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentSnapshot {
    /// Revision of the assignment set it supervises, if it has one.
    pub assignments_revision: Option<Revision>,
    /// The latest status of every assigned replica.
    pub replicas: BTreeMap<ReplicaId, ReplicaReport>,
    /// Whether the last control-plane call succeeded.
    pub control_reachable: bool,
    /// Reports not yet accepted by the control plane.
    pub unsent_reports: usize,
    /// Heartbeats acknowledged so far.
    pub heartbeats_acked: u64,
    /// Images the current assignments run (an image collector keeps them).
    pub images: std::collections::BTreeSet<String>,
}

/// The agent.
#[derive(Debug)]
pub struct Agent;

impl Agent {
    /// Validates the config, loads the persisted state from `data_dir` (a corrupt or
    /// future-version file is an error), and starts the agent task.
    pub async fn start(config: AgentConfig, deps: AgentDeps) -> Result<AgentHandle, AgentError> {
        config.validate()?;
        let node = deps.node;
        let (snapshot_tx, snapshot_rx) = watch::channel(AgentSnapshot::default());
        let (stop_tx, stop_rx) = oneshot::channel();
        let driver = driver::Driver::prepare(config, deps, snapshot_tx).await?;
        let task = tokio::spawn(driver.run(stop_rx));
        Ok(AgentHandle {
            node,
            snapshot: snapshot_rx,
            stop: Some(stop_tx),
            task: Some(task),
        })
    }
}

/// A running agent. Dropping it stops the agent task too (containers keep running).
#[derive(Debug)]
pub struct AgentHandle {
    node: NodeId,
    snapshot: watch::Receiver<AgentSnapshot>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl AgentHandle {
    /// This agent's node.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// What the agent knows now.
    pub fn snapshot(&self) -> AgentSnapshot {
        self.snapshot.borrow().clone()
    }

    /// A receiver that sees every published snapshot (for waiting on a condition).
    pub fn watch(&self) -> watch::Receiver<AgentSnapshot> {
        self.snapshot.clone()
    }

    /// Stops the agent's tasks and waits for them. Containers are left running.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for AgentHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
