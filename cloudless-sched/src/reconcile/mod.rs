//! The replica reconciler (CLD-REQ-021, -030): desired workloads + replica ledger + node states
//! → actions, each with a reason.
//!
//! ```text
//!  ClusterState ─▶ per replica: counted (node Ready/Suspect, not Stopping, not terminal)
//!                               lost    (node Down/Left/Joining, or terminal → unassign)
//!              ─▶ per workload: scale down surplus keepers ─▶ rollout planner (old generation,
//!                               draining nodes, missing replicas) ─▶ Place / Stop
//!              ─▶ replicas of deleted workloads: stop, unassign once finished
//! ```
//!
//! The reconciler is pure and level-triggered: it reads one state and says what to do now; the
//! driver runs it again after every change. [`Place`](ReconcileAction::Place) goes to the
//! Scheduler and then to `AssignReplicas`; [`to_commands`] turns the rest into core commands.

mod actions;
mod commands;
mod scale_down;
mod workload;

use std::collections::BTreeMap;

use cloudless_core::ids::WorkloadId;
use cloudless_core::replica::{Replica, ReplicaPhase};
use cloudless_core::state::ClusterState;

pub use actions::*;
pub use commands::to_commands;

use crate::rollout::RolloutStatus;

/// The reconciler's answer for one state.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Reconciliation {
    /// What to do, in a deterministic order: per workload by id, then replicas of deleted
    /// workloads by replica id.
    pub actions: Vec<ReconcileAction>,
    /// Where each workload's rollout stands (for status conditions and the CLI).
    pub rollouts: BTreeMap<WorkloadId, RolloutStatus>,
}

/// Reconciles `state`: the actions that move the ledger toward the desired workloads.
///
/// Decisions depend only on the state (node liveness timers live in the failure detector), so
/// no clock is read or needed.
pub fn reconcile(state: &ClusterState) -> Reconciliation {
    let mut out = Reconciliation::default();
    // One pass over the ledger, not one per workload.
    let mut owned: BTreeMap<WorkloadId, Vec<&Replica>> = BTreeMap::new();
    let mut orphans = Vec::new();
    for r in state.replicas.values() {
        if state.workloads.contains_key(&r.workload) {
            owned.entry(r.workload).or_default().push(r);
        } else {
            orphans.push(r);
        }
    }
    for w in state.workloads.values() {
        let replicas = owned.get(&w.id).map(Vec::as_slice).unwrap_or_default();
        let status = workload::reconcile(state, w, replicas, &mut out.actions);
        out.rollouts.insert(w.id, status);
    }
    for r in orphans {
        // DeleteWorkload turned live replicas Stopping; wait for their agents to finish them.
        if r.phase.is_terminal() {
            out.actions.push(ReconcileAction::Unassign {
                replica: r.id,
                reason: UnassignReason::WorkloadDeleted,
            });
        } else if !state.nodes.contains_key(&r.node) {
            out.actions.push(ReconcileAction::Unassign {
                replica: r.id,
                reason: UnassignReason::NodeGone { node: r.node },
            });
        } else if r.phase != ReplicaPhase::Stopping {
            out.actions.push(ReconcileAction::Stop {
                replica: r.id,
                reason: StopReason::WorkloadDeleted,
            });
        }
    }
    out
}
