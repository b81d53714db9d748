//! Commands: the only way cluster state changes. Typed and versioned (DESIGN §8).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{Generation, NodeId, NodeName, ReplicaId, WorkloadId};
use crate::node::{Liveness, NodeReport, Taint};
use crate::replica::ReplicaPhase;
use crate::resources::Resources;
use crate::service::ServiceSpec;
use crate::workload::WorkloadSpec;

/// The command format version this build writes.
///
/// Version 2 added the apply-time host-port check of `AssignReplicas`; entries of version 1
/// (written before it) are still applied, without that check, so replaying an older log gives
/// the state it gave when it was first applied.
pub const COMMAND_VERSION: u32 = 2;

/// The oldest command format version this build applies.
pub const MIN_COMMAND_VERSION: u32 = 1;

/// The first command version whose `AssignReplicas` is refused when a host port is in use.
pub const HOST_PORT_CHECK_SINCE: u32 = 2;

/// A command with its format version, its commit-time wall clock and an optional idempotency key.
///
/// `at_ms` is stamped by the proposer before the command enters consensus, so applying it never
/// reads a clock. An envelope whose `version` is outside
/// [`MIN_COMMAND_VERSION`]`..=`[`COMMAND_VERSION`] is rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CommandEnvelope {
    /// Command format version.
    pub version: u32,
    /// Wall-clock time of the proposal (ms since the Unix epoch).
    pub at_ms: u64,
    /// Mutations with the same key are applied once; a repeat returns the first result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idempotency_key: Option<String>,
    /// The command.
    pub command: Command,
}

impl CommandEnvelope {
    /// Wraps `command` in the current version, stamped at `at_ms`.
    pub fn new(at_ms: u64, command: Command) -> Self {
        Self {
            version: COMMAND_VERSION,
            at_ms,
            idempotency_key: None,
            command,
        }
    }

    /// Sets the idempotency key.
    pub fn with_idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }
}

/// One assignment inside [`Command::AssignReplicas`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Assignment {
    /// Target node.
    pub node: NodeId,
    /// Resources to reserve there.
    pub resources: Resources,
}

/// A join-token record. Only the hash of the secret is ever stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JoinTokenRecord {
    /// Public token id.
    pub id: String,
    /// Role the token grants: `agent` or `coordinator`.
    pub role: String,
    /// SHA-256 of the secret, lowercase hex.
    pub secret_sha256: String,
    /// Expiry (ms since the Unix epoch).
    pub expires_at_ms: u64,
    /// Maximum uses; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<u32>,
    /// Uses so far.
    #[serde(default)]
    pub uses: u32,
    /// Revoked by an operator.
    #[serde(default)]
    pub revoked: bool,
    /// Creation time (ms since the Unix epoch).
    pub created_at_ms: u64,
}

/// Every change to cluster state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type", deny_unknown_fields)]
pub enum Command {
    // ---- nodes ----
    /// Register a node; mints its `NodeId`. Registering an existing name with the same id
    /// updates its report.
    RegisterNode {
        /// Human name (unique).
        name: NodeName,
        /// Initial report.
        report: NodeReport,
    },
    /// A fresh resource report from a node's agent.
    ReportNode {
        /// The node.
        node: NodeId,
        /// Its report.
        report: NodeReport,
    },
    /// Liveness changes, batched (only changes are committed).
    SetLiveness {
        /// `(node, new liveness)` pairs.
        changes: Vec<(NodeId, Liveness)>,
    },
    /// Cordon or uncordon a node.
    Cordon {
        /// The node.
        node: NodeId,
        /// True to cordon, false to uncordon (also ends a drain).
        cordoned: bool,
    },
    /// Start draining a node: cordon it and mark its replicas for replacement.
    Drain {
        /// The node.
        node: NodeId,
    },
    /// Replace a node's taints.
    SetTaints {
        /// The node.
        node: NodeId,
        /// New taints.
        taints: Vec<Taint>,
    },
    /// Remove a node; its replicas are failed and their reservations released.
    RemoveNode {
        /// The node.
        node: NodeId,
    },

    // ---- workloads ----
    /// Create a workload; mints its `WorkloadId`.
    CreateWorkload {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Labels.
        #[serde(default)]
        labels: BTreeMap<String, String>,
        /// Spec (already validated).
        spec: WorkloadSpec,
    },
    /// Replace a workload's spec; bumps its generation when the spec changes.
    UpdateWorkload {
        /// The workload.
        workload: WorkloadId,
        /// Optimistic concurrency: apply only if the current generation equals this.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expected_generation: Option<Generation>,
        /// New spec.
        spec: WorkloadSpec,
    },
    /// Change only the replica count (does not bump the generation).
    ScaleWorkload {
        /// The workload.
        workload: WorkloadId,
        /// New replica count.
        replicas: u32,
    },
    /// Pause or resume rollouts.
    PauseRollout {
        /// The workload.
        workload: WorkloadId,
        /// True to pause.
        paused: bool,
    },
    /// Delete a workload; its replicas are stopped and their reservations released.
    DeleteWorkload {
        /// The workload.
        workload: WorkloadId,
    },

    // ---- replica ledger ----
    /// Assign new replicas of a workload. All-or-nothing: every assignment is fit-checked
    /// against the node's allocatable minus existing reservations (and earlier assignments
    /// in the same command); one misfit rejects the whole command.
    AssignReplicas {
        /// The workload.
        workload: WorkloadId,
        /// The generation the replicas run.
        generation: Generation,
        /// Where to put them.
        assignments: Vec<Assignment>,
    },
    /// An agent's status report for one replica.
    UpdateReplica {
        /// The replica.
        replica: ReplicaId,
        /// New phase.
        phase: ReplicaPhase,
        /// Readiness.
        ready: bool,
        /// Restarts so far.
        restarts: u32,
        /// Container address, once known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        address: Option<String>,
        /// Detail.
        #[serde(default)]
        message: String,
    },
    /// Remove replicas from the ledger, releasing their reservations.
    UnassignReplicas {
        /// The replicas.
        replicas: Vec<ReplicaId>,
    },

    // ---- services ----
    /// Create or replace a service.
    PutService {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Spec.
        spec: ServiceSpec,
    },
    /// Delete a service.
    DeleteService {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },

    // ---- join tokens ----
    /// Store a join-token record (hashed secret).
    CreateJoinToken {
        /// The record.
        token: JoinTokenRecord,
    },
    /// Count one use of a token; rejected if expired, revoked, used up or the hash differs.
    UseJoinToken {
        /// Token id.
        id: String,
        /// SHA-256 of the presented secret.
        secret_sha256: String,
    },
    /// Revoke a token.
    RevokeJoinToken {
        /// Token id.
        id: String,
    },

    // ---- control plane (coordinator) ----
    /// Register a node under an id chosen by the caller: the id its agent already holds
    /// (a harness that hands out ids, or a state restored from an older snapshot). The id must
    /// never have been minted (`>= next_node_id`) and must not be revoked; the name must be
    /// free. Registering an existing id under its own name acts like `RegisterNode`.
    RegisterNodeAs {
        /// The node's id.
        node: NodeId,
        /// Human name (unique).
        name: NodeName,
        /// Initial report.
        report: NodeReport,
    },
    /// Revoke a node's identity: the id joins `revoked_nodes` (the transport refuses it and the
    /// coordinators answer it with permission denied), and the node, if still present, is
    /// removed as by `RemoveNode` (its replicas fail, releasing their reservations).
    RevokeNode {
        /// The node.
        node: NodeId,
        /// Why, for the security event.
        #[serde(default)]
        reason: String,
    },
    /// Register a node that is joining for the first time (enrollment): mints its `NodeId`
    /// like `RegisterNode`, but is refused with `AlreadyExists` when the name is taken. Two
    /// coordinators enrolling the same name at once therefore cannot both hand out a
    /// certificate for one node id.
    EnrollNode {
        /// Human name (unique).
        name: NodeName,
        /// Initial report.
        report: NodeReport,
    },
    /// Remove join-token records that expired at or before `now_ms`.
    PruneJoinTokens {
        /// The proposer's wall clock (ms since the Unix epoch).
        now_ms: u64,
    },
    /// Set a workload's observed generation and conditions (the counters are kept by the
    /// ledger). A condition keeps its `since_ms` while its status stays the same; otherwise it
    /// gets the command's time.
    SetWorkloadStatus {
        /// The workload.
        workload: WorkloadId,
        /// The generation the status describes (not ahead of the workload's).
        observed_generation: Generation,
        /// Conditions, at most one of each kind.
        conditions: Vec<crate::workload::Condition>,
    },

    // ---- events ----
    /// Record an event that no other command implies (e.g. a scheduling failure).
    RecordEvent {
        /// Area.
        category: crate::event::EventCategory,
        /// Severity.
        severity: crate::event::Severity,
        /// Subject.
        subject: String,
        /// Reason.
        reason: String,
        /// Message.
        message: String,
    },
}
