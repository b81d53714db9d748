//! Focused tests of every cluster-state command: exact results, changes and errors.

#![allow(clippy::unwrap_used)]

mod support;

use cloudless_core::event::{EventCategory, Severity};
use cloudless_core::ids::{Generation, NodeId, ReplicaId, Revision, WorkloadId};
use cloudless_core::node::{Liveness, Schedulability, Taint, TaintEffect};
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::resources::{Dimension, Resources};
use cloudless_core::service::{ServiceSelector, ServiceSpec};
use cloudless_core::state::{
    ApplyError, COMMAND_VERSION, ClusterState, Command, CommandEnvelope, CommandResult,
    JoinTokenRecord, MAX_EVENTS, MAX_IDEMPOTENCY_KEYS, Object, ObjectKind, apply,
};
use cloudless_core::workload::WorkloadSpec;
use support::*;

fn s(kind: &str, key: &str, present: bool) -> (String, String, bool) {
    (kind.to_owned(), key.to_owned(), present)
}

fn replica_update(replica: ReplicaId, phase: ReplicaPhase, ready: bool) -> Command {
    Command::UpdateReplica {
        replica,
        phase,
        ready,
        restarts: 0,
        address: None,
        message: String::new(),
    }
}

fn assigned(applied: &cloudless_core::state::Applied) -> Vec<ReplicaId> {
    match &applied.result {
        CommandResult::ReplicasAssigned { replicas } => replicas.clone(),
        other => panic!("unexpected {other:?}"),
    }
}

// ---- envelope ----

#[test]
fn unknown_version_is_rejected() {
    let mut state = ClusterState::new();
    let mut env = CommandEnvelope::new(
        NOW,
        Command::DeleteService {
            namespace: "a".into(),
            name: "b".into(),
        },
    );
    env.version = COMMAND_VERSION + 1;
    let before = state.clone();
    assert_eq!(
        apply(&mut state, &env),
        Err(ApplyError::UnsupportedVersion {
            found: COMMAND_VERSION + 1,
            supported: COMMAND_VERSION
        })
    );
    assert_eq!(state, before);
}

#[test]
fn idempotency_key_returns_first_result_without_changes() {
    let mut state = ClusterState::new();
    let cmd = Command::RegisterNode {
        name: name("a"),
        report: report(1000, 1024),
    };
    let env = CommandEnvelope::new(NOW, cmd).with_idempotency_key("k1");
    let first = apply(&mut state, &env).unwrap();
    assert!(!first.deduplicated);
    let after_first = state.clone();
    let again = apply(&mut state, &env).unwrap();
    assert!(again.deduplicated);
    assert_eq!(again.result, first.result);
    assert_eq!(again.revision, Revision(1));
    assert!(again.changes.is_empty());
    assert_eq!(state, after_first);
}

#[test]
fn idempotency_keys_are_bounded_and_oldest_forgotten() {
    let mut state = ClusterState::new();
    let event = |i: usize| {
        CommandEnvelope::new(
            NOW,
            Command::RecordEvent {
                category: EventCategory::Workload,
                severity: Severity::Info,
                subject: "x".into(),
                reason: "R".into(),
                message: String::new(),
            },
        )
        .with_idempotency_key(format!("k{i}"))
    };
    for i in 0..=MAX_IDEMPOTENCY_KEYS {
        assert!(!apply(&mut state, &event(i)).unwrap().deduplicated);
    }
    assert_eq!(state.idempotency.len(), MAX_IDEMPOTENCY_KEYS);
    // k0 was evicted, so it applies again; k1 is still remembered.
    assert!(!apply(&mut state, &event(0)).unwrap().deduplicated);
    assert!(apply(&mut state, &event(2)).unwrap().deduplicated);
    let too_long = event(0).with_idempotency_key("x".repeat(300));
    assert!(matches!(
        apply(&mut state, &too_long),
        Err(ApplyError::Invalid(_))
    ));
}

// ---- nodes ----

#[test]
fn register_mints_ids_and_records_an_event() {
    let mut state = ClusterState::new();
    let applied = ok(
        &mut state,
        Command::RegisterNode {
            name: name("edge-1"),
            report: report(2000, 4096),
        },
    );
    assert_eq!(applied.revision, Revision(1));
    assert_eq!(
        applied.result,
        CommandResult::NodeRegistered { node: NodeId(1) }
    );
    assert_eq!(
        change_keys(&applied),
        vec![s("node", "n1", true), s("event", "1.0", true)]
    );
    let node = &state.nodes[&NodeId(1)];
    assert_eq!(node.liveness, Liveness::Joining);
    assert_eq!((node.registered_at_ms, node.last_seen_ms), (NOW, NOW));
    assert_eq!(state.events.len(), 1);
    assert_eq!(state.events[0].reason, "NodeRegistered");
    assert_eq!(state.events[0].revision, Revision(1));
    let second = ok(
        &mut state,
        Command::RegisterNode {
            name: name("edge-2"),
            report: report(1, 1),
        },
    );
    assert_eq!(
        second.result,
        CommandResult::NodeRegistered { node: NodeId(2) }
    );
}

#[test]
fn re_register_keeps_id_taints_and_cordon_and_restarts_a_down_node() {
    let mut state = ClusterState::new();
    let id = ready_node(&mut state, "edge-1", 1000, 1000);
    ok(
        &mut state,
        Command::Cordon {
            node: id,
            cordoned: true,
        },
    );
    ok(
        &mut state,
        Command::SetLiveness {
            changes: vec![(id, Liveness::Down)],
        },
    );
    let applied = ok(
        &mut state,
        Command::RegisterNode {
            name: name("edge-1"),
            report: report(3000, 1000),
        },
    );
    assert_eq!(applied.result, CommandResult::NodeRegistered { node: id });
    let node = &state.nodes[&id];
    assert_eq!(node.liveness, Liveness::Joining);
    assert!(node.schedulability.cordoned);
    assert_eq!(node.report.allocatable.cpu_millis, 3000);
    assert_eq!(state.nodes.len(), 1);
}

#[test]
fn report_updates_report_and_last_seen() {
    let mut state = ClusterState::new();
    let id = ready_node(&mut state, "a", 1000, 1000);
    let env = CommandEnvelope::new(
        NOW + 5,
        Command::ReportNode {
            node: id,
            report: report(5, 5),
        },
    );
    let applied = apply(&mut state, &env).unwrap();
    assert_eq!(change_keys(&applied), vec![s("node", "n1", true)]);
    assert_eq!(state.nodes[&id].last_seen_ms, NOW + 5);
    assert_eq!(state.nodes[&id].report.allocatable, res(5, 5));
    let err = rejected(
        &mut state,
        Command::ReportNode {
            node: NodeId(9),
            report: report(1, 1),
        },
    );
    assert_eq!(
        err,
        ApplyError::NotFound {
            kind: ObjectKind::Node,
            key: "n9".into()
        }
    );
}

#[test]
fn liveness_batches_commit_only_changes() {
    let mut state = ClusterState::new();
    let a = ready_node(&mut state, "a", 1, 1);
    let b = ready_node(&mut state, "b", 1, 1);
    let applied = ok(
        &mut state,
        Command::SetLiveness {
            changes: vec![(a, Liveness::Ready), (b, Liveness::Down)],
        },
    );
    assert_eq!(
        change_keys(&applied),
        vec![s("node", "n2", true), s("event", "5.0", true)]
    );
    let event = state.events.back().unwrap();
    assert_eq!(
        (event.reason.as_str(), event.severity),
        ("NodeDown", Severity::Warning)
    );
    assert_eq!(event.subject, "node/b");
    assert_eq!(state.nodes[&b].liveness, Liveness::Down);

    let dup = rejected(
        &mut state,
        Command::SetLiveness {
            changes: vec![(a, Liveness::Down), (a, Liveness::Left)],
        },
    );
    assert!(matches!(dup, ApplyError::Invalid(_)));
    let unknown = rejected(
        &mut state,
        Command::SetLiveness {
            changes: vec![(a, Liveness::Down), (NodeId(42), Liveness::Left)],
        },
    );
    assert_eq!(
        unknown,
        ApplyError::NotFound {
            kind: ObjectKind::Node,
            key: "n42".into()
        }
    );
}

#[test]
fn cordon_drain_and_uncordon() {
    let mut state = ClusterState::new();
    let n = ready_node(&mut state, "a", 1000, 1000);
    let w = workload(&mut state, "web");
    let r = assigned(&ok_assign(&mut state, w, &[(n, res(100, 100))]))[0];

    let applied = ok(&mut state, Command::Drain { node: n });
    assert_eq!(
        change_keys(&applied),
        vec![
            s("node", "n1", true),
            s("event", &format!("{}.0", applied.revision.0), true)
        ]
    );
    assert_eq!(
        state.nodes[&n].schedulability,
        Schedulability {
            cordoned: true,
            draining: true
        }
    );
    // Draining leaves replicas to the reconciler.
    assert_eq!(state.replicas[&r].phase, ReplicaPhase::Pending);
    let again = ok(&mut state, Command::Drain { node: n });
    assert!(again.changes.is_empty());

    ok(
        &mut state,
        Command::Cordon {
            node: n,
            cordoned: false,
        },
    );
    assert_eq!(state.nodes[&n].schedulability, Schedulability::default());
    ok(
        &mut state,
        Command::Cordon {
            node: n,
            cordoned: true,
        },
    );
    assert_eq!(
        state.nodes[&n].schedulability,
        Schedulability {
            cordoned: true,
            draining: false
        }
    );
}

#[test]
fn taints_are_replaced() {
    let mut state = ClusterState::new();
    let n = ready_node(&mut state, "a", 1, 1);
    let taints = vec![Taint {
        key: "gpu".into(),
        value: String::new(),
        effect: TaintEffect::NoSchedule,
    }];
    let applied = ok(
        &mut state,
        Command::SetTaints {
            node: n,
            taints: taints.clone(),
        },
    );
    assert_eq!(change_keys(&applied), vec![s("node", "n1", true)]);
    assert_eq!(state.nodes[&n].taints, taints);
    let bad = vec![Taint {
        key: String::new(),
        value: String::new(),
        effect: TaintEffect::NoExecute,
    }];
    assert!(matches!(
        rejected(
            &mut state,
            Command::SetTaints {
                node: n,
                taints: bad
            }
        ),
        ApplyError::Invalid(_)
    ));
}

#[test]
fn removing_a_node_fails_its_replicas_and_releases_reservations() {
    let mut state = ClusterState::new();
    let n = ready_node(&mut state, "a", 1000, 1000);
    let other = ready_node(&mut state, "b", 1000, 1000);
    let w = workload(&mut state, "web");
    let ids = assigned(&ok_assign(
        &mut state,
        w,
        &[(n, res(100, 100)), (n, res(200, 100)), (other, res(1, 1))],
    ));
    let applied = ok(&mut state, Command::RemoveNode { node: n });
    let rev = applied.revision.0;
    assert_eq!(
        change_keys(&applied),
        vec![
            s("node", "n1", false),
            s("workload", "w1", true),
            s("replica", "r1", true),
            s("replica", "r2", true),
            s("event", &format!("{rev}.0"), true),
        ]
    );
    assert!(!state.nodes.contains_key(&n));
    assert!(!state.reserved.contains_key(&n));
    assert_eq!(state.reserved[&other], res(1, 1));
    for id in &ids[..2] {
        assert_eq!(state.replicas[id].phase, ReplicaPhase::Failed);
    }
    assert_eq!(state.workloads[&w].status.assigned, 1);
    // The name is free again and gets a fresh id.
    let again = ok(
        &mut state,
        Command::RegisterNode {
            name: name("a"),
            report: report(1, 1),
        },
    );
    assert_eq!(
        again.result,
        CommandResult::NodeRegistered { node: NodeId(3) }
    );
}

/// `(assigned, ready, available)` of `w`.
fn counters(state: &ClusterState, w: WorkloadId) -> (u32, u32, u32) {
    let s = &state.workloads[&w].status;
    (s.assigned, s.ready, s.available)
}

/// Two Ready nodes and a workload with two Running, ready replicas on `a` and one on `b`.
fn three_ready_replicas() -> (ClusterState, NodeId, NodeId, WorkloadId, Vec<ReplicaId>) {
    let mut state = ClusterState::new();
    let a = ready_node(&mut state, "a", 1000, 1000);
    let b = ready_node(&mut state, "b", 1000, 1000);
    let w = workload(&mut state, "web");
    let ids = assigned(&ok_assign(
        &mut state,
        w,
        &[(a, res(1, 1)), (a, res(1, 1)), (b, res(1, 1))],
    ));
    for id in &ids {
        ok(&mut state, replica_update(*id, ReplicaPhase::Running, true));
    }
    assert_eq!(counters(&state, w), (3, 3, 3));
    (state, a, b, w, ids)
}

fn set_liveness(
    state: &mut ClusterState,
    node: NodeId,
    liveness: Liveness,
) -> Vec<(String, String, bool)> {
    change_keys(&ok(
        state,
        Command::SetLiveness {
            changes: vec![(node, liveness)],
        },
    ))
}

#[test]
fn replicas_on_a_down_node_stop_counting_and_count_again_when_it_is_ready() {
    let (mut state, a, _, w, ids) = three_ready_replicas();
    // Suspect still counts: the node may well be serving; nothing about the workload changes.
    let changes = set_liveness(&mut state, a, Liveness::Suspect);
    assert!(!changes.iter().any(|(kind, _, _)| kind == "workload"));
    assert_eq!(counters(&state, w), (3, 3, 3));
    // Down: its two replicas no longer count as ready or available, but keep their
    // reservations (assigned) until they are released; the workload change is reported.
    let changes = set_liveness(&mut state, a, Liveness::Down);
    assert!(changes.contains(&s("workload", "w1", true)));
    assert_eq!(counters(&state, w), (3, 1, 1));
    assert!(ids.iter().all(|id| state.replicas[id].ready));
    // A report from the Down node (committed late) does not bring a replica back.
    ok(
        &mut state,
        replica_update(ids[0], ReplicaPhase::Running, false),
    );
    ok(
        &mut state,
        replica_update(ids[0], ReplicaPhase::Running, true),
    );
    assert_eq!(counters(&state, w), (3, 1, 1));
    // Ready again: they count again, as their reports say.
    let changes = set_liveness(&mut state, a, Liveness::Ready);
    assert!(changes.contains(&s("workload", "w1", true)));
    assert_eq!(counters(&state, w), (3, 3, 3));
    // Left counts as gone too.
    set_liveness(&mut state, a, Liveness::Left);
    assert_eq!(counters(&state, w), (3, 1, 1));
}

#[test]
fn a_re_registered_node_counts_only_once_ready_again() {
    let (mut state, a, _, w, _) = three_ready_replicas();
    set_liveness(&mut state, a, Liveness::Down);
    assert_eq!(counters(&state, w), (3, 1, 1));
    ok(
        &mut state,
        Command::RegisterNode {
            name: name("a"),
            report: report(1000, 1000),
        },
    );
    assert_eq!(state.nodes[&a].liveness, Liveness::Joining);
    assert_eq!(counters(&state, w), (3, 1, 1));
    set_liveness(&mut state, a, Liveness::Ready);
    assert_eq!(counters(&state, w), (3, 3, 3));
    // Re-registering a Ready node (an agent restart that adopted its containers) keeps it
    // Ready and its replicas counted.
    ok(
        &mut state,
        Command::RegisterNode {
            name: name("a"),
            report: report(1000, 1000),
        },
    );
    assert_eq!(counters(&state, w), (3, 3, 3));
}

#[test]
fn removed_and_revoked_nodes_replicas_never_count() {
    let (mut state, a, b, w, _) = three_ready_replicas();
    ok(&mut state, Command::RemoveNode { node: a });
    assert_eq!(counters(&state, w), (1, 1, 1));
    ok(
        &mut state,
        Command::RevokeNode {
            node: b,
            reason: "stolen".into(),
        },
    );
    assert_eq!(counters(&state, w), (0, 0, 0));
}

#[test]
fn a_rollout_on_a_down_node_recounts_with_liveness() {
    let (mut state, a, _, w, _) = three_ready_replicas();
    set_liveness(&mut state, a, Liveness::Down);
    let mut spec = WorkloadSpec::new("img:2");
    spec.replicas = 3;
    ok(
        &mut state,
        Command::UpdateWorkload {
            workload: w,
            expected_generation: None,
            spec,
        },
    );
    // Old generation: one ready (on b), none available.
    assert_eq!(counters(&state, w), (3, 1, 0));
    set_liveness(&mut state, a, Liveness::Ready);
    assert_eq!(counters(&state, w), (3, 3, 0));
}

// ---- workloads ----

#[test]
fn create_workload_rejects_duplicates_and_bad_names() {
    let mut state = ClusterState::new();
    let w = workload(&mut state, "web");
    assert_eq!(w, WorkloadId(1));
    assert_eq!(state.workloads[&w].generation, Generation(1));
    let dup = rejected(
        &mut state,
        Command::CreateWorkload {
            namespace: "default".into(),
            name: "web".into(),
            labels: Default::default(),
            spec: WorkloadSpec::new("x"),
        },
    );
    assert_eq!(
        dup,
        ApplyError::AlreadyExists {
            kind: ObjectKind::Workload,
            key: "default/web".into()
        }
    );
    let bad = rejected(
        &mut state,
        Command::CreateWorkload {
            namespace: "Default".into(),
            name: "web".into(),
            labels: Default::default(),
            spec: WorkloadSpec::new("x"),
        },
    );
    assert!(matches!(bad, ApplyError::Invalid(_)));
}

#[test]
fn update_bumps_generation_only_on_change_and_honours_expected_generation() {
    let mut state = ClusterState::new();
    let n = ready_node(&mut state, "a", 1000, 1000);
    let w = workload(&mut state, "web");
    let r = assigned(&ok_assign(&mut state, w, &[(n, res(1, 1))]))[0];
    ok(&mut state, replica_update(r, ReplicaPhase::Running, true));
    assert_eq!(state.workloads[&w].status.available, 1);

    let same = ok(
        &mut state,
        Command::UpdateWorkload {
            workload: w,
            expected_generation: Some(Generation(1)),
            spec: WorkloadSpec::new("img:1"),
        },
    );
    assert_eq!(
        same.result,
        CommandResult::WorkloadUpdated {
            generation: Generation(1)
        }
    );
    assert!(same.changes.is_empty());

    let changed = ok(
        &mut state,
        Command::UpdateWorkload {
            workload: w,
            expected_generation: None,
            spec: WorkloadSpec::new("img:2"),
        },
    );
    assert_eq!(
        changed.result,
        CommandResult::WorkloadUpdated {
            generation: Generation(2)
        }
    );
    let status = &state.workloads[&w].status;
    assert_eq!((status.assigned, status.ready, status.available), (1, 1, 0));

    let conflict = rejected(
        &mut state,
        Command::UpdateWorkload {
            workload: w,
            expected_generation: Some(Generation(1)),
            spec: WorkloadSpec::new("img:3"),
        },
    );
    assert_eq!(
        conflict,
        ApplyError::GenerationConflict {
            expected: Generation(1),
            current: Generation(2)
        }
    );
}

#[test]
fn scale_and_pause_do_not_bump_the_generation() {
    let mut state = ClusterState::new();
    let w = workload(&mut state, "web");
    let applied = ok(
        &mut state,
        Command::ScaleWorkload {
            workload: w,
            replicas: 5,
        },
    );
    assert_eq!(
        change_keys(&applied),
        vec![s("workload", "w1", true), s("event", "2.0", true)]
    );
    assert_eq!(state.workloads[&w].spec.replicas, 5);
    assert_eq!(state.workloads[&w].generation, Generation(1));
    ok(
        &mut state,
        Command::PauseRollout {
            workload: w,
            paused: true,
        },
    );
    assert!(state.workloads[&w].paused);
    assert_eq!(state.events.back().unwrap().reason, "RolloutPaused");
    let err = rejected(
        &mut state,
        Command::ScaleWorkload {
            workload: WorkloadId(7),
            replicas: 1,
        },
    );
    assert_eq!(
        err,
        ApplyError::NotFound {
            kind: ObjectKind::Workload,
            key: "w7".into()
        }
    );
}

#[test]
fn delete_workload_stops_replicas_which_keep_reservations_until_finished() {
    let mut state = ClusterState::new();
    let n = ready_node(&mut state, "a", 1000, 1000);
    let w = workload(&mut state, "web");
    let ids = assigned(&ok_assign(
        &mut state,
        w,
        &[(n, res(100, 100)), (n, res(100, 100))],
    ));
    ok(
        &mut state,
        replica_update(ids[1], ReplicaPhase::Failed, false),
    );
    assert_eq!(state.reserved[&n], res(100, 100));

    let applied = ok(&mut state, Command::DeleteWorkload { workload: w });
    let rev = applied.revision.0;
    assert_eq!(
        change_keys(&applied),
        vec![
            s("workload", "w1", false),
            s("replica", "r1", true),
            s("replica", "r2", false),
            s("event", &format!("{rev}.0"), true),
        ]
    );
    assert_eq!(state.replicas[&ids[0]].phase, ReplicaPhase::Stopping);
    assert_eq!(state.reserved[&n], res(100, 100));
    ok(
        &mut state,
        replica_update(ids[0], ReplicaPhase::Succeeded, false),
    );
    assert!(state.reserved.is_empty());
    ok(
        &mut state,
        Command::UnassignReplicas {
            replicas: vec![ids[0]],
        },
    );
    assert!(state.replicas.is_empty());
}

// ---- replica ledger ----

#[test]
fn assignment_is_fit_checked_including_earlier_assignments_in_the_command() {
    let mut state = ClusterState::new();
    let n = ready_node(&mut state, "a", 1000, 1000);
    let w = workload(&mut state, "web");
    let err = rejected_assign(&mut state, w, &[(n, res(600, 600)), (n, res(600, 300))]);
    assert_eq!(
        err,
        ApplyError::DoesNotFit {
            node: n,
            dimensions: vec![Dimension::Cpu]
        }
    );
    let err = rejected_assign(&mut state, w, &[(n, res(2000, 2000))]);
    assert_eq!(
        err,
        ApplyError::DoesNotFit {
            node: n,
            dimensions: vec![Dimension::Cpu, Dimension::Memory]
        }
    );

    let applied = ok_assign(&mut state, w, &[(n, res(600, 600)), (n, res(400, 400))]);
    assert_eq!(
        applied.result,
        CommandResult::ReplicasAssigned {
            replicas: vec![ReplicaId(1), ReplicaId(2)]
        }
    );
    let rev = applied.revision.0;
    assert_eq!(
        change_keys(&applied),
        vec![
            s("workload", "w1", true),
            s("replica", "r1", true),
            s("replica", "r2", true),
            s("event", &format!("{rev}.0"), true),
        ]
    );
    assert_eq!(state.reserved[&n], res(1000, 1000));
    assert_eq!(state.workloads[&w].status.assigned, 2);
    let full = rejected_assign(&mut state, w, &[(n, res(1, 0))]);
    assert_eq!(
        full,
        ApplyError::DoesNotFit {
            node: n,
            dimensions: vec![Dimension::Cpu]
        }
    );
    // A zero request still fits a full node.
    ok_assign(&mut state, w, &[(n, Resources::ZERO)]);
}

#[test]
fn assignment_refuses_unavailable_nodes_and_stale_generations() {
    let mut state = ClusterState::new();
    let ready = ready_node(&mut state, "ready", 1000, 1000);
    let joining = match ok(
        &mut state,
        Command::RegisterNode {
            name: name("joining"),
            report: report(1000, 1000),
        },
    )
    .result
    {
        CommandResult::NodeRegistered { node } => node,
        other => panic!("{other:?}"),
    };
    let cordoned = ready_node(&mut state, "cordoned", 1000, 1000);
    ok(
        &mut state,
        Command::Cordon {
            node: cordoned,
            cordoned: true,
        },
    );
    let draining = ready_node(&mut state, "draining", 1000, 1000);
    ok(&mut state, Command::Drain { node: draining });
    let w = workload(&mut state, "web");
    for (node, reason) in [
        (joining, "liveness is Joining"),
        (cordoned, "cordoned"),
        (draining, "draining"),
        (NodeId(99), "unknown node"),
    ] {
        let err = rejected_assign(&mut state, w, &[(ready, res(1, 1)), (node, res(1, 1))]);
        assert_eq!(
            err,
            ApplyError::NodeUnavailable {
                node,
                reason: reason.into()
            }
        );
    }
    ok(
        &mut state,
        Command::UpdateWorkload {
            workload: w,
            expected_generation: None,
            spec: WorkloadSpec::new("v2"),
        },
    );
    let stale = rejected(
        &mut state,
        Command::AssignReplicas {
            workload: w,
            generation: Generation(1),
            assignments: vec![cloudless_core::state::Assignment {
                node: ready,
                resources: res(1, 1),
            }],
        },
    );
    assert_eq!(
        stale,
        ApplyError::GenerationConflict {
            expected: Generation(1),
            current: Generation(2)
        }
    );
    assert!(matches!(
        rejected_assign(&mut state, w, &[]),
        ApplyError::Invalid(_)
    ));
}

#[test]
fn exhausted_id_space_is_a_rejection_not_a_panic() {
    let mut state = ClusterState::new();
    let n = ready_node(&mut state, "a", u64::MAX, u64::MAX);
    let w = workload(&mut state, "web");
    state.next_replica_id = u64::MAX - 1;
    let err = rejected_assign(&mut state, w, &[(n, res(1, 1)), (n, res(1, 1))]);
    assert!(matches!(err, ApplyError::Invalid(_)));
    ok_assign(&mut state, w, &[(n, res(u64::MAX, 1))]);
    let err = rejected_assign(&mut state, w, &[(n, res(0, 1))]);
    assert_eq!(
        err,
        ApplyError::Invalid("replica id space exhausted".into())
    );
}

#[test]
fn replica_updates_follow_the_phase_machine_and_release_on_terminal() {
    let mut state = ClusterState::new();
    let n = ready_node(&mut state, "a", 1000, 1000);
    let w = workload(&mut state, "web");
    let r = assigned(&ok_assign(&mut state, w, &[(n, res(100, 100))]))[0];

    // Readiness only counts while Running.
    ok(&mut state, replica_update(r, ReplicaPhase::Starting, true));
    assert!(!state.replicas[&r].ready);
    let applied = ok(
        &mut state,
        Command::UpdateReplica {
            replica: r,
            phase: ReplicaPhase::Running,
            ready: true,
            restarts: 2,
            address: Some("10.0.0.5".into()),
            message: "up".into(),
        },
    );
    assert_eq!(
        change_keys(&applied),
        vec![s("workload", "w1", true), s("replica", "r1", true)]
    );
    let rep = &state.replicas[&r];
    assert_eq!(
        (rep.ready, rep.restarts, rep.address.as_deref()),
        (true, 2, Some("10.0.0.5"))
    );
    let status = &state.workloads[&w].status;
    assert_eq!((status.assigned, status.ready, status.available), (1, 1, 1));

    let err = rejected(&mut state, replica_update(r, ReplicaPhase::Pending, false));
    assert_eq!(
        err,
        ApplyError::InvalidTransition {
            replica: r,
            from: ReplicaPhase::Running,
            to: ReplicaPhase::Pending
        }
    );

    ok(&mut state, replica_update(r, ReplicaPhase::Failed, false));
    assert!(state.reserved.is_empty());
    let status = &state.workloads[&w].status;
    assert_eq!((status.assigned, status.ready, status.available), (0, 0, 0));
    let err = rejected(&mut state, replica_update(r, ReplicaPhase::Running, true));
    assert!(matches!(err, ApplyError::InvalidTransition { .. }));
    let err = rejected(
        &mut state,
        replica_update(ReplicaId(77), ReplicaPhase::Running, true),
    );
    assert_eq!(
        err,
        ApplyError::NotFound {
            kind: ObjectKind::Replica,
            key: "r77".into()
        }
    );
}

#[test]
fn unassign_releases_and_removes() {
    let mut state = ClusterState::new();
    let n = ready_node(&mut state, "a", 1000, 1000);
    let w = workload(&mut state, "web");
    let ids = assigned(&ok_assign(
        &mut state,
        w,
        &[(n, res(100, 100)), (n, res(50, 50))],
    ));
    let err = rejected(
        &mut state,
        Command::UnassignReplicas {
            replicas: vec![ids[0], ReplicaId(9)],
        },
    );
    assert_eq!(
        err,
        ApplyError::NotFound {
            kind: ObjectKind::Replica,
            key: "r9".into()
        }
    );
    let applied = ok(
        &mut state,
        Command::UnassignReplicas {
            replicas: vec![ids[0], ids[0]],
        },
    );
    let rev = applied.revision.0;
    assert_eq!(
        change_keys(&applied),
        vec![
            s("workload", "w1", true),
            s("replica", "r1", false),
            s("event", &format!("{rev}.0"), true)
        ]
    );
    assert_eq!(state.reserved[&n], res(50, 50));
    assert_eq!(state.workloads[&w].status.assigned, 1);
}

// ---- services ----

#[test]
fn services_are_put_and_deleted() {
    let mut state = ClusterState::new();
    let spec = ServiceSpec {
        selector: ServiceSelector::default(),
        ports: Vec::new(),
        locality_aware: true,
    };
    let put = |spec: ServiceSpec| Command::PutService {
        namespace: "default".into(),
        name: "web".into(),
        spec,
    };
    let applied = ok(&mut state, put(spec.clone()));
    assert_eq!(
        change_keys(&applied),
        vec![s("service", "default/web", true)]
    );
    assert!(ok(&mut state, put(spec.clone())).changes.is_empty());
    let mut changed = spec;
    changed.locality_aware = false;
    ok(&mut state, put(changed.clone()));
    assert_eq!(
        state.services[&("default".to_owned(), "web".to_owned())].spec,
        changed
    );
    let del = Command::DeleteService {
        namespace: "default".into(),
        name: "web".into(),
    };
    assert_eq!(
        change_keys(&ok(&mut state, del.clone())),
        vec![s("service", "default/web", false)]
    );
    assert_eq!(
        rejected(&mut state, del),
        ApplyError::NotFound {
            kind: ObjectKind::Service,
            key: "default/web".into()
        }
    );
}

// ---- join tokens ----

fn token(id: &str, max_uses: Option<u32>) -> JoinTokenRecord {
    JoinTokenRecord {
        id: id.into(),
        role: "agent".into(),
        secret_sha256: "ab".repeat(32),
        expires_at_ms: NOW + 1000,
        max_uses,
        uses: 0,
        revoked: false,
        created_at_ms: NOW,
    }
}

fn use_token(id: &str, hash: &str) -> Command {
    Command::UseJoinToken {
        id: id.into(),
        secret_sha256: hash.into(),
    }
}

fn refused(reason: &str) -> ApplyError {
    ApplyError::TokenRefused {
        reason: reason.into(),
    }
}

#[test]
fn join_tokens_are_created_used_and_refused() {
    let mut state = ClusterState::new();
    let good = "ab".repeat(32);
    let applied = ok(
        &mut state,
        Command::CreateJoinToken {
            token: token("t1", Some(1)),
        },
    );
    assert_eq!(
        change_keys(&applied),
        vec![s("join token", "t1", true), s("event", "1.0", true)]
    );
    assert_eq!(
        rejected(
            &mut state,
            Command::CreateJoinToken {
                token: token("t1", None)
            }
        ),
        ApplyError::AlreadyExists {
            kind: ObjectKind::JoinToken,
            key: "t1".into()
        }
    );
    let mut bad = token("t2", None);
    bad.secret_sha256 = "xyz".into();
    assert!(matches!(
        rejected(&mut state, Command::CreateJoinToken { token: bad }),
        ApplyError::Invalid(_)
    ));

    // Unknown id and wrong secret are indistinguishable.
    assert_eq!(
        rejected(&mut state, use_token("nope", &good)),
        refused("unknown token or wrong secret")
    );
    assert_eq!(
        rejected(&mut state, use_token("t1", &"cd".repeat(32))),
        refused("unknown token or wrong secret")
    );

    let used = ok(&mut state, use_token("t1", &good));
    assert_eq!(
        used.result,
        CommandResult::JoinTokenUsed {
            role: "agent".into()
        }
    );
    assert_eq!(state.join_tokens["t1"].uses, 1);
    assert_eq!(
        rejected(&mut state, use_token("t1", &good)),
        refused("used up")
    );

    ok(
        &mut state,
        Command::CreateJoinToken {
            token: token("t3", None),
        },
    );
    let late = CommandEnvelope::new(NOW + 1000, use_token("t3", &good));
    let before = state.clone();
    assert_eq!(apply(&mut state, &late), Err(refused("expired")));
    assert_eq!(state, before);
    ok(&mut state, Command::RevokeJoinToken { id: "t3".into() });
    assert!(state.join_tokens["t3"].revoked);
    assert_eq!(
        rejected(&mut state, use_token("t3", &good)),
        refused("revoked")
    );
    assert!(
        ok(&mut state, Command::RevokeJoinToken { id: "t3".into() })
            .changes
            .is_empty()
    );
    assert!(matches!(
        rejected(&mut state, Command::RevokeJoinToken { id: "t9".into() }),
        ApplyError::NotFound { .. }
    ));
}

// ---- events ----

#[test]
fn events_are_recorded_bounded_and_reported_as_changes() {
    let mut state = ClusterState::new();
    let cmd = Command::RecordEvent {
        category: EventCategory::Scheduling,
        severity: Severity::Warning,
        subject: "workload/default/web".into(),
        reason: "FailedScheduling".into(),
        message: "no node fits".into(),
    };
    let applied = ok(&mut state, cmd.clone());
    match &applied.changes[..] {
        [c] => {
            assert_eq!((c.kind, c.key.as_str()), (ObjectKind::Event, "1.0"));
            match &c.object {
                Some(Object::Event(e)) => {
                    assert_eq!((e.reason.as_str(), e.at_ms), ("FailedScheduling", NOW))
                }
                other => panic!("{other:?}"),
            }
        }
        other => panic!("{other:?}"),
    }
    for _ in 0..MAX_EVENTS + 4 {
        ok(&mut state, cmd.clone());
    }
    assert_eq!(state.events.len(), MAX_EVENTS);
    assert_eq!(state.events.front().unwrap().revision, Revision(6));
    let empty = Command::RecordEvent {
        category: EventCategory::Scheduling,
        severity: Severity::Info,
        subject: String::new(),
        reason: "R".into(),
        message: String::new(),
    };
    assert!(matches!(
        rejected(&mut state, empty),
        ApplyError::Invalid(_)
    ));
}

// ---- control-plane commands ----

fn register_as(node: u64, n: &str) -> Command {
    Command::RegisterNodeAs {
        node: NodeId(node),
        name: name(n),
        report: report(1000, 1024),
    }
}

#[test]
fn register_node_as_uses_the_given_id_and_moves_the_mint_past_it() {
    let mut state = ClusterState::new();
    let applied = ok(&mut state, register_as(7, "edge-7"));
    assert_eq!(
        applied.result,
        CommandResult::NodeRegistered { node: NodeId(7) }
    );
    assert_eq!(change_keys(&applied)[0], s("node", "n7", true));
    assert_eq!(state.nodes[&NodeId(7)].liveness, Liveness::Joining);
    assert_eq!(state.next_node_id, 8);
    assert_eq!(state.events.back().unwrap().reason, "NodeRegistered");
    // A minted id is never handed out again.
    let minted = ready_node(&mut state, "other", 1000, 1024);
    assert_eq!(minted, NodeId(8));
    // Same id and name again: a re-registration, keeps the id.
    let again = ok(&mut state, register_as(7, "edge-7"));
    assert_eq!(
        again.result,
        CommandResult::NodeRegistered { node: NodeId(7) }
    );
    assert_eq!(state.nodes.len(), 2);
}

#[test]
fn register_node_as_refuses_reused_ids_taken_names_and_revoked_nodes() {
    let mut state = ClusterState::new();
    let a = ready_node(&mut state, "a", 1000, 1024);
    // An id below the mint that is not present was removed: never reused.
    ok(&mut state, Command::RemoveNode { node: a });
    assert!(matches!(
        rejected(&mut state, register_as(a.get(), "a")),
        ApplyError::Invalid(_)
    ));
    ok(&mut state, register_as(5, "b"));
    // Another name for an existing id.
    assert!(matches!(
        rejected(&mut state, register_as(5, "c")),
        ApplyError::Invalid(_)
    ));
    // A fresh id under a taken name.
    assert_eq!(
        rejected(&mut state, register_as(9, "b")),
        ApplyError::AlreadyExists {
            kind: ObjectKind::Node,
            key: "b".into()
        }
    );
    ok(
        &mut state,
        Command::RevokeNode {
            node: NodeId(5),
            reason: String::new(),
        },
    );
    assert!(matches!(
        rejected(&mut state, register_as(5, "b")),
        ApplyError::NodeUnavailable { .. }
    ));
    assert!(matches!(
        rejected(&mut state, register_as(u64::MAX, "z")),
        ApplyError::Invalid(_)
    ));
}

#[test]
fn revoke_node_removes_it_fails_its_replicas_and_records_a_security_event() {
    let mut state = ClusterState::new();
    let n = ready_node(&mut state, "edge", 1000, 1024);
    let w = workload(&mut state, "web");
    let r = assigned(&ok_assign(&mut state, w, &[(n, res(100, 64))]))[0];
    let applied = ok(
        &mut state,
        Command::RevokeNode {
            node: n,
            reason: "stolen device".into(),
        },
    );
    assert!(state.revoked_nodes.contains(&n));
    assert!(!state.nodes.contains_key(&n));
    assert_eq!(state.replicas[&r].phase, ReplicaPhase::Failed);
    assert!(!state.reserved.contains_key(&n));
    let keys = change_keys(&applied);
    assert!(keys.contains(&s("node", &n.to_string(), false)));
    let last = state.events.back().unwrap();
    assert_eq!(last.category, EventCategory::Security);
    assert_eq!(last.severity, Severity::Warning);
    assert_eq!(last.reason, "NodeRevoked");
    assert!(last.message.contains("stolen device"), "{}", last.message);
    // Revoking again changes nothing (no event).
    let events = state.events.len();
    ok(
        &mut state,
        Command::RevokeNode {
            node: n,
            reason: String::new(),
        },
    );
    assert_eq!(state.events.len(), events);
}

#[test]
fn revoke_node_of_a_removed_node_and_unknown_ids() {
    let mut state = ClusterState::new();
    let n = ready_node(&mut state, "edge", 1000, 1024);
    ok(&mut state, Command::RemoveNode { node: n });
    ok(
        &mut state,
        Command::RevokeNode {
            node: n,
            reason: String::new(),
        },
    );
    assert!(state.revoked_nodes.contains(&n));
    assert_eq!(state.events.back().unwrap().subject, format!("node/{n}"));
    // Never minted.
    assert!(matches!(
        rejected(
            &mut state,
            Command::RevokeNode {
                node: NodeId(99),
                reason: String::new()
            }
        ),
        ApplyError::NotFound { .. }
    ));
    assert!(matches!(
        rejected(
            &mut state,
            Command::RevokeNode {
                node: n,
                reason: "x".repeat(600)
            }
        ),
        ApplyError::Invalid(_)
    ));
}

#[test]
fn prune_join_tokens_removes_only_expired_ones() {
    let mut state = ClusterState::new();
    let mut old = token("old", None);
    old.expires_at_ms = NOW - 1;
    let mut edge = token("edge", None);
    edge.expires_at_ms = NOW;
    for t in [old, edge, token("fresh", None)] {
        ok(&mut state, Command::CreateJoinToken { token: t });
    }
    let applied = ok(&mut state, Command::PruneJoinTokens { now_ms: NOW });
    assert_eq!(
        state.join_tokens.keys().cloned().collect::<Vec<_>>(),
        vec!["fresh".to_owned()]
    );
    let keys = change_keys(&applied);
    assert!(keys.contains(&s("join token", "old", false)));
    assert!(keys.contains(&s("join token", "edge", false)));
    assert_eq!(state.events.back().unwrap().reason, "JoinTokensPruned");
    // Nothing expired: applied, nothing changes.
    let events = state.events.len();
    let again = ok(&mut state, Command::PruneJoinTokens { now_ms: NOW });
    assert!(again.changes.is_empty());
    assert_eq!(state.events.len(), events);
}

fn cond(
    kind: cloudless_core::workload::ConditionKind,
    status: bool,
    reason: &str,
) -> cloudless_core::workload::Condition {
    cloudless_core::workload::Condition {
        kind,
        status,
        reason: reason.into(),
        message: "m".into(),
        since_ms: 42,
    }
}

#[test]
fn set_workload_status_stamps_since_on_flips_only() {
    use cloudless_core::workload::ConditionKind::*;
    let mut state = ClusterState::new();
    let w = workload(&mut state, "web");
    let set = |conditions| Command::SetWorkloadStatus {
        workload: w,
        observed_generation: Generation(1),
        conditions,
    };
    let applied = apply(
        &mut state,
        &CommandEnvelope::new(
            NOW,
            set(vec![
                cond(Unschedulable, true, "FailedScheduling"),
                cond(Available, false, "MinimumReplicasUnavailable"),
            ]),
        ),
    )
    .unwrap();
    assert_eq!(change_keys(&applied), vec![s("workload", "w1", true)]);
    let st = &state.workloads[&w].status;
    assert_eq!(st.observed_generation, Generation(1));
    // Sorted by kind, stamped with the command's time.
    assert_eq!(st.conditions[0].kind, Available);
    assert!(st.conditions.iter().all(|c| c.since_ms == NOW));
    // Available flips, Unschedulable stays: only the flipped one is re-stamped.
    apply(
        &mut state,
        &CommandEnvelope::new(
            NOW + 5,
            set(vec![
                cond(Available, true, "MinimumReplicasAvailable"),
                cond(Unschedulable, true, "FailedScheduling"),
            ]),
        ),
    )
    .unwrap();
    let st = &state.workloads[&w].status;
    assert_eq!(st.conditions[0].since_ms, NOW + 5);
    assert_eq!(st.conditions[1].since_ms, NOW);
    // The same status again touches nothing.
    let same = apply(
        &mut state,
        &CommandEnvelope::new(
            NOW + 9,
            set(vec![
                cond(Available, true, "MinimumReplicasAvailable"),
                cond(Unschedulable, true, "FailedScheduling"),
            ]),
        ),
    )
    .unwrap();
    assert!(same.changes.is_empty());
}

#[test]
fn set_workload_status_validates() {
    use cloudless_core::workload::ConditionKind::*;
    let mut state = ClusterState::new();
    let w = workload(&mut state, "web");
    let bad = |observed: u64, conditions| Command::SetWorkloadStatus {
        workload: w,
        observed_generation: Generation(observed),
        conditions,
    };
    assert!(matches!(
        rejected(&mut state, bad(2, vec![])),
        ApplyError::Invalid(_)
    ));
    assert!(matches!(
        rejected(
            &mut state,
            bad(
                1,
                vec![cond(Available, true, "a"), cond(Available, false, "b")]
            )
        ),
        ApplyError::Invalid(_)
    ));
    assert!(matches!(
        rejected(&mut state, bad(1, vec![cond(Available, true, "")])),
        ApplyError::Invalid(_)
    ));
    let mut long = cond(Available, true, "a");
    long.message = "x".repeat(5000);
    assert!(matches!(
        rejected(&mut state, bad(1, vec![long])),
        ApplyError::Invalid(_)
    ));
    assert!(matches!(
        rejected(
            &mut state,
            Command::SetWorkloadStatus {
                workload: WorkloadId(99),
                observed_generation: Generation(1),
                conditions: vec![]
            }
        ),
        ApplyError::NotFound { .. }
    ));
}

fn enroll(n: &str) -> Command {
    Command::EnrollNode {
        name: name(n),
        report: report(1000, 1024),
    }
}

#[test]
fn enroll_node_mints_an_id_and_refuses_a_taken_name() {
    let mut state = ClusterState::new();
    let applied = ok(&mut state, enroll("edge-1"));
    assert_eq!(
        applied.result,
        CommandResult::NodeRegistered { node: NodeId(1) }
    );
    assert_eq!(state.nodes[&NodeId(1)].liveness, Liveness::Joining);
    // A second enrollment under the same name (two coordinators racing) is refused and
    // changes nothing, where `RegisterNode` would re-register the existing id.
    assert_eq!(
        rejected(&mut state, enroll("edge-1")),
        ApplyError::AlreadyExists {
            kind: ObjectKind::Node,
            key: "edge-1".into()
        }
    );
    let other = ok(&mut state, enroll("edge-2"));
    assert_eq!(
        other.result,
        CommandResult::NodeRegistered { node: NodeId(2) }
    );
}
