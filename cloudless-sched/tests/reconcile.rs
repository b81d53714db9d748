//! Exact action lists of the replica reconciler for focused situations.

mod reconcile_support;

use cloudless_core::ids::{Generation, ReplicaId};
use cloudless_core::node::Liveness;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::state::{ClusterState, Command};
use cloudless_sched::reconcile::{
    PlaceReason, ReconcileAction, StopReason, UnassignReason, reconcile, to_commands,
};
use cloudless_sched::rollout::{RetireReason, RolloutStatus, Stuck};
use reconcile_support::*;

fn running(state: &mut ClusterState, r: ReplicaId) {
    report(state, r, ReplicaPhase::Running, true);
}

#[test]
fn a_new_workload_is_placed() {
    let mut s = ClusterState::new();
    node(&mut s, "n1", "z1", 10);
    let w = workload(&mut s, "web", spec(3, 1, None));
    let r = reconcile(&s);
    assert_eq!(
        r.actions,
        vec![ReconcileAction::Place {
            workload: w,
            generation: Generation(1),
            count: 3,
            exclude: vec![],
            reason: PlaceReason::ScaleUp,
        }]
    );
    assert_eq!(r.rollouts[&w], RolloutStatus::Progressing);
}

#[test]
fn replicas_on_a_down_node_are_replaced_and_kept_in_the_ledger() {
    let mut s = ClusterState::new();
    let n1 = node(&mut s, "n1", "z1", 10);
    let n2 = node(&mut s, "n2", "z1", 10);
    node(&mut s, "n3", "z1", 10);
    let w = workload(&mut s, "web", spec(2, 1, None));
    let r1 = assign(&mut s, w, n1);
    let r2 = assign(&mut s, w, n2);
    running(&mut s, r1);
    running(&mut s, r2);
    set_liveness(&mut s, n2, Liveness::Down);
    assert_eq!(
        reconcile(&s).actions,
        vec![ReconcileAction::Place {
            workload: w,
            generation: Generation(1),
            count: 1,
            exclude: vec![n2],
            reason: PlaceReason::ReplaceLost,
        }]
    );
    // Suspect is not Down: no churn on a missed heartbeat.
    set_liveness(&mut s, n2, Liveness::Suspect);
    assert_eq!(reconcile(&s).actions, vec![]);
}

#[test]
fn a_removed_node_replicas_are_unassigned_and_replaced() {
    let mut s = ClusterState::new();
    let n1 = node(&mut s, "n1", "z1", 10);
    let n2 = node(&mut s, "n2", "z1", 10);
    let w = workload(&mut s, "web", spec(2, 1, None));
    let r1 = assign(&mut s, w, n1);
    let r2 = assign(&mut s, w, n2);
    running(&mut s, r1);
    running(&mut s, r2);
    ok(&mut s, Command::RemoveNode { node: n2 });
    let actions = reconcile(&s).actions;
    assert_eq!(
        actions,
        vec![
            ReconcileAction::Unassign {
                replica: r2,
                reason: UnassignReason::Finished {
                    phase: ReplicaPhase::Failed
                },
            },
            ReconcileAction::Place {
                workload: w,
                generation: Generation(1),
                count: 1,
                exclude: vec![n2],
                reason: PlaceReason::ReplaceLost,
            },
        ]
    );
    assert_eq!(
        to_commands(&s, &actions),
        vec![Command::UnassignReplicas { replicas: vec![r2] }]
    );
}

#[test]
fn scale_down_stops_the_unready_replica_first() {
    let mut s = ClusterState::new();
    let n1 = node(&mut s, "n1", "z1", 10);
    let w = workload(&mut s, "web", spec(3, 1, None));
    let r1 = assign(&mut s, w, n1);
    let r2 = assign(&mut s, w, n1);
    let r3 = assign(&mut s, w, n1);
    running(&mut s, r1);
    report(&mut s, r2, ReplicaPhase::Running, false);
    running(&mut s, r3);
    ok(
        &mut s,
        Command::ScaleWorkload {
            workload: w,
            replicas: 2,
        },
    );
    let actions = reconcile(&s).actions;
    let stop = StopReason::ScaleDown {
        desired: 2,
        live: 3,
    };
    assert_eq!(
        actions,
        vec![ReconcileAction::Stop {
            replica: r2,
            reason: stop
        }]
    );
    assert_eq!(
        to_commands(&s, &actions),
        vec![Command::UpdateReplica {
            replica: r2,
            phase: ReplicaPhase::Stopping,
            ready: false,
            restarts: 0,
            address: None,
            message: "scale down: 3 live replicas, 2 desired".into(),
        }]
    );
}

#[test]
fn scale_down_takes_from_the_most_loaded_zone_then_the_highest_id() {
    let mut s = ClusterState::new();
    let a = node(&mut s, "a", "z1", 10);
    let b = node(&mut s, "b", "z1", 10);
    let c = node(&mut s, "c", "z2", 10);
    let w = workload(&mut s, "web", spec(3, 1, Some(0)));
    let r1 = assign(&mut s, w, a);
    let r2 = assign(&mut s, w, c);
    let r3 = assign(&mut s, w, b);
    for r in [r1, r2, r3] {
        running(&mut s, r);
    }
    ok(
        &mut s,
        Command::ScaleWorkload {
            workload: w,
            replicas: 1,
        },
    );
    let stop = |replica| ReconcileAction::Stop {
        replica,
        reason: StopReason::ScaleDown {
            desired: 1,
            live: 3,
        },
    };
    // z1 holds two: its newest (r3) goes; then z1 and z2 hold one each: the newest (r2) goes.
    assert_eq!(reconcile(&s).actions, vec![stop(r3), stop(r2)]);
}

#[test]
fn drain_places_first_then_stops_once_the_replacement_is_ready() {
    let mut s = ClusterState::new();
    let n1 = node(&mut s, "n1", "z1", 10);
    let n2 = node(&mut s, "n2", "z1", 10);
    node(&mut s, "n3", "z1", 10);
    let w = workload(&mut s, "web", spec(2, 0, None));
    let r1 = assign(&mut s, w, n1);
    let r2 = assign(&mut s, w, n2);
    running(&mut s, r1);
    running(&mut s, r2);
    ok(&mut s, Command::Drain { node: n2 });

    assert_eq!(
        round(&mut s),
        vec![ReconcileAction::Place {
            workload: w,
            generation: Generation(1),
            count: 1,
            exclude: vec![n2],
            reason: PlaceReason::Drain,
        }]
    );
    let r3 = ReplicaId(3);
    assert_eq!(
        s.replicas[&r3].node.0, 1,
        "first fit skips the draining node"
    );
    // Replacement not ready yet: nothing stops.
    assert_eq!(round(&mut s), vec![]);
    assert_eq!(
        reconcile(&s).rollouts[&w],
        RolloutStatus::Waiting { unready: 1 }
    );
    agents(&mut s);
    assert_eq!(
        round(&mut s),
        vec![ReconcileAction::Stop {
            replica: r2,
            reason: StopReason::Retired(RetireReason::Draining),
        }]
    );
    assert_eq!(ready_live(&s, w), 2);
    agents(&mut s);
    assert_eq!(
        round(&mut s),
        vec![ReconcileAction::Unassign {
            replica: r2,
            reason: UnassignReason::Finished {
                phase: ReplicaPhase::Succeeded
            },
        }]
    );
    assert_eq!(round(&mut s), vec![]);
    assert_eq!(reconcile(&s).rollouts[&w], RolloutStatus::Complete);
}

#[test]
fn a_returning_node_keeps_its_running_copy_and_the_duplicate_goes() {
    let mut s = ClusterState::new();
    let n1 = node(&mut s, "n1", "z1", 10);
    let n2 = node(&mut s, "n2", "z1", 10);
    let w = workload(&mut s, "web", spec(1, 1, None));
    let r1 = assign(&mut s, w, n2);
    running(&mut s, r1);
    set_liveness(&mut s, n2, Liveness::Down);
    round(&mut s);
    let r2 = ReplicaId(2);
    assert_eq!(s.replicas[&r2].node, n1);
    agents(&mut s);
    set_liveness(&mut s, n2, Liveness::Ready);
    // Both ready, same zone: the newer copy stops; r1 is not touched (no restart).
    assert_eq!(
        reconcile(&s).actions,
        vec![ReconcileAction::Stop {
            replica: r2,
            reason: StopReason::ScaleDown {
                desired: 1,
                live: 2
            },
        }]
    );
}

#[test]
fn an_unready_replacement_yields_to_the_returning_ready_copy() {
    let mut s = ClusterState::new();
    let n1 = node(&mut s, "n1", "z1", 10);
    let n2 = node(&mut s, "n2", "z1", 10);
    let w = workload(&mut s, "web", spec(1, 1, None));
    let r1 = assign(&mut s, w, n1);
    running(&mut s, r1);
    set_liveness(&mut s, n1, Liveness::Down);
    round(&mut s);
    let r2 = ReplicaId(2);
    assert_eq!(s.replicas[&r2].node, n2);
    set_liveness(&mut s, n1, Liveness::Ready);
    assert_eq!(
        reconcile(&s).actions,
        vec![ReconcileAction::Stop {
            replica: r2,
            reason: StopReason::ScaleDown {
                desired: 1,
                live: 2
            },
        }]
    );
}

#[test]
fn a_spec_update_rolls_out_through_the_planner() {
    let mut s = ClusterState::new();
    let n1 = node(&mut s, "n1", "z1", 10);
    let w = workload(&mut s, "web", spec(2, 1, Some(2)));
    let r1 = assign(&mut s, w, n1);
    let r2 = assign(&mut s, w, n1);
    running(&mut s, r1);
    running(&mut s, r2);
    let mut next = s.workloads[&w].spec.clone();
    next.image = "localhost/cloudless/busybox:1.37".into();
    ok(
        &mut s,
        Command::UpdateWorkload {
            workload: w,
            expected_generation: None,
            spec: next,
        },
    );
    assert_eq!(
        round(&mut s),
        vec![ReconcileAction::Place {
            workload: w,
            generation: Generation(2),
            count: 1,
            exclude: vec![],
            reason: PlaceReason::Rollout,
        }]
    );
    agents(&mut s);
    let retire = |replica| ReconcileAction::Stop {
        replica,
        reason: StopReason::Retired(RetireReason::OldGeneration {
            generation: Generation(1),
            desired: Generation(2),
        }),
    };
    assert_eq!(
        round(&mut s),
        vec![
            retire(r1),
            ReconcileAction::Place {
                workload: w,
                generation: Generation(2),
                count: 1,
                exclude: vec![],
                reason: PlaceReason::Rollout,
            }
        ]
    );
    agents(&mut s);
    assert_eq!(
        round(&mut s),
        vec![
            ReconcileAction::Unassign {
                replica: r1,
                reason: UnassignReason::Finished {
                    phase: ReplicaPhase::Succeeded
                }
            },
            retire(r2),
        ]
    );
}

#[test]
fn replicas_of_a_deleted_workload_are_unassigned_once_finished() {
    let mut s = ClusterState::new();
    let n1 = node(&mut s, "n1", "z1", 10);
    let w = workload(&mut s, "web", spec(1, 1, None));
    let r1 = assign(&mut s, w, n1);
    running(&mut s, r1);
    ok(&mut s, Command::DeleteWorkload { workload: w });
    // Stopping: its agent is still stopping the container.
    assert_eq!(reconcile(&s).actions, vec![]);
    agents(&mut s);
    assert_eq!(
        reconcile(&s).actions,
        vec![ReconcileAction::Unassign {
            replica: r1,
            reason: UnassignReason::WorkloadDeleted,
        }]
    );
}

#[test]
fn stops_computed_from_an_older_state_are_dropped() {
    let mut s = ClusterState::new();
    let n1 = node(&mut s, "n1", "z1", 10);
    let w = workload(&mut s, "web", spec(1, 1, None));
    let r1 = assign(&mut s, w, n1);
    let stale = vec![
        ReconcileAction::Stop {
            replica: r1,
            reason: StopReason::WorkloadDeleted,
        },
        ReconcileAction::Stop {
            replica: ReplicaId(99),
            reason: StopReason::WorkloadDeleted,
        },
        ReconcileAction::Unassign {
            replica: ReplicaId(98),
            reason: UnassignReason::WorkloadDeleted,
        },
    ];
    report(&mut s, r1, ReplicaPhase::Failed, false);
    assert_eq!(to_commands(&s, &stale), vec![]);
}

#[test]
fn a_scale_below_min_available_mid_rollout_reports_a_stuck_rollout() {
    let mut s = ClusterState::new();
    let n1 = node(&mut s, "n1", "z1", 10);
    let w = workload(&mut s, "web", spec(3, 0, Some(2)));
    for _ in 0..3 {
        let r = assign(&mut s, w, n1);
        running(&mut s, r);
    }
    let mut next = s.workloads[&w].spec.clone();
    next.image = "localhost/cloudless/busybox:1.37".into();
    ok(
        &mut s,
        Command::UpdateWorkload {
            workload: w,
            expected_generation: None,
            spec: next,
        },
    );
    ok(
        &mut s,
        Command::ScaleWorkload {
            workload: w,
            replicas: 2,
        },
    );
    // Two old replicas must go but both are needed for minAvailable 2, and maxSurge 0 allows
    // no third: stuck, and said so.
    round(&mut s);
    agents(&mut s);
    round(&mut s);
    agents(&mut s);
    let r = reconcile(&s);
    assert_eq!(r.actions, vec![]);
    assert_eq!(
        r.rollouts[&w],
        RolloutStatus::Stuck(Stuck {
            ready: 2,
            min_available: 2,
            replicas: 2,
            surge_limit: 0,
        })
    );
}

#[test]
fn actions_read_like_operator_messages() {
    use cloudless_core::ids::{NodeId, WorkloadId};
    let lines: Vec<String> = [
        ReconcileAction::Place {
            workload: WorkloadId(3),
            generation: Generation(2),
            count: 2,
            exclude: vec![NodeId(7)],
            reason: PlaceReason::ReplaceLost,
        },
        ReconcileAction::Stop {
            replica: ReplicaId(12),
            reason: StopReason::Retired(RetireReason::OldGeneration {
                generation: Generation(1),
                desired: Generation(2),
            }),
        },
        ReconcileAction::Stop {
            replica: ReplicaId(13),
            reason: StopReason::Retired(RetireReason::Draining),
        },
        ReconcileAction::Unassign {
            replica: ReplicaId(14),
            reason: UnassignReason::NodeGone { node: NodeId(7) },
        },
    ]
    .iter()
    .map(ToString::to_string)
    .collect();
    assert_eq!(
        lines,
        [
            "place 2 x w3@g2: replacing lost replicas",
            "stop r12: old generation g1, rolling out g2",
            "stop r13: node is draining, replacement ready",
            "unassign r14: node n7 no longer exists",
        ]
    );
}

#[test]
fn a_rollout_next_to_an_already_replaced_lost_replica_is_labelled_a_rollout() {
    let mut s = ClusterState::new();
    let n1 = node(&mut s, "n1", "z1", 10);
    let n2 = node(&mut s, "n2", "z1", 10);
    let w = workload(&mut s, "web", spec(1, 1, None));
    let r1 = assign(&mut s, w, n2);
    running(&mut s, r1);
    set_liveness(&mut s, n2, Liveness::Down);
    round(&mut s);
    agents(&mut s);
    assert_eq!(s.replicas[&ReplicaId(2)].node, n1);
    let mut next = s.workloads[&w].spec.clone();
    next.image = "localhost/cloudless/busybox:1.37".into();
    ok(
        &mut s,
        Command::UpdateWorkload {
            workload: w,
            expected_generation: None,
            spec: next,
        },
    );
    assert_eq!(
        reconcile(&s).actions,
        vec![
            ReconcileAction::Stop {
                replica: ReplicaId(2),
                reason: StopReason::Retired(RetireReason::OldGeneration {
                    generation: Generation(1),
                    desired: Generation(2),
                }),
            },
            ReconcileAction::Place {
                workload: w,
                generation: Generation(2),
                count: 1,
                exclude: vec![],
                reason: PlaceReason::Rollout,
            }
        ]
    );
}
