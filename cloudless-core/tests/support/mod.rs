//! Builders shared by the state-machine tests.

#![allow(dead_code)]

use cloudless_core::ids::{NodeId, NodeName, WorkloadId};
use cloudless_core::node::{Liveness, NodeReport, Platform};
use cloudless_core::resources::Resources;
use cloudless_core::state::{
    Applied, ApplyError, Assignment, ClusterState, Command, CommandEnvelope, CommandResult, apply,
};
use cloudless_core::workload::WorkloadSpec;

/// The wall clock every helper command carries.
pub(crate) const NOW: u64 = 1_000_000;

/// CPU and memory only.
pub(crate) fn res(cpu_millis: u64, memory_mib: u64) -> Resources {
    Resources {
        cpu_millis,
        memory_mib,
        ..Resources::ZERO
    }
}

/// A linux/amd64 report with `allocatable == capacity == res(cpu, mem)`.
pub(crate) fn report(cpu_millis: u64, memory_mib: u64) -> NodeReport {
    NodeReport {
        platform: Platform::linux_amd64(),
        region: "eu".into(),
        zone: "z1".into(),
        labels: Default::default(),
        capacity: res(cpu_millis, memory_mib),
        allocatable: res(cpu_millis, memory_mib),
        power: Default::default(),
        reliability: Default::default(),
    }
}

/// A valid node name.
pub(crate) fn name(s: &str) -> NodeName {
    NodeName::new(s).unwrap()
}

/// Applies `command` at [`NOW`].
pub(crate) fn run(state: &mut ClusterState, command: Command) -> Result<Applied, ApplyError> {
    apply(state, &CommandEnvelope::new(NOW, command))
}

/// Applies `command` and expects success.
pub(crate) fn ok(state: &mut ClusterState, command: Command) -> Applied {
    match run(state, command.clone()) {
        Ok(applied) => applied,
        Err(e) => panic!("{command:?} was rejected: {e}"),
    }
}

/// Applies `command`, expects a rejection, and checks the state did not change at all.
pub(crate) fn rejected(state: &mut ClusterState, command: Command) -> ApplyError {
    let before = state.clone();
    match run(state, command.clone()) {
        Ok(applied) => panic!("{command:?} was applied: {applied:?}"),
        Err(e) => {
            assert_eq!(*state, before, "a rejected command changed the state");
            e
        }
    }
}

/// Registers a node and marks it Ready.
pub(crate) fn ready_node(state: &mut ClusterState, node: &str, cpu: u64, mem: u64) -> NodeId {
    let id = match ok(
        state,
        Command::RegisterNode {
            name: name(node),
            report: report(cpu, mem),
        },
    )
    .result
    {
        CommandResult::NodeRegistered { node } => node,
        other => panic!("unexpected {other:?}"),
    };
    ok(
        state,
        Command::SetLiveness {
            changes: vec![(id, Liveness::Ready)],
        },
    );
    id
}

/// Creates `default/<name>` running `img:1`.
pub(crate) fn workload(state: &mut ClusterState, name: &str) -> WorkloadId {
    match ok(
        state,
        Command::CreateWorkload {
            namespace: "default".into(),
            name: name.into(),
            labels: Default::default(),
            spec: WorkloadSpec::new("img:1"),
        },
    )
    .result
    {
        CommandResult::WorkloadCreated { workload } => workload,
        other => panic!("unexpected {other:?}"),
    }
}

/// Assigns one replica per `(node, resources)` at the workload's current generation.
pub(crate) fn assign_cmd(
    state: &ClusterState,
    workload: WorkloadId,
    to: &[(NodeId, Resources)],
) -> Command {
    Command::AssignReplicas {
        workload,
        generation: state.workloads[&workload].generation,
        assignments: to
            .iter()
            .map(|(node, resources)| Assignment {
                node: *node,
                resources: *resources,
            })
            .collect(),
    }
}

/// The `(kind, key, present)` triple of every change, for compact assertions.
pub(crate) fn change_keys(applied: &Applied) -> Vec<(String, String, bool)> {
    applied
        .changes
        .iter()
        .map(|c| (c.kind.to_string(), c.key.clone(), c.object.is_some()))
        .collect()
}

/// Reservations recomputed from the ledger, zero entries omitted (as `state.reserved` keeps them).
pub(crate) fn reserved_from_ledger(
    state: &ClusterState,
) -> std::collections::BTreeMap<NodeId, Resources> {
    let mut out = std::collections::BTreeMap::<NodeId, Resources>::new();
    for r in state.replicas.values().filter(|r| r.holds_reservation()) {
        let entry = out.entry(r.node).or_insert(Resources::ZERO);
        *entry = entry.checked_add(&r.resources).unwrap();
    }
    out.retain(|_, r| *r != Resources::ZERO);
    out
}

/// [`assign_cmd`] applied with [`ok`].
pub(crate) fn ok_assign(
    state: &mut ClusterState,
    workload: WorkloadId,
    to: &[(NodeId, Resources)],
) -> Applied {
    let cmd = assign_cmd(state, workload, to);
    ok(state, cmd)
}

/// [`assign_cmd`] applied with [`rejected`].
pub(crate) fn rejected_assign(
    state: &mut ClusterState,
    workload: WorkloadId,
    to: &[(NodeId, Resources)],
) -> ApplyError {
    let cmd = assign_cmd(state, workload, to);
    rejected(state, cmd)
}
