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
///
/// ```rust
/// use cloudless_core::ids::NodeName;
/// use cloudless_core::node::{Liveness, NodeReport, Platform};
/// use cloudless_core::replica::ReplicaPhase;
/// use cloudless_core::resources::Resources;
/// use cloudless_core::state::{Assignment, ClusterState, Command, CommandEnvelope, apply};
/// use cloudless_core::workload::WorkloadSpec;
/// use cloudless_sched::reconcile::{ReconcileAction, StopReason, reconcile, to_commands};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let mut state = ClusterState::new();
/// let run = |state: &mut ClusterState, command| apply(state, &CommandEnvelope::new(1_000, command));
/// let size = Resources { cpu_millis: 1_000, memory_mib: 1_024, ..Resources::ZERO };
/// let report = NodeReport {
///     platform: Platform::linux_amd64(),
///     region: String::new(),
///     zone: String::new(),
///     labels: Default::default(),
///     capacity: size,
///     allocatable: size,
///     power: Default::default(),
///     reliability: Default::default(),
/// };
/// run(&mut state, Command::RegisterNode { name: NodeName::new("pi")?, report })?;
/// let node = *state.nodes.keys().next().ok_or("no node")?;
/// run(&mut state, Command::SetLiveness { changes: vec![(node, Liveness::Ready)] })?;
/// let create = Command::CreateWorkload {
///     namespace: "default".into(),
///     name: "web".into(),
///     labels: Default::default(),
///     spec: WorkloadSpec::new("nginx:1.27"),
/// };
/// run(&mut state, create)?;
/// let web = state.workload_by_name("default", "web").ok_or("no workload")?;
/// let (workload, generation) = (web.id, web.generation);
/// let assignments = vec![Assignment { node, resources: Resources::ZERO }];
/// run(&mut state, Command::AssignReplicas { workload, generation, assignments })?;
///
/// // Scaled to zero: the reconciler stops the surplus replica ...
/// run(&mut state, Command::ScaleWorkload { workload, replicas: 0 })?;
/// let actions = reconcile(&state).actions;
/// assert!(matches!(actions[..], [ReconcileAction::Stop { reason: StopReason::ScaleDown { desired: 0, .. }, .. }]));
///
/// // ... as commands the driver proposes.
/// for command in to_commands(&state, &actions) {
///     run(&mut state, command)?;
/// }
/// assert!(state.replicas.values().all(|r| r.phase == ReplicaPhase::Stopping));
/// # Ok(())
/// # }
/// ```
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
