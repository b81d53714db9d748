//! Host ports at apply time: `AssignReplicas` is refused when a replica on the node (of any
//! workload, its own included) or an earlier assignment of the same command already publishes
//! one of the workload's `(hostPort, protocol)` pairs, so two coordinators' concurrent decisions
//! cannot both commit a conflict.

#![allow(clippy::unwrap_used)]

mod support;

use cloudless_core::ids::{NodeId, ReplicaId, WorkloadId};
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::state::{
    ApplyError, ClusterState, Command, CommandEnvelope, CommandResult, apply,
};
use cloudless_core::workload::{ContainerPort, HostPort, Protocol, WorkloadSpec};
use support::*;

/// Creates `default/<name>` publishing `ports` as `(hostPort, protocol)`.
fn workload_with_ports(
    state: &mut ClusterState,
    name: &str,
    ports: &[(u16, Protocol)],
) -> WorkloadId {
    let mut spec = WorkloadSpec::new("img:1");
    spec.ports = ports
        .iter()
        .enumerate()
        .map(|(i, (host, protocol))| ContainerPort {
            name: format!("p{i}"),
            container_port: 80,
            protocol: *protocol,
            host_port: Some(*host),
        })
        .collect();
    match ok(
        state,
        Command::CreateWorkload {
            namespace: "default".into(),
            name: name.into(),
            labels: Default::default(),
            spec,
        },
    )
    .result
    {
        CommandResult::WorkloadCreated { workload } => workload,
        other => panic!("unexpected {other:?}"),
    }
}

fn assign(state: &mut ClusterState, w: WorkloadId, nodes: &[NodeId]) -> Vec<ReplicaId> {
    let to: Vec<_> = nodes.iter().map(|n| (*n, res(100, 100))).collect();
    let cmd = assign_cmd(state, w, &to);
    match ok(state, cmd).result {
        CommandResult::ReplicasAssigned { replicas } => replicas,
        other => panic!("unexpected {other:?}"),
    }
}

fn refused(state: &mut ClusterState, w: WorkloadId, nodes: &[NodeId]) -> ApplyError {
    let to: Vec<_> = nodes.iter().map(|n| (*n, res(100, 100))).collect();
    let cmd = assign_cmd(state, w, &to);
    rejected(state, cmd)
}

const TCP_8080: HostPort = HostPort {
    port: 8080,
    protocol: Protocol::Tcp,
};

#[test]
fn a_port_taken_by_another_workload_is_refused_naming_port_node_and_holder() {
    let mut state = ClusterState::new();
    let n1 = ready_node(&mut state, "a", 1000, 1000);
    let n2 = ready_node(&mut state, "b", 1000, 1000);
    let proxy = workload_with_ports(&mut state, "proxy", &[(8080, Protocol::Tcp)]);
    let web = workload_with_ports(
        &mut state,
        "web",
        &[(9090, Protocol::Tcp), (8080, Protocol::Tcp)],
    );
    let held = assign(&mut state, proxy, &[n1]);

    let err = refused(&mut state, web, &[n1]);
    assert_eq!(
        err,
        ApplyError::HostPortInUse {
            node: n1,
            port: TCP_8080,
            holder: Some(held[0]),
        }
    );
    assert_eq!(
        err.to_string(),
        format!(
            "host port 8080/TCP on node {n1} is in use by replica {}",
            held[0]
        )
    );
    // All or nothing: a good assignment in the same command does not go through either.
    assert!(matches!(
        refused(&mut state, web, &[n2, n1]),
        ApplyError::HostPortInUse { node, .. } if node == n1
    ));
    // Elsewhere it is accepted.
    assign(&mut state, web, &[n2]);
    assert_eq!(state.replicas.len(), 2);
}

#[test]
fn the_protocol_is_part_of_the_port_and_workloads_without_host_ports_are_unaffected() {
    let mut state = ClusterState::new();
    let n1 = ready_node(&mut state, "a", 1000, 1000);
    let tcp = workload_with_ports(&mut state, "dns-tcp", &[(53, Protocol::Tcp)]);
    let udp = workload_with_ports(&mut state, "dns-udp", &[(53, Protocol::Udp)]);
    let plain = workload(&mut state, "plain");
    assign(&mut state, tcp, &[n1]);
    assign(&mut state, udp, &[n1]);
    assign(&mut state, plain, &[n1, n1]);
    let again = workload_with_ports(&mut state, "dns-udp-2", &[(53, Protocol::Udp)]);
    assert!(matches!(
        refused(&mut state, again, &[n1]),
        ApplyError::HostPortInUse {
            port: HostPort {
                port: 53,
                protocol: Protocol::Udp
            },
            ..
        }
    ));
}

#[test]
fn two_replicas_of_one_workload_never_share_a_node() {
    let mut state = ClusterState::new();
    let n1 = ready_node(&mut state, "a", 1000, 1000);
    let n2 = ready_node(&mut state, "b", 1000, 1000);
    let web = workload_with_ports(&mut state, "web", &[(8080, Protocol::Tcp)]);
    // Within one command: the second assignment conflicts with the first.
    assert_eq!(
        refused(&mut state, web, &[n1, n1]),
        ApplyError::HostPortInUse {
            node: n1,
            port: TCP_8080,
            holder: None,
        }
    );
    assert_eq!(
        refused(&mut state, web, &[n1, n1]).to_string(),
        format!(
            "host port 8080/TCP on node {n1} is in use by another assignment of the same command"
        )
    );
    let first = assign(&mut state, web, &[n1, n2]);
    // Across commands: the replica already there holds it.
    assert_eq!(
        refused(&mut state, web, &[n2]),
        ApplyError::HostPortInUse {
            node: n2,
            port: TCP_8080,
            holder: Some(first[1]),
        }
    );
}

#[test]
fn a_stopping_replica_still_holds_the_port_and_a_finished_one_releases_it() {
    let mut state = ClusterState::new();
    let n1 = ready_node(&mut state, "a", 1000, 1000);
    let proxy = workload_with_ports(&mut state, "proxy", &[(8080, Protocol::Tcp)]);
    let web = workload_with_ports(&mut state, "web", &[(8080, Protocol::Tcp)]);
    let held = assign(&mut state, proxy, &[n1]);
    let report = |phase| Command::UpdateReplica {
        replica: held[0],
        phase,
        ready: false,
        restarts: 0,
        address: None,
        message: String::new(),
    };
    ok(&mut state, report(ReplicaPhase::Stopping));
    assert!(matches!(
        refused(&mut state, web, &[n1]),
        ApplyError::HostPortInUse { .. }
    ));
    ok(&mut state, report(ReplicaPhase::Succeeded));
    assign(&mut state, web, &[n1]);
}

#[test]
fn concurrent_decisions_from_one_snapshot_commit_only_one_conflicting_replica() {
    // Two coordinators decide from the same state: each puts its workload's replica on n1.
    let mut state = ClusterState::new();
    let n1 = ready_node(&mut state, "a", 1000, 1000);
    let a = workload_with_ports(&mut state, "a", &[(8080, Protocol::Tcp)]);
    let b = workload_with_ports(&mut state, "b", &[(8080, Protocol::Tcp)]);
    let decision_a = assign_cmd(&state, a, &[(n1, res(100, 100))]);
    let decision_b = assign_cmd(&state, b, &[(n1, res(100, 100))]);

    // Whatever order consensus picks, the first commits and the second is refused — and every
    // member applying the same log ends in the same state.
    for (first, second, winner) in [(&decision_a, &decision_b, a), (&decision_b, &decision_a, b)] {
        let mut member_1 = state.clone();
        let mut member_2 = state.clone();
        for member in [&mut member_1, &mut member_2] {
            ok(member, first.clone());
            assert!(matches!(
                rejected(member, second.clone()),
                ApplyError::HostPortInUse { node, port: TCP_8080, holder: Some(_) } if node == n1
            ));
        }
        assert_eq!(member_1, member_2);
        let on_n1: Vec<_> = member_1.replicas_on(n1).map(|r| r.workload).collect();
        assert_eq!(on_n1, vec![winner]);
    }
}

#[test]
fn entries_written_before_the_check_replay_as_they_first_applied() {
    // A log written by a build without the host-port check (command version 1) may hold two
    // replicas of a hostPort workload on one node; replaying it must rebuild the same state
    // as the snapshot of a member that applied it back then.
    let mut state = ClusterState::new();
    let n1 = ready_node(&mut state, "a", 1000, 1000);
    let web = workload_with_ports(&mut state, "web", &[(8080, Protocol::Tcp)]);
    let cmd = assign_cmd(&state, web, &[(n1, res(100, 100)), (n1, res(100, 100))]);
    let mut old = CommandEnvelope::new(NOW, cmd.clone());
    old.version = 1;
    let applied = apply(&mut state, &old).unwrap();
    assert!(
        matches!(&applied.result, CommandResult::ReplicasAssigned { replicas } if replicas.len() == 2),
        "{applied:?}"
    );
    // The same decision in the current format is refused.
    assert!(matches!(
        rejected(&mut state, cmd),
        ApplyError::HostPortInUse { .. }
    ));
}

#[test]
fn a_deleted_workloads_stopping_replica_still_holds_its_port() {
    let mut state = ClusterState::new();
    let n1 = ready_node(&mut state, "a", 1000, 1000);
    let old = workload_with_ports(&mut state, "proxy", &[(8080, Protocol::Tcp)]);
    let held = assign(&mut state, old, &[n1]);
    ok(&mut state, Command::DeleteWorkload { workload: old });
    assert_eq!(state.replicas[&held[0]].phase, ReplicaPhase::Stopping);
    // Recreated under another id while the old container is still stopping.
    let new = workload_with_ports(&mut state, "proxy-2", &[(8080, Protocol::Tcp)]);
    assert_eq!(
        refused(&mut state, new, &[n1]),
        ApplyError::HostPortInUse {
            node: n1,
            port: TCP_8080,
            holder: Some(held[0]),
        }
    );
}

#[test]
fn an_older_generation_holds_the_ports_it_was_assigned_with() {
    let mut state = ClusterState::new();
    let n1 = ready_node(&mut state, "a", 1000, 1000);
    let web = workload_with_ports(&mut state, "web", &[(8080, Protocol::Tcp)]);
    let held = assign(&mut state, web, &[n1]);
    // A rollout moves web to 9090; its generation-1 replica still publishes 8080.
    let mut spec = state.workloads[&web].spec.clone();
    spec.ports[0].host_port = Some(9090);
    ok(
        &mut state,
        Command::UpdateWorkload {
            workload: web,
            expected_generation: None,
            spec,
        },
    );
    let api = workload_with_ports(&mut state, "api", &[(8080, Protocol::Tcp)]);
    assert_eq!(
        refused(&mut state, api, &[n1]),
        ApplyError::HostPortInUse {
            node: n1,
            port: TCP_8080,
            holder: Some(held[0]),
        }
    );
    // 9090 is free there: only the new generation will publish it.
    let other = workload_with_ports(&mut state, "other", &[(9090, Protocol::Tcp)]);
    assign(&mut state, other, &[n1]);
}
