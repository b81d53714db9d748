//! Reconciling one existing workload.

use std::collections::BTreeSet;

use cloudless_core::ids::NodeId;
use cloudless_core::node::Liveness;
use cloudless_core::replica::{Replica, ReplicaPhase};
use cloudless_core::state::ClusterState;
use cloudless_core::workload::Workload;

use super::{PlaceReason, ReconcileAction, StopReason, UnassignReason, scale_down};
use crate::rollout::{self, RolloutInput, RolloutReplica, RolloutStatus, RolloutStep, count_u32};

/// Appends the actions for `w`, whose ledger entries are `replicas` (by id), and returns its
/// rollout status.
pub(super) fn reconcile(
    state: &ClusterState,
    w: &Workload,
    replicas: &[&Replica],
    actions: &mut Vec<ReconcileAction>,
) -> RolloutStatus {
    let mut live = Vec::new();
    let mut lost = 0usize;
    let mut lost_nodes = BTreeSet::new();
    for r in replicas {
        if r.phase.is_terminal() {
            actions.push(ReconcileAction::Unassign {
                replica: r.id,
                reason: UnassignReason::Finished { phase: r.phase },
            });
            lost += 1;
            lost_nodes.insert(r.node);
            continue;
        }
        let Some(node) = state.nodes.get(&r.node) else {
            actions.push(ReconcileAction::Unassign {
                replica: r.id,
                reason: UnassignReason::NodeGone { node: r.node },
            });
            lost += 1;
            continue;
        };
        if r.phase == ReplicaPhase::Stopping {
            continue;
        }
        // Suspect still counts, so a flapping heartbeat causes no churn. A Down (or Left, or
        // re-registered but not yet Ready) node's replicas are replaced but left in the ledger:
        // if the node returns, the copy that kept running may be the one that survives.
        if !matches!(node.liveness, Liveness::Ready | Liveness::Suspect) {
            lost += 1;
            lost_nodes.insert(r.node);
            continue;
        }
        live.push(RolloutReplica {
            id: r.id,
            generation: r.generation,
            ready: r.ready,
            draining: node.schedulability.draining,
        });
    }

    let input = RolloutInput::for_workload(w, &live);
    let victims = scale_down::choose(state, &input);
    if !victims.is_empty() {
        let keepers = count_u32(live.iter().filter(|r| !input.leaves(r)).count());
        for &replica in &victims {
            actions.push(ReconcileAction::Stop {
                replica,
                reason: StopReason::ScaleDown {
                    desired: w.spec.replicas,
                    live: keepers,
                },
            });
        }
    }
    let remaining: Vec<RolloutReplica> = live
        .iter()
        .filter(|r| !victims.contains(&r.id))
        .copied()
        .collect();
    let input = RolloutInput {
        live: &remaining,
        ..input
    };
    let plan = rollout::plan(&input);
    for step in &plan.steps {
        match *step {
            RolloutStep::Retire { replica, reason } => actions.push(ReconcileAction::Stop {
                replica,
                reason: StopReason::Retired(reason),
            }),
            RolloutStep::Surge { count } => {
                place(state, w, &input, count, lost, lost_nodes.clone(), actions)
            }
        }
    }
    plan.status
}

/// Splits a surge into one `Place` per reason. The live deficit below `replicas` is replacing
/// lost replicas (as many as were lost; a lost replica already replaced adds no deficit) and
/// then plain scale-up; the rest replaces leavers, on draining nodes first, then the rollout.
fn place(
    state: &ClusterState,
    w: &Workload,
    input: &RolloutInput<'_>,
    count: u32,
    lost: usize,
    lost_nodes: BTreeSet<NodeId>,
    actions: &mut Vec<ReconcileAction>,
) {
    let deficit = count_u32(rollout::usize_of(w.spec.replicas).saturating_sub(input.live.len()));
    let from_lost = count_u32(lost).min(deficit);
    let draining: Vec<&RolloutReplica> = input.live.iter().filter(|r| r.draining).collect();
    let drain_nodes: BTreeSet<NodeId> = draining
        .iter()
        .filter_map(|r| state.replicas.get(&r.id).map(|r| r.node))
        .collect();
    let mut left = count;
    for (n, reason, exclude) in [
        (from_lost, PlaceReason::ReplaceLost, lost_nodes),
        (deficit - from_lost, PlaceReason::ScaleUp, BTreeSet::new()),
        (count_u32(draining.len()), PlaceReason::Drain, drain_nodes),
        (u32::MAX, PlaceReason::Rollout, BTreeSet::new()),
    ] {
        let take = n.min(left);
        if take == 0 {
            continue;
        }
        left -= take;
        actions.push(ReconcileAction::Place {
            workload: w.id,
            generation: w.generation,
            count: take,
            exclude: exclude.into_iter().collect(),
            reason,
        });
    }
}
