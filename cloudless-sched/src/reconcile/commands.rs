//! Turning actions into core commands.

use cloudless_core::ids::ReplicaId;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::state::{ClusterState, Command};

use super::ReconcileAction;

/// The core commands for the direct actions: one `UpdateReplica` to Stopping per
/// [`Stop`](ReconcileAction::Stop) (keeping the replica's restart count, the reason as its
/// message), then one `UnassignReplicas` for all [`Unassign`](ReconcileAction::Unassign)s.
///
/// [`Place`](ReconcileAction::Place) is skipped: the driver asks the Scheduler first. A stop of
/// a replica that `state` no longer holds, or that is already stopping or finished, and an
/// unassign of a replica already gone, are skipped too (the action was computed from an older state; the next round decides again), so the
/// commands are never rejected as stale.
pub fn to_commands(state: &ClusterState, actions: &[ReconcileAction]) -> Vec<Command> {
    let mut commands = Vec::new();
    let mut unassign: Vec<ReplicaId> = Vec::new();
    for action in actions {
        match action {
            ReconcileAction::Place { .. } => {}
            ReconcileAction::Stop { replica, reason } => {
                let Some(r) = state.replicas.get(replica) else {
                    continue;
                };
                if r.phase == ReplicaPhase::Stopping || !r.phase.can_become(ReplicaPhase::Stopping)
                {
                    continue;
                }
                commands.push(Command::UpdateReplica {
                    replica: *replica,
                    phase: ReplicaPhase::Stopping,
                    ready: false,
                    restarts: r.restarts,
                    address: None,
                    message: reason.to_string(),
                });
            }
            ReconcileAction::Unassign { replica, .. } => {
                if state.replicas.contains_key(replica) {
                    unassign.push(*replica);
                }
            }
        }
    }
    if !unassign.is_empty() {
        commands.push(Command::UnassignReplicas { replicas: unassign });
    }
    commands
}
