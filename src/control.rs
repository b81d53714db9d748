//! The agent ↔ coordinator control contract.
//!
//! An agent talks to the control plane through [`ControlPlane`] only. The coordinator side
//! provides the implementations (in-process for the simulator and for a Fabric that runs both
//! roles, and over the typed RPC layer for separate processes); the agent is written against the
//! trait and never sees which one it has.
//!
//! The protocol is pull-based so the leader's load stays bounded and agents behind NAT only ever
//! dial out:
//!
//! ```text
//!  agent ──heartbeat(node, report)──▶ leader   ack: liveness, assignments revision, period, leader hint
//!  agent ──assignments(node)────────▶ leader   only when the ack's revision differs from the agent's
//!  agent ──report(node, [status])───▶ leader   replica phase/readiness/restarts/address changes
//!  agent ──report_stopped(node, [r])─▶ leader   replicas left out of its set, containers removed
//! ```
//!
//! Every call names the calling node; implementations that receive calls from a network check
//! that the caller's identity is that node (an agent may only act as itself, DESIGN §8).

use std::time::Duration;

use async_trait::async_trait;
use cloudless_core::ids::{Generation, NodeId, ReplicaId, Revision, WorkloadId};
use cloudless_core::node::{Liveness, NodeReport};
use cloudless_core::replica::{Replica, ReplicaPhase};
use cloudless_core::workload::WorkloadSpec;

/// The coordinator's answer to a heartbeat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatAck {
    /// The node's liveness as the leader now sees it.
    pub liveness: Liveness,
    /// Revision of this node's assignment set; the agent fetches [`ControlPlane::assignments`]
    /// when it differs from the revision of the set it holds.
    pub assignments_revision: Revision,
    /// When to send the next heartbeat (adapts to cluster size).
    pub interval: Duration,
    /// The current leader, when known.
    pub leader: Option<NodeId>,
}

/// One replica assigned to the calling node, with everything needed to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignedReplica {
    /// The ledger entry (id, workload, generation, node, reserved resources, last status).
    pub replica: Replica,
    /// Namespace of the owning workload.
    pub namespace: String,
    /// Name of the owning workload.
    pub workload_name: String,
    /// The spec of the generation the replica runs.
    pub spec: WorkloadSpec,
}

/// The complete set of replicas assigned to a node at one revision.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AssignmentSet {
    /// The revision this set reflects.
    pub revision: Revision,
    /// The replicas, ordered by id.
    pub replicas: Vec<AssignedReplica>,
}

/// An agent's status report for one replica it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaReport {
    /// The replica.
    pub replica: ReplicaId,
    /// Its workload (lets the coordinator reconcile replicas it no longer knows).
    pub workload: WorkloadId,
    /// The generation the replica runs.
    pub generation: Generation,
    /// Lifecycle phase.
    pub phase: ReplicaPhase,
    /// Passing readiness.
    pub ready: bool,
    /// Container restarts so far.
    pub restarts: u32,
    /// The container's network address, once known.
    pub address: Option<String>,
    /// Human-readable detail.
    pub message: String,
}

/// An agent's word that a replica it was told to stop is gone from its node: a fetched
/// assignment set (revision `set_revision`) left the replica out, the agent stopped and removed
/// its containers, and a later listing showed none left.
///
/// The coordinator finishes the replica (`Succeeded`) only if its ledger has it `Stopping` since
/// no later than `set_revision`; any other stop report is ignored (the replica keeps its phase,
/// and a replica the coordinator did not stop is never made terminal this way). Agents never
/// send one for a replica they merely did not find in their persisted set after a restart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoppedReplica {
    /// The replica.
    pub replica: ReplicaId,
    /// Revision of the newest assignment set the agent applied, which left the replica out.
    pub set_revision: Revision,
}

/// Why a control call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// The callee is not the leader; retry against the hinted leader.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader, when known.
        leader: Option<NodeId>,
    },
    /// No coordinator could be reached, or it could not answer now. Retry later.
    #[error("control plane unavailable: {0}")]
    Unavailable(String),
    /// The caller may not do this (e.g. an agent acting for another node, or a removed node).
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    /// The request was understood and refused (e.g. an unknown node).
    #[error("rejected: {0}")]
    Rejected(String),
}

impl ControlError {
    /// True if retrying later (possibly elsewhere) can succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::NotLeader { .. } | Self::Unavailable(_))
    }
}

/// What an agent needs from the control plane.
#[async_trait]
pub trait ControlPlane: Send + Sync + 'static {
    /// Liveness signal plus a fresh resource report.
    async fn heartbeat(
        &self,
        node: NodeId,
        report: &NodeReport,
    ) -> Result<HeartbeatAck, ControlError>;

    /// The full set of replicas currently assigned to `node`.
    async fn assignments(&self, node: NodeId) -> Result<AssignmentSet, ControlError>;

    /// Status changes of replicas running on `node`.
    async fn report(&self, node: NodeId, reports: Vec<ReplicaReport>) -> Result<(), ControlError>;

    /// Replicas left out of `node`'s assignment set whose containers the agent has removed
    /// (see [`StoppedReplica`]). Optional for a control plane: the default ignores them, and the
    /// coordinator then finishes such replicas after its stop grace, as for a silent agent.
    async fn report_stopped(
        &self,
        node: NodeId,
        stopped: Vec<StoppedReplica>,
    ) -> Result<(), ControlError> {
        let _ = (node, stopped);
        Ok(())
    }
}
