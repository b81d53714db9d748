//! Property tests of the cluster state machine: random command sequences never over-commit a
//! node, keep the ledger's derived numbers exact, are deterministic, and reject cleanly.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::{BTreeMap, BTreeSet};

use cloudless_core::event::{EventCategory, Severity};
use cloudless_core::ids::{Generation, NodeId, ReplicaId, Revision, WorkloadId};
use cloudless_core::node::Liveness;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::resources::Resources;
use cloudless_core::state::{
    Applied, ApplyError, Assignment, COMMAND_VERSION, ClusterState, Command, CommandEnvelope,
    JoinTokenRecord, MAX_EVENTS, MIN_COMMAND_VERSION, ObjectKind, apply,
};
use cloudless_core::workload::WorkloadSpec;
use proptest::prelude::*;
use support::{NOW, name, report, reserved_from_ledger};

/// A command in terms of indices into whatever exists when it is applied, so random
/// sequences mostly hit real objects (an index ≥ 200 names one that does not exist).
#[derive(Debug, Clone)]
enum Op {
    Register {
        name: u8,
        cpu: u64,
        mem: u64,
    },
    Report {
        node: u8,
        cpu: u64,
        mem: u64,
    },
    Liveness {
        nodes: Vec<(u8, u8)>,
    },
    Cordon {
        node: u8,
        on: bool,
    },
    Drain {
        node: u8,
    },
    Remove {
        node: u8,
    },
    Create {
        name: u8,
        replicas: u32,
    },
    Update {
        w: u8,
        image: u8,
        expected: Option<u64>,
    },
    Scale {
        w: u8,
        replicas: u32,
    },
    Delete {
        w: u8,
    },
    Assign {
        w: u8,
        stale: bool,
        targets: Vec<(u8, u64, u64)>,
    },
    UpdateReplica {
        r: u8,
        phase: u8,
        ready: bool,
    },
    Unassign {
        rs: Vec<u8>,
    },
    Token {
        id: u8,
    },
    UseToken {
        id: u8,
        good: bool,
        late: bool,
    },
    Revoke {
        id: u8,
    },
    Event,
}

fn quantity() -> impl Strategy<Value = u64> {
    prop_oneof![18 => 0..1500u64, 1 => Just(u64::MAX), 1 => Just(0u64)]
}

/// An index into existing objects; one in ten names an object that does not exist.
fn idx() -> impl Strategy<Value = u8> {
    prop_oneof![9 => 0..16u8, 1 => 200..=255u8]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..6u8, 0..4000u64, 0..4096u64).prop_map(|(name, cpu, mem)| Op::Register { name, cpu, mem }),
        1 => (idx(), 0..4000u64, 0..4096u64).prop_map(|(node, cpu, mem)| Op::Report { node, cpu, mem }),
        3 => prop::collection::vec((idx(), 0..7u8), 1..4).prop_map(|nodes| Op::Liveness { nodes }),
        1 => (idx(), any::<bool>()).prop_map(|(node, on)| Op::Cordon { node, on }),
        1 => idx().prop_map(|node| Op::Drain { node }),
        1 => idx().prop_map(|node| Op::Remove { node }),
        2 => (0..4u8, 0..5u32).prop_map(|(name, replicas)| Op::Create { name, replicas }),
        1 => (idx(), 0..3u8, prop::option::of(0..4u64))
            .prop_map(|(w, image, expected)| Op::Update { w, image, expected }),
        1 => (idx(), 0..6u32).prop_map(|(w, replicas)| Op::Scale { w, replicas }),
        1 => idx().prop_map(|w| Op::Delete { w }),
        6 => (idx(), prop::bool::weighted(0.1), prop::collection::vec((idx(), quantity(), quantity()), 0..4))
            .prop_map(|(w, stale, targets)| Op::Assign { w, stale, targets }),
        4 => (idx(), 0..6u8, any::<bool>()).prop_map(|(r, phase, ready)| Op::UpdateReplica { r, phase, ready }),
        2 => prop::collection::vec(idx(), 0..3).prop_map(|rs| Op::Unassign { rs }),
        1 => (0..3u8).prop_map(|id| Op::Token { id }),
        1 => (0..4u8, any::<bool>(), prop::bool::weighted(0.2)).prop_map(|(id, good, late)| Op::UseToken { id, good, late }),
        1 => (0..4u8).prop_map(|id| Op::Revoke { id }),
        1 => Just(Op::Event),
    ]
}

/// An op with an optional idempotency key drawn from a small set (so keys repeat).
fn keyed_op() -> impl Strategy<Value = (Op, Option<u8>)> {
    (op(), prop::option::weighted(0.1, 0..8u8))
}

/// A few Ready nodes of random sizes and two workloads, then `1..max` random ops: without
/// the prelude most random assignments would die on "no such node" before the fit check.
fn sequence(max: usize) -> impl Strategy<Value = Vec<(Op, Option<u8>)>> {
    (
        prop::collection::vec((0..4000u64, 0..4096u64), 3),
        prop::collection::vec(keyed_op(), 1..max),
    )
        .prop_map(|(sizes, ops)| {
            let mut all: Vec<_> = (0u8..)
                .zip(sizes)
                .map(|(name, (cpu, mem))| (Op::Register { name, cpu, mem }, None))
                .collect();
            all.push((
                Op::Liveness {
                    nodes: vec![(0, 0), (1, 0), (2, 0)],
                },
                None,
            ));
            all.push((
                Op::Create {
                    name: 0,
                    replicas: 3,
                },
                None,
            ));
            all.push((
                Op::Create {
                    name: 1,
                    replicas: 2,
                },
                None,
            ));
            all.extend(ops);
            all
        })
}

fn pick<K: Copy>(keys: Vec<K>, i: u8, unknown: K) -> K {
    if keys.is_empty() || i >= 200 {
        unknown
    } else {
        keys[usize::from(i) % keys.len()]
    }
}

fn node_at(state: &ClusterState, i: u8) -> NodeId {
    pick(state.nodes.keys().copied().collect(), i, NodeId(9999))
}

fn workload_at(state: &ClusterState, i: u8) -> WorkloadId {
    pick(
        state.workloads.keys().copied().collect(),
        i,
        WorkloadId(9999),
    )
}

fn replica_at(state: &ClusterState, i: u8) -> ReplicaId {
    pick(state.replicas.keys().copied().collect(), i, ReplicaId(9999))
}

const GOOD_HASH: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// The envelope `op` stands for in `state` at step `step`.
fn materialize(state: &ClusterState, step: u64, op: &Op, key: Option<u8>) -> CommandEnvelope {
    let mut at_ms = NOW + step * 10;
    let liveness = |l: u8| match l {
        0..=3 => Liveness::Ready,
        4 => Liveness::Suspect,
        5 => Liveness::Down,
        _ => Liveness::Left,
    };
    let command = match op {
        Op::Register { name: n, cpu, mem } => Command::RegisterNode {
            name: name(&format!("node-{n}")),
            report: report(*cpu, *mem),
        },
        Op::Report { node, cpu, mem } => Command::ReportNode {
            node: node_at(state, *node),
            report: report(*cpu, *mem),
        },
        Op::Liveness { nodes } => Command::SetLiveness {
            changes: nodes
                .iter()
                .map(|(n, l)| (node_at(state, *n), liveness(*l)))
                .collect(),
        },
        Op::Cordon { node, on } => Command::Cordon {
            node: node_at(state, *node),
            cordoned: *on,
        },
        Op::Drain { node } => Command::Drain {
            node: node_at(state, *node),
        },
        Op::Remove { node } => Command::RemoveNode {
            node: node_at(state, *node),
        },
        Op::Create { name, replicas } => {
            let mut spec = WorkloadSpec::new("img:1");
            spec.replicas = *replicas;
            Command::CreateWorkload {
                namespace: "default".into(),
                name: format!("app-{name}"),
                labels: BTreeMap::new(),
                spec,
            }
        }
        Op::Update { w, image, expected } => Command::UpdateWorkload {
            workload: workload_at(state, *w),
            expected_generation: expected.map(Generation),
            spec: WorkloadSpec::new(format!("img:{image}")),
        },
        Op::Scale { w, replicas } => Command::ScaleWorkload {
            workload: workload_at(state, *w),
            replicas: *replicas,
        },
        Op::Delete { w } => Command::DeleteWorkload {
            workload: workload_at(state, *w),
        },
        Op::Assign { w, stale, targets } => {
            let workload = workload_at(state, *w);
            let current = state
                .workloads
                .get(&workload)
                .map_or(Generation(1), |w| w.generation);
            Command::AssignReplicas {
                workload,
                generation: if *stale {
                    Generation(current.0 + 1)
                } else {
                    current
                },
                assignments: targets
                    .iter()
                    .map(|(n, cpu, mem)| Assignment {
                        node: node_at(state, *n),
                        resources: Resources {
                            cpu_millis: *cpu,
                            memory_mib: *mem,
                            ..Resources::ZERO
                        },
                    })
                    .collect(),
            }
        }
        Op::UpdateReplica { r, phase, ready } => Command::UpdateReplica {
            replica: replica_at(state, *r),
            phase: [
                ReplicaPhase::Pending,
                ReplicaPhase::Starting,
                ReplicaPhase::Running,
                ReplicaPhase::Stopping,
                ReplicaPhase::Succeeded,
                ReplicaPhase::Failed,
            ][usize::from(*phase) % 6],
            ready: *ready,
            restarts: 0,
            address: None,
            message: String::new(),
        },
        Op::Unassign { rs } => Command::UnassignReplicas {
            replicas: rs.iter().map(|r| replica_at(state, *r)).collect(),
        },
        Op::Token { id } => Command::CreateJoinToken {
            token: JoinTokenRecord {
                id: format!("t{id}"),
                role: "agent".into(),
                secret_sha256: GOOD_HASH.into(),
                expires_at_ms: NOW + 1_000_000,
                max_uses: Some(2),
                uses: 0,
                revoked: false,
                created_at_ms: at_ms,
            },
        },
        Op::UseToken { id, good, late } => {
            if *late {
                at_ms += 10_000_000;
            }
            Command::UseJoinToken {
                id: format!("t{id}"),
                secret_sha256: if *good {
                    GOOD_HASH.into()
                } else {
                    "00".repeat(32)
                },
            }
        }
        Op::Revoke { id } => Command::RevokeJoinToken {
            id: format!("t{id}"),
        },
        Op::Event => Command::RecordEvent {
            category: EventCategory::Scheduling,
            severity: Severity::Info,
            subject: "workload/default/x".into(),
            reason: "FailedScheduling".into(),
            message: String::new(),
        },
    };
    let env = CommandEnvelope::new(at_ms, command);
    match key {
        Some(k) => env.with_idempotency_key(format!("key-{k}")),
        None => env,
    }
}

/// The additive dimensions of `r` (the IOPS class is a class, not a quantity).
fn dims(r: &Resources) -> [u64; 5] {
    [
        r.cpu_millis,
        r.memory_mib,
        r.storage_gib,
        r.egress_mbps,
        u64::from(r.gpus),
    ]
}

/// True if `a` exceeds `b` on some additive dimension.
fn exceeds(a: &Resources, b: &Resources) -> bool {
    dims(a).iter().zip(dims(b)).any(|(x, y)| *x > y)
}

/// Checks every invariant of one step.
fn check_step(
    before: &ClusterState,
    after: &ClusterState,
    outcome: &Result<Applied, ApplyError>,
    shrunk: &BTreeSet<NodeId>,
) {
    match outcome {
        Err(_) => assert_eq!(after, before, "a rejected command changed the state"),
        Ok(a) if a.deduplicated => {
            assert_eq!(after, before, "a deduplicated command changed the state");
            assert!(a.changes.is_empty());
        }
        Ok(a) => {
            assert_eq!(
                a.revision,
                Revision(before.revision.0 + 1),
                "revisions must be dense"
            );
            assert_eq!(after.revision, a.revision);
            assert!(a.changes.iter().all(|c| c.revision == a.revision));
            let events = a
                .changes
                .iter()
                .filter(|c| c.kind == ObjectKind::Event)
                .count();
            let expected_last: Vec<_> = after.events.iter().rev().take(events).collect();
            assert!(expected_last.iter().all(|e| e.revision == a.revision));
        }
    }
    // The ledger and the reservation map agree exactly.
    let zero_free: BTreeMap<_, _> = after
        .reserved
        .iter()
        .filter(|(_, r)| **r != Resources::ZERO)
        .map(|(k, v)| (*k, *v))
        .collect();
    assert_eq!(
        zero_free, after.reserved,
        "zero reservations are not stored"
    );
    assert_eq!(
        after.reserved,
        reserved_from_ledger(after),
        "reserved == sum of the ledger"
    );
    // No command ever pushes a node's reservations past what it offers. A node whose report
    // shrank below its reservations stays over until replicas go; then only dimensions that
    // grew in this step are checked.
    for (node, reserved) in &after.reserved {
        let n = after
            .nodes
            .get(node)
            .expect("reservations only on existing nodes");
        let prev = before
            .reserved
            .get(node)
            .copied()
            .unwrap_or(Resources::ZERO);
        let allocatable = dims(&n.report.allocatable);
        for (i, (now, was)) in dims(reserved).into_iter().zip(dims(&prev)).enumerate() {
            if now > was || !shrunk.contains(node) {
                assert!(
                    now <= allocatable[i],
                    "node {node} over-committed: {reserved:?} > {:?}",
                    n.report.allocatable
                );
            }
        }
    }
    // Workload counters equal the ledger: every replica holding a reservation is assigned;
    // it is ready only if it reports ready and its node exists and is Ready or Suspect.
    for w in after.workloads.values() {
        let mine: Vec<_> = after
            .replicas_of(w.id)
            .filter(|r| r.holds_reservation())
            .collect();
        let node_live = |node: &NodeId| {
            after
                .nodes
                .get(node)
                .is_some_and(|n| matches!(n.liveness, Liveness::Ready | Liveness::Suspect))
        };
        let ready = mine
            .iter()
            .filter(|r| r.ready && node_live(&r.node))
            .count();
        let available = mine
            .iter()
            .filter(|r| r.ready && node_live(&r.node) && r.generation == w.generation)
            .count();
        assert_eq!(
            (
                w.status.assigned as usize,
                w.status.ready as usize,
                w.status.available as usize
            ),
            (mine.len(), ready, available),
            "counters of {}",
            w.id
        );
    }
    assert!(after.events.len() <= MAX_EVENTS);
    assert!(after.next_node_id >= before.next_node_id);
    assert!(after.next_replica_id >= before.next_replica_id);
    assert!(after.replicas.keys().all(|r| r.0 < after.next_replica_id));
}

/// Applies `ops` to a fresh state, checking every step; returns the envelopes and outcomes.
fn run(
    ops: &[(Op, Option<u8>)],
) -> (
    ClusterState,
    Vec<CommandEnvelope>,
    Vec<Result<Applied, ApplyError>>,
) {
    let mut state = ClusterState::new();
    let mut shrunk = BTreeSet::new();
    let (mut envs, mut outcomes) = (Vec::new(), Vec::new());
    for (step, (op, key)) in (0u64..).zip(ops) {
        let env = materialize(&state, step, op, *key);
        let before = state.clone();
        let outcome = apply(&mut state, &env);
        if outcome.as_ref().is_ok_and(|a| !a.deduplicated) {
            for (id, n) in &state.nodes {
                let old = before.nodes.get(id).map(|o| o.report.allocatable);
                if old.is_some_and(|o| exceeds(&o, &n.report.allocatable)) {
                    shrunk.insert(*id);
                }
            }
        }
        check_step(&before, &state, &outcome, &shrunk);
        envs.push(env);
        outcomes.push(outcome);
    }
    (state, envs, outcomes)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// (a), (d), (e): no over-commit, exact ledger arithmetic, clean rejections, dense revisions.
    #[test]
    fn sequences_keep_every_invariant(ops in sequence(120)) {
        let (state, _, outcomes) = run(&ops);
        let applied = outcomes.iter().filter(|o| o.as_ref().is_ok_and(|a| !a.deduplicated)).count();
        prop_assert_eq!(state.revision, Revision(applied as u64));
    }

    /// (b): the same sequence gives equal states and equal results.
    #[test]
    fn apply_is_deterministic(ops in sequence(60)) {
        let (state, envs, outcomes) = run(&ops);
        let mut replay = ClusterState::new();
        let replayed: Vec<_> = envs.iter().map(|e| apply(&mut replay, e)).collect();
        prop_assert_eq!(replayed, outcomes);
        prop_assert_eq!(replay, state);
    }

    /// (c): an unknown version is rejected whatever the command, and changes nothing.
    #[test]
    fn unknown_versions_are_rejected(
        ops in sequence(30),
        probe in keyed_op(),
        version in any::<u32>().prop_filter("not a supported version", |v| {
            !(MIN_COMMAND_VERSION..=COMMAND_VERSION).contains(v)
        }),
    ) {
        let (mut state, _, _) = run(&ops);
        let mut env = materialize(&state, 1000, &probe.0, probe.1);
        env.version = version;
        let before = state.clone();
        prop_assert_eq!(
            apply(&mut state, &env),
            Err(ApplyError::UnsupportedVersion { found: version, supported: COMMAND_VERSION })
        );
        prop_assert_eq!(state, before);
    }
}
