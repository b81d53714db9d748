//! The reconciler's actions and their reasons.

use std::fmt;

use cloudless_core::ids::{Generation, NodeId, ReplicaId, WorkloadId};
use cloudless_core::replica::ReplicaPhase;
use serde::{Deserialize, Serialize};

use crate::rollout::RetireReason;

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum ReconcileAction {
    /// Place new replicas: the driver asks the Scheduler for `count` nodes and commits
    /// `AssignReplicas` at `generation` (a stale generation is refused at apply time).
    Place {
        /// The workload.
        workload: WorkloadId,
        /// The generation to run.
        generation: Generation,
        /// How many replicas.
        count: u32,
        /// Nodes not to use (those the replaced replicas are leaving).
        exclude: Vec<NodeId>,
        /// Why.
        reason: PlaceReason,
    },
    /// Stop a replica: `UpdateReplica` to Stopping; its agent stops the container and reports
    /// it finished, and a later round unassigns it.
    Stop {
        /// The replica.
        replica: ReplicaId,
        /// Why.
        reason: StopReason,
    },
    /// Remove a replica from the ledger (`UnassignReplicas`), releasing anything it holds.
    Unassign {
        /// The replica.
        replica: ReplicaId,
        /// Why.
        reason: UnassignReason,
    },
}

/// Why replicas are placed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum PlaceReason {
    /// Replacing replicas that were lost: their node is Down, Left or gone, or they finished.
    ReplaceLost,
    /// Replacing replicas on draining nodes (they stop once the replacements are ready).
    Drain,
    /// Rolling out a new generation.
    Rollout,
    /// Fewer live replicas than desired beyond those lost (a new workload or a scale-up).
    ScaleUp,
}

/// Why a replica is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum StopReason {
    /// More live replicas than desired (a scale-down, or a duplicate after a node came back).
    ScaleDown {
        /// Desired replicas.
        desired: u32,
        /// Live keepers before this round's stops.
        live: u32,
    },
    /// Retired by the rollout planner.
    Retired(RetireReason),
    /// Its workload no longer exists.
    WorkloadDeleted,
}

/// Why a replica leaves the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum UnassignReason {
    /// It finished (Succeeded or Failed; a removed node fails its replicas).
    Finished {
        /// Its terminal phase.
        phase: ReplicaPhase,
    },
    /// It finished and its workload no longer exists.
    WorkloadDeleted,
    /// Its node no longer exists.
    NodeGone {
        /// The node.
        node: NodeId,
    },
}

impl fmt::Display for PlaceReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlaceReason::ReplaceLost => "replacing lost replicas",
            PlaceReason::Drain => "replacing replicas on draining nodes",
            PlaceReason::Rollout => "rolling out a new generation",
            PlaceReason::ScaleUp => "fewer replicas than desired",
        })
    }
}

impl fmt::Display for StopReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StopReason::ScaleDown { desired, live } => {
                write!(f, "scale down: {live} live replicas, {desired} desired")
            }
            StopReason::Retired(r) => r.fmt(f),
            StopReason::WorkloadDeleted => f.write_str("workload deleted"),
        }
    }
}

impl fmt::Display for UnassignReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnassignReason::Finished { phase } => write!(f, "finished ({phase:?})"),
            UnassignReason::WorkloadDeleted => f.write_str("finished; workload deleted"),
            UnassignReason::NodeGone { node } => write!(f, "node {node} no longer exists"),
        }
    }
}

impl fmt::Display for ReconcileAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReconcileAction::Place {
                workload,
                generation,
                count,
                reason,
                ..
            } => write!(f, "place {count} x {workload}@{generation}: {reason}"),
            ReconcileAction::Stop { replica, reason } => write!(f, "stop {replica}: {reason}"),
            ReconcileAction::Unassign { replica, reason } => {
                write!(f, "unassign {replica}: {reason}")
            }
        }
    }
}
