//! A small cluster model for the reconciler tests: builders over core's real `apply` (so the
//! fit check and the ledger rules are the real ones), a first-fit placement standing in for the
//! Scheduler, and agents that run, ready and finish replicas.

#![allow(dead_code)]

use cloudless_core::ids::{Generation, NodeId, NodeName, ReplicaId, WorkloadId};
use cloudless_core::node::{Liveness, NodeReport, Platform};
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::resources::Resources;
use cloudless_core::state::{
    Applied, Assignment, ClusterState, Command, CommandEnvelope, CommandResult, apply,
};
use cloudless_core::workload::WorkloadSpec;
use cloudless_sched::reconcile::{ReconcileAction, reconcile, to_commands};

/// The wall clock of every command.
pub(crate) const NOW: u64 = 1_000_000;

/// What one replica requests.
pub(crate) fn request() -> Resources {
    Resources {
        cpu_millis: 100,
        memory_mib: 64,
        ..Resources::ZERO
    }
}

/// Applies `command` and expects success.
pub(crate) fn ok(state: &mut ClusterState, command: Command) -> Applied {
    match apply(state, &CommandEnvelope::new(NOW, command.clone())) {
        Ok(applied) => applied,
        Err(e) => panic!("{command:?} was rejected: {e}"),
    }
}

/// Registers a Ready node in `zone` with room for `slots` replicas.
pub(crate) fn node(state: &mut ClusterState, name: &str, zone: &str, slots: u64) -> NodeId {
    let r = request();
    let size = Resources {
        cpu_millis: r.cpu_millis * slots,
        memory_mib: r.memory_mib * slots,
        ..Resources::ZERO
    };
    let report = NodeReport {
        platform: Platform::linux_amd64(),
        region: "eu".into(),
        zone: zone.into(),
        labels: Default::default(),
        capacity: size,
        allocatable: size,
        power: Default::default(),
        reliability: Default::default(),
    };
    let name = NodeName::new(name).expect("valid node name");
    let CommandResult::NodeRegistered { node } =
        ok(state, Command::RegisterNode { name, report }).result
    else {
        panic!("no node id")
    };
    set_liveness(state, node, Liveness::Ready);
    node
}

/// Commits a liveness change.
pub(crate) fn set_liveness(state: &mut ClusterState, node: NodeId, liveness: Liveness) {
    ok(
        state,
        Command::SetLiveness {
            changes: vec![(node, liveness)],
        },
    );
}

/// A spec with `replicas`, `maxSurge` and an optional `minAvailable`.
pub(crate) fn spec(replicas: u32, max_surge: u32, min_available: Option<u32>) -> WorkloadSpec {
    let mut spec = WorkloadSpec::new("localhost/cloudless/busybox:latest");
    spec.replicas = replicas;
    spec.rollout.max_surge = max_surge;
    spec.min_available = min_available;
    spec.resources.requests.cpu = "100m".parse().expect("valid cpu");
    spec.resources.requests.memory = "64Mi".parse().expect("valid memory");
    spec
}

/// Creates a workload.
pub(crate) fn workload(state: &mut ClusterState, name: &str, spec: WorkloadSpec) -> WorkloadId {
    let CommandResult::WorkloadCreated { workload } = ok(
        state,
        Command::CreateWorkload {
            namespace: "default".into(),
            name: name.into(),
            labels: Default::default(),
            spec,
        },
    )
    .result
    else {
        panic!("no workload id")
    };
    workload
}

/// Assigns one replica of `w` (current generation) on `node`.
pub(crate) fn assign(state: &mut ClusterState, w: WorkloadId, node: NodeId) -> ReplicaId {
    let generation = state.workloads[&w].generation;
    let CommandResult::ReplicasAssigned { replicas } = ok(
        state,
        Command::AssignReplicas {
            workload: w,
            generation,
            assignments: vec![Assignment {
                node,
                resources: request(),
            }],
        },
    )
    .result
    else {
        panic!("no replica ids")
    };
    replicas[0]
}

/// An agent's report.
pub(crate) fn report(
    state: &mut ClusterState,
    replica: ReplicaId,
    phase: ReplicaPhase,
    ready: bool,
) {
    let restarts = state.replicas[&replica].restarts;
    ok(
        state,
        Command::UpdateReplica {
            replica,
            phase,
            ready,
            restarts,
            address: None,
            message: String::new(),
        },
    );
}

/// True if the node's agent is reachable (its replicas count as live).
pub(crate) fn reachable(state: &ClusterState, node: NodeId) -> bool {
    state
        .nodes
        .get(&node)
        .is_some_and(|n| matches!(n.liveness, Liveness::Ready | Liveness::Suspect))
}

/// Every reachable agent does its work: new replicas run and pass readiness, stopping ones
/// finish.
pub(crate) fn agents(state: &mut ClusterState) {
    agents_where(state, |_| true);
}

/// Like [`agents`], but only for the replicas `busy` picks (slow agents, slow probes).
pub(crate) fn agents_where(state: &mut ClusterState, busy: impl Fn(ReplicaId) -> bool) {
    let work: Vec<(ReplicaId, ReplicaPhase)> = state
        .replicas
        .values()
        .filter(|r| reachable(state, r.node) && busy(r.id))
        .map(|r| (r.id, r.phase))
        .collect();
    for (id, phase) in work {
        match phase {
            ReplicaPhase::Pending | ReplicaPhase::Starting => {
                report(state, id, ReplicaPhase::Running, true)
            }
            ReplicaPhase::Running if !state.replicas[&id].ready => {
                report(state, id, ReplicaPhase::Running, true)
            }
            ReplicaPhase::Stopping => report(state, id, ReplicaPhase::Succeeded, false),
            _ => {}
        }
    }
}

/// First fit by node id among nodes that accept work, skipping `exclude`: the trivial stand-in
/// for the Scheduler.
pub(crate) fn first_fit(state: &ClusterState, exclude: &[NodeId]) -> Option<NodeId> {
    state
        .nodes
        .values()
        .filter(|n| n.accepts_new_work() && !exclude.contains(&n.id))
        .find(|n| state.free_on(n.id).is_some_and(|f| f.fits(&request())))
        .map(|n| n.id)
}

/// One reconcile round: computes the actions and commits them (placements through
/// [`first_fit`], one `AssignReplicas` per replica). Returns the actions.
pub(crate) fn round(state: &mut ClusterState) -> Vec<ReconcileAction> {
    let actions = reconcile(state).actions;
    for command in to_commands(state, &actions) {
        ok(state, command);
    }
    for a in &actions {
        if let ReconcileAction::Place {
            workload,
            generation,
            count,
            exclude,
            ..
        } = a
        {
            for _ in 0..*count {
                let node = first_fit(state, exclude).expect("the model has room");
                ok(
                    state,
                    Command::AssignReplicas {
                        workload: *workload,
                        generation: *generation,
                        assignments: vec![Assignment {
                            node,
                            resources: request(),
                        }],
                    },
                );
            }
        }
    }
    actions
}

/// Ready replicas of `w` that count: on a reachable node, not stopping, not finished.
pub(crate) fn ready_live(state: &ClusterState, w: WorkloadId) -> usize {
    state
        .replicas_of(w)
        .filter(|r| r.ready && r.phase == ReplicaPhase::Running && reachable(state, r.node))
        .count()
}

/// Generation helper.
pub(crate) fn generation(state: &ClusterState, w: WorkloadId) -> Generation {
    state.workloads[&w].generation
}
