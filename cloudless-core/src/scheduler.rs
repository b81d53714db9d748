//! The `Scheduler` building block and the researcher-facing `Filter` and `Scorer` plugins.
//!
//! ```text
//!  ClusterSnapshot + PlacementRequest ──▶ filters ──▶ scorers (each in [0,1]) ──▶ S = Σ wᵢ·sᵢ ──▶ select
//!                                            │
//!                                            └─ rejections counted per filter ─▶ Unplaceable
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, Revision, WorkloadId};
use crate::node::Node;
use crate::replica::Replica;
use crate::resources::Resources;
use crate::state::ClusterState;
use crate::workload::Workload;

/// An immutable view of the cluster for one scheduling pass.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    /// Revision the snapshot was taken at.
    pub revision: Revision,
    /// Nodes by id.
    pub nodes: BTreeMap<NodeId, Node>,
    /// Reserved resources per node.
    pub reserved: BTreeMap<NodeId, Resources>,
    /// Replicas holding reservations.
    pub replicas: BTreeMap<crate::ids::ReplicaId, Replica>,
    /// Workloads by id.
    pub workloads: BTreeMap<WorkloadId, Workload>,
}

impl ClusterSnapshot {
    /// Takes a snapshot of `state`.
    pub fn from_state(state: &ClusterState) -> Self {
        Self {
            revision: state.revision,
            nodes: state.nodes.clone(),
            reserved: state.reserved.clone(),
            replicas: state
                .replicas
                .iter()
                .filter(|(_, r)| r.holds_reservation())
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            workloads: state.workloads.clone(),
        }
    }

    /// Free resources on `node`: allocatable minus reservations (zero-clamped).
    pub fn free_on(&self, node: NodeId) -> Resources {
        let Some(n) = self.nodes.get(&node) else {
            return Resources::ZERO;
        };
        let reserved = self.reserved.get(&node).copied().unwrap_or_default();
        n.report.allocatable.saturating_sub(&reserved)
    }
}

/// Ask to place `count` new replicas of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementRequest {
    /// The workload (its spec and name come from the snapshot or from `workload` below).
    pub workload: Workload,
    /// How many replicas to place.
    pub count: u32,
    /// Nodes not to use (e.g. the node a replica is moving away from).
    pub exclude: Vec<NodeId>,
    /// Seed for any randomness; same snapshot + request + seed gives the same answer.
    pub seed: u64,
}

/// One chosen node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Chosen node.
    pub node: NodeId,
    /// Its final score.
    pub score: f64,
}

/// Why a replica could not be placed: how many nodes each filter rejected.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Unplaceable {
    /// Nodes considered.
    pub total_nodes: usize,
    /// Rejections per reason (e.g. "insufficient memory" -> 3120), in a stable order.
    pub rejected: BTreeMap<String, usize>,
}

impl fmt::Display for Unplaceable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes fit", self.total_nodes)?;
        let mut items: Vec<_> = self.rejected.iter().collect();
        // Largest counts first; ties by reason for determinism.
        items.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (i, (reason, n)) in items.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { ", " })?;
            write!(f, "{n} {reason}")?;
        }
        Ok(())
    }
}

/// The answer to a [`PlacementRequest`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlacementResult {
    /// Chosen nodes, one per placed replica.
    pub placements: Vec<Placement>,
    /// One explanation per replica that could not be placed.
    pub unplaced: Vec<Unplaceable>,
}

/// A scheduler configuration or plugin error.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The configuration is invalid (which field, what was wrong).
    #[error("invalid scheduler config: {0}")]
    InvalidConfig(String),
    /// A plugin failed.
    #[error(transparent)]
    Other(crate::BoxError),
}

/// Decides where new replicas go.
///
/// # Contract
/// - **Pure and deterministic**: the same snapshot, request and seed give the same result; no
///   I/O, no clock, no global randomness.
/// - **Never over-commits**: the placements of one call fit together on their nodes (capacity is
///   reserved as the batch is placed).
/// - `placements.len() + unplaced.len() == request.count`.
/// - Never panics, whatever the snapshot holds.
pub trait Scheduler: Send + Sync + 'static {
    /// Places `request.count` replicas.
    fn place(&self, snapshot: &ClusterSnapshot, request: &PlacementRequest) -> PlacementResult;
}

/// What a filter or scorer sees about the request while a batch is being placed.
#[derive(Debug, Clone, Copy)]
pub struct PlacementContext<'a> {
    /// The snapshot.
    pub snapshot: &'a ClusterSnapshot,
    /// The request.
    pub request: &'a PlacementRequest,
    /// Nodes already chosen earlier in this batch, in order.
    pub batch: &'a [NodeId],
    /// Free resources per node after the batch's reservations so far.
    pub free: &'a BTreeMap<NodeId, Resources>,
}

/// A hard constraint: may this replica go on this node?
///
/// # Contract
/// Pure, deterministic, no panics. `Err(reason)` gives a short, stable reason used for counting
/// (e.g. "insufficient memory"), so rejections can be summed per reason.
pub trait Filter: Send + Sync + 'static {
    /// Stable name, e.g. `resource_fit`.
    fn name(&self) -> &str;
    /// `Ok(())` if the node is feasible, else a short reason.
    fn check(&self, ctx: &PlacementContext<'_>, node: &Node) -> Result<(), String>;
}

/// A soft preference: how good is this node for the replica?
///
/// # Contract
/// Pure, deterministic, no panics; returns a value in `[0, 1]` (values outside, and NaN, are
/// clamped to the range / treated as 0 by the pipeline). Higher is better, except for scorers
/// configured with a negative weight (penalties).
pub trait Scorer: Send + Sync + 'static {
    /// Stable name, e.g. `locality`.
    fn name(&self) -> &str;
    /// A score in `[0, 1]`.
    fn score(&self, ctx: &PlacementContext<'_>, node: &Node) -> f64;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unplaceable_reads_like_an_operator_message() {
        let u = Unplaceable {
            total_nodes: 5000,
            rejected: BTreeMap::from([
                ("insufficient memory".to_owned(), 3120),
                ("zone not allowed".to_owned(), 1880),
            ]),
        };
        assert_eq!(
            u.to_string(),
            "0/5000 nodes fit: 3120 insufficient memory, 1880 zone not allowed"
        );
    }
}
