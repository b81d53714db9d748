//! Cluster state, apply results, and change events.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::event::Event;
use crate::ids::{Generation, NodeId, ReplicaId, Revision, WorkloadId};
use crate::node::Node;
use crate::replica::Replica;
use crate::resources::{Dimension, Resources};
use crate::service::Service;
use crate::state::command::JoinTokenRecord;
use crate::workload::Workload;

/// Format version of a serialized [`ClusterState`] (persisted in snapshots).
pub const STATE_FORMAT_VERSION: u32 = 1;

/// How many events the state keeps (older ones are dropped, oldest first).
pub const MAX_EVENTS: usize = 1024;

/// How many idempotency keys the state remembers (oldest forgotten first).
pub const MAX_IDEMPOTENCY_KEYS: usize = 4096;

/// The longest idempotency key accepted, in bytes (bounds the memory of the key cache).
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;

/// The key of the `index`-th event recorded at `revision` in [`Change::key`]: `"<revision>.<index>"`.
///
/// One command may record several events (a batched liveness change), so the revision alone
/// is not unique.
pub fn event_key(revision: Revision, index: usize) -> String {
    format!("{}.{index}", revision.0)
}

/// The replicated cluster state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterState {
    /// Serialization format version.
    pub format_version: u32,
    /// Revision of the last applied command (rejected commands do not advance it).
    pub revision: Revision,
    /// Next ids to mint.
    pub next_node_id: u64,
    /// Next workload id.
    pub next_workload_id: u64,
    /// Next replica id.
    pub next_replica_id: u64,
    /// Nodes by id.
    pub nodes: BTreeMap<NodeId, Node>,
    /// Workloads by id.
    pub workloads: BTreeMap<WorkloadId, Workload>,
    /// The replica ledger.
    pub replicas: BTreeMap<ReplicaId, Replica>,
    /// Resources reserved per node (sum of fragments of replicas holding reservations).
    pub reserved: BTreeMap<NodeId, Resources>,
    /// Services by `(namespace, name)`.
    pub services: BTreeMap<(String, String), Service>,
    /// Join tokens by id.
    pub join_tokens: BTreeMap<String, JoinTokenRecord>,
    /// Recent events, oldest first, at most [`MAX_EVENTS`].
    pub events: VecDeque<Event>,
    /// Remembered idempotency keys with the result first returned, oldest first.
    pub idempotency: VecDeque<(String, CommandResult)>,
    /// Node ids whose identity was revoked (never admitted again).
    #[serde(default)]
    pub revoked_nodes: std::collections::BTreeSet<NodeId>,
}

impl ClusterState {
    /// An empty state at revision 0.
    pub fn new() -> Self {
        Self {
            format_version: STATE_FORMAT_VERSION,
            next_node_id: 1,
            next_workload_id: 1,
            next_replica_id: 1,
            ..Default::default()
        }
    }

    /// The node with this name.
    pub fn node_by_name(&self, name: &str) -> Option<&Node> {
        self.nodes.values().find(|n| n.name.as_str() == name)
    }

    /// The workload with this namespace and name.
    pub fn workload_by_name(&self, namespace: &str, name: &str) -> Option<&Workload> {
        self.workloads
            .values()
            .find(|w| w.namespace == namespace && w.name == name)
    }

    /// Replicas of a workload, by id.
    pub fn replicas_of(&self, workload: WorkloadId) -> impl Iterator<Item = &Replica> {
        self.replicas
            .values()
            .filter(move |r| r.workload == workload)
    }

    /// Replicas on a node, by id.
    pub fn replicas_on(&self, node: NodeId) -> impl Iterator<Item = &Replica> {
        self.replicas.values().filter(move |r| r.node == node)
    }

    /// Free resources on a node: allocatable minus reservations (zero-clamped).
    pub fn free_on(&self, node: NodeId) -> Option<Resources> {
        let n = self.nodes.get(&node)?;
        let reserved = self.reserved.get(&node).copied().unwrap_or_default();
        Some(n.report.allocatable.saturating_sub(&reserved))
    }
}

/// What a successfully applied command produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum CommandResult {
    /// Nothing specific to return.
    Done,
    /// A node was registered (or re-registered) with this id.
    NodeRegistered {
        /// The node's id.
        node: NodeId,
    },
    /// A workload was created with this id.
    WorkloadCreated {
        /// The workload's id.
        workload: WorkloadId,
    },
    /// A workload's spec now has this generation.
    WorkloadUpdated {
        /// The current generation.
        generation: Generation,
    },
    /// Replicas were assigned with these ids, in assignment order.
    ReplicasAssigned {
        /// New replica ids.
        replicas: Vec<ReplicaId>,
    },
    /// A join token was accepted; the token's role.
    JoinTokenUsed {
        /// `agent` or `coordinator`.
        role: String,
    },
}

/// Applied: the new revision, the result, and the changes to watch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Applied {
    /// Revision of this command.
    pub revision: Revision,
    /// Its result.
    pub result: CommandResult,
    /// Objects it changed, in a deterministic order.
    pub changes: Vec<Change>,
    /// True if this was a repeat of an idempotency key and nothing changed.
    pub deduplicated: bool,
}

/// Why a command was rejected. A rejected command changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ApplyError {
    /// The envelope's version is not one this build understands.
    #[error("unsupported command version {found} (this build understands {supported})")]
    UnsupportedVersion {
        /// Version found.
        found: u32,
        /// Version supported.
        supported: u32,
    },
    /// The referenced object does not exist.
    #[error("{kind} {key} not found")]
    NotFound {
        /// Kind of object.
        kind: ObjectKind,
        /// Its key.
        key: String,
    },
    /// An object with that name exists already.
    #[error("{kind} {key} already exists")]
    AlreadyExists {
        /// Kind of object.
        kind: ObjectKind,
        /// Its key.
        key: String,
    },
    /// Optimistic concurrency failed.
    #[error("generation conflict: expected {expected}, current {current}")]
    GenerationConflict {
        /// Expected by the caller.
        expected: Generation,
        /// Current.
        current: Generation,
    },
    /// An assignment would over-commit a node.
    #[error("replica does not fit on node {node}: insufficient {dimensions:?}")]
    DoesNotFit {
        /// The node.
        node: NodeId,
        /// The dimensions that do not fit.
        dimensions: Vec<Dimension>,
    },
    /// An assignment would publish a `(hostPort, protocol)` that a replica holding a
    /// reservation on the node — or an earlier assignment of the same command — publishes.
    #[error("host port {port} on node {node} is in use by {}", host_port_holder(.holder))]
    HostPortInUse {
        /// The node.
        node: NodeId,
        /// The port and its protocol.
        port: crate::workload::HostPort,
        /// The replica publishing it; `None` for another assignment of the same command.
        holder: Option<ReplicaId>,
    },
    /// The node does not accept new work (not Ready, cordoned or draining).
    #[error("node {node} does not accept new replicas: {reason}")]
    NodeUnavailable {
        /// The node.
        node: NodeId,
        /// Why.
        reason: String,
    },
    /// A replica status change that is not allowed (e.g. Failed -> Running).
    #[error("invalid transition for replica {replica}: {from:?} -> {to:?}")]
    InvalidTransition {
        /// The replica.
        replica: ReplicaId,
        /// Current phase.
        from: crate::replica::ReplicaPhase,
        /// Requested phase.
        to: crate::replica::ReplicaPhase,
    },
    /// A join token was refused.
    #[error("join token refused: {reason}")]
    TokenRefused {
        /// Why (expired, revoked, used up, wrong secret, unknown).
        reason: String,
    },
    /// The command's content is invalid.
    #[error("invalid command: {0}")]
    Invalid(String),
}

/// Who holds a host port, for [`ApplyError::HostPortInUse`]'s message.
fn host_port_holder(holder: &Option<ReplicaId>) -> String {
    match holder {
        Some(replica) => format!("replica {replica}"),
        None => "another assignment of the same command".to_owned(),
    }
}

/// Kinds of objects in cluster state, for change events and watch filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ObjectKind {
    /// A node.
    Node,
    /// A workload.
    Workload,
    /// A replica.
    Replica,
    /// A service.
    Service,
    /// A join token record.
    JoinToken,
    /// An event.
    Event,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ObjectKind::Node => "node",
            ObjectKind::Workload => "workload",
            ObjectKind::Replica => "replica",
            ObjectKind::Service => "service",
            ObjectKind::JoinToken => "join token",
            ObjectKind::Event => "event",
        })
    }
}

/// The new value of a changed object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "kind", content = "value")]
pub enum Object {
    /// A node.
    Node(Box<Node>),
    /// A workload.
    Workload(Box<Workload>),
    /// A replica.
    Replica(Box<Replica>),
    /// A service.
    Service(Box<Service>),
    /// A join token (hashed secret only).
    JoinToken(Box<JoinTokenRecord>),
    /// An event.
    Event(Box<Event>),
}

/// One object changed at a revision. `object: None` means it was deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Change {
    /// Revision of the command that made the change.
    pub revision: Revision,
    /// Kind of object.
    pub kind: ObjectKind,
    /// Its key: `n7`, `w3`, `r12`, `default/web`, the token id, or for an event
    /// `<revision>.<index>` (see [`event_key`]).
    pub key: String,
    /// New value, or `None` when deleted.
    pub object: Option<Object>,
}
