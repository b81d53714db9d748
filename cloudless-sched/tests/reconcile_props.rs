//! The reconciler converges: from random starting states (nodes down, removed or draining,
//! extra, missing, finished and stopping replicas, deleted and updated workloads), applying its
//! actions to a model — placements by first fit, every command through core's real `apply`,
//! agents running, readying and finishing replicas at random paces — reaches the desired state
//! within a bounded number of rounds, and no round takes a workload's ready replicas below
//! `minAvailable`.

mod reconcile_support;

use std::collections::{BTreeMap, BTreeSet};

use cloudless_core::ids::{NodeId, WorkloadId};
use cloudless_core::node::Liveness;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::state::{ClusterState, Command};
use cloudless_sched::reconcile::{ReconcileAction, StopReason, reconcile};
use cloudless_sched::rollout::{RetireReason, RolloutStatus};
use proptest::prelude::*;
use reconcile_support::*;

const NODES: usize = 6;

#[derive(Debug, Clone)]
struct Start {
    /// Per workload: (replicas, maxSurge, explicit minAvailable below replicas).
    workloads: Vec<(u32, u32, Option<u32>)>,
    /// Initial replicas: (workload index, node index, phase code).
    replicas: Vec<(usize, usize, u8)>,
    /// Workloads whose spec is updated after the replicas exist (a rollout to do).
    updated: Vec<bool>,
    /// New replica counts (a scale before reconciling starts).
    scaled: Vec<Option<u32>>,
    /// Node index -> what happens to it: 0 nothing, 1 down, 2 removed, 3 draining.
    fate: [u8; NODES],
    /// Which workload, if any, is deleted.
    deleted: Option<usize>,
    /// Whether nodes that were down come back halfway.
    revive: bool,
    /// Per round, which replicas (by id bit) their agents get to this round; from round 30 all.
    slow: Vec<u32>,
}

fn start() -> impl Strategy<Value = Start> {
    let workloads = prop::collection::vec((0u32..5, 0u32..3, prop::option::of(0u32..5)), 1..4);
    (
        workloads,
        prop::collection::vec((0usize..4, 0usize..NODES, 0u8..6), 0..14),
        prop::collection::vec(any::<bool>(), 4),
        prop::collection::vec(prop::option::of(0u32..6), 4),
        // At most two nodes lose their use, so the survivors always have room.
        (0usize..NODES, 0u8..4, 0usize..NODES, 0u8..4),
        prop::option::of(0usize..4),
        any::<bool>(),
        prop::collection::vec(any::<u32>(), 30),
    )
        .prop_map(
            |(workloads, replicas, updated, scaled, (a, fa, b, fb), deleted, revive, slow)| {
                let mut fate = [0u8; NODES];
                fate[a] = fa;
                fate[b] = fb;
                Start {
                    workloads,
                    replicas,
                    updated,
                    scaled,
                    fate,
                    deleted,
                    revive,
                    slow,
                }
            },
        )
}

/// Builds the starting state.
fn build(st: &Start) -> (ClusterState, Vec<NodeId>, Vec<WorkloadId>) {
    let mut s = ClusterState::new();
    let nodes: Vec<NodeId> = (0..NODES)
        .map(|i| node(&mut s, &format!("n{i}"), &format!("z{}", i % 3), 24))
        .collect();
    let mut ws = Vec::new();
    for (i, &(replicas, surge, min)) in st.workloads.iter().enumerate() {
        // Keep specs a manifest would accept: minAvailable ≤ replicas, and a rollout that can
        // progress (maxSurge ≥ 1 when minAvailable = replicas).
        let min = min.map(|m| m.min(replicas));
        let surge = if min == Some(replicas) && replicas > 0 {
            surge.max(1)
        } else {
            surge
        };
        ws.push(workload(
            &mut s,
            &format!("w{i}"),
            spec(replicas, surge, min),
        ));
    }
    for &(w, n, phase) in &st.replicas {
        let Some(&w) = ws.get(w) else { continue };
        let r = assign(&mut s, w, nodes[n]);
        match phase {
            0 => {}
            1 => report(&mut s, r, ReplicaPhase::Running, true),
            2 => report(&mut s, r, ReplicaPhase::Running, false),
            3 => report(&mut s, r, ReplicaPhase::Failed, false),
            4 => report(&mut s, r, ReplicaPhase::Succeeded, false),
            _ => {
                report(&mut s, r, ReplicaPhase::Running, true);
                report(&mut s, r, ReplicaPhase::Stopping, false);
            }
        }
    }
    for (i, &w) in ws.iter().enumerate() {
        if st.updated[i] {
            let mut next = s.workloads[&w].spec.clone();
            next.image = "localhost/cloudless/busybox:next".into();
            ok(
                &mut s,
                Command::UpdateWorkload {
                    workload: w,
                    expected_generation: None,
                    spec: next,
                },
            );
        }
        if let Some(replicas) = st.scaled[i] {
            let spec = &s.workloads[&w].spec;
            // Scaling below an explicit minAvailable makes a rollout stuck by design; the
            // planner tests cover that, here we keep to reachable goals.
            if spec
                .min_available
                .is_none_or(|m| m < replicas || spec.rollout.max_surge > 0 && m <= replicas)
            {
                ok(
                    &mut s,
                    Command::ScaleWorkload {
                        workload: w,
                        replicas,
                    },
                );
            }
        }
    }
    for (i, &n) in nodes.iter().enumerate() {
        match st.fate[i] {
            1 => set_liveness(&mut s, n, Liveness::Down),
            2 => {
                ok(&mut s, Command::RemoveNode { node: n });
            }
            3 => {
                ok(&mut s, Command::Drain { node: n });
            }
            _ => {}
        }
    }
    if let Some(d) = st.deleted
        && let Some(&w) = ws.get(d)
    {
        ok(&mut s, Command::DeleteWorkload { workload: w });
    }
    (s, nodes, ws)
}

/// Ready live replicas per existing workload.
fn readiness(s: &ClusterState) -> BTreeMap<WorkloadId, usize> {
    s.workloads.keys().map(|&w| (w, ready_live(s, w))).collect()
}

/// Per existing workload: live replicas (reachable, neither stopping nor finished), and
/// `replicas` + the surge limit in force (`maxSurge`, at least 1 while one is on a draining node).
fn live_counts(s: &ClusterState) -> BTreeMap<WorkloadId, (usize, usize)> {
    s.workloads
        .values()
        .map(|w| {
            let live: Vec<_> = s
                .replicas_of(w.id)
                .filter(|r| r.phase != ReplicaPhase::Stopping && !r.phase.is_terminal())
                .filter(|r| reachable(s, r.node))
                .collect();
            let draining = live
                .iter()
                .any(|r| s.nodes[&r.node].schedulability.draining);
            let surge = if draining {
                w.spec.rollout.max_surge.max(1)
            } else {
                w.spec.rollout.max_surge
            };
            (w.id, (live.len(), (w.spec.replicas + surge) as usize))
        })
        .collect()
}

/// Workloads whose live replicas are all ready.
fn all_live_ready(s: &ClusterState) -> BTreeSet<WorkloadId> {
    s.workloads
        .keys()
        .copied()
        .filter(|&w| {
            s.replicas_of(w)
                .filter(|r| r.phase != ReplicaPhase::Stopping && !r.phase.is_terminal())
                .filter(|r| reachable(s, r.node))
                .all(|r| r.ready)
        })
        .collect()
}

/// The desired state: each workload has exactly `replicas` live replicas, all ready, of its
/// current generation, none on a draining node; nothing finished is left in the ledger; only
/// unreachable nodes still hold replicas of deleted workloads.
fn assert_desired(s: &ClusterState) {
    for w in s.workloads.values() {
        let live: Vec<_> = s
            .replicas_of(w.id)
            .filter(|r| r.phase != ReplicaPhase::Stopping && reachable(s, r.node))
            .collect();
        assert_eq!(live.len(), w.spec.replicas as usize, "{}: live count", w.id);
        for r in live {
            assert!(
                r.ready && r.phase == ReplicaPhase::Running,
                "{} not ready",
                r.id
            );
            assert_eq!(r.generation, w.generation, "{} old generation", r.id);
            assert!(
                !s.nodes[&r.node].schedulability.draining,
                "{} on a draining node",
                r.id
            );
        }
    }
    for r in s.replicas.values() {
        assert!(
            !r.phase.is_terminal(),
            "{} finished but still assigned",
            r.id
        );
        if !s.workloads.contains_key(&r.workload) {
            assert!(
                !reachable(s, r.node),
                "{} of a deleted workload still runs",
                r.id
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn the_reconciler_converges_without_dropping_below_min_available(st in start()) {
        let (mut s, nodes, _) = build(&st);
        let mut converged = false;
        for round_no in 0..80 {
            if st.revive && round_no == 6 {
                for (i, &n) in nodes.iter().enumerate() {
                    if st.fate[i] == 1 {
                        set_liveness(&mut s, n, Liveness::Ready);
                    }
                }
            }
            let before = readiness(&s);
            let settled = all_live_ready(&s);
            let live_before = live_counts(&s);
            let actions = round(&mut s);
            let after = readiness(&s);
            for (w, &b) in &before {
                let min = s.workloads[w].spec.effective_min_available() as usize;
                let a = after[w];
                prop_assert!(a >= b.min(min), "{w}: ready {b} -> {a} below minAvailable {min}");
            }
            // Never more live replicas than replicas + surge limit (unless there already were).
            let live_after = live_counts(&s);
            for (w, &(b, cap)) in &live_before {
                let a = live_after[w].0;
                prop_assert!(a <= b.max(cap), "{w}: live {b} -> {a} above replicas + surge {cap}");
            }
            // Make-before-break: from a settled workload, a drain never costs ready replicas
            // below `replicas`.
            for a in &actions {
                if let ReconcileAction::Stop { replica, reason: StopReason::Retired(RetireReason::Draining) } = a {
                    let w = s.replicas[replica].workload;
                    let replicas = s.workloads[&w].spec.replicas as usize;
                    if settled.contains(&w) {
                        prop_assert!(after[&w] >= before[&w].min(replicas), "{w}: drain of {replica} before its replacement was ready");
                    }
                }
            }
            let quiet = actions.is_empty();
            match st.slow.get(round_no) {
                Some(&mask) => agents_where(&mut s, |r| (mask >> (r.0 % 32)) & 1 == 1),
                None => agents(&mut s),
            }
            if quiet && round_no >= st.slow.len() && reconcile(&s).actions.is_empty() {
                converged = true;
                break;
            }
        }
        prop_assert!(converged, "no fixpoint within 80 rounds");
        let r = reconcile(&s);
        prop_assert!(r.actions.is_empty());
        prop_assert!(r.rollouts.values().all(|st| *st == RolloutStatus::Complete), "{:?}", r.rollouts);
        assert_desired(&s);
    }
}
