//! Property tests of the control messages: every value of the control contract survives
//! contract -> wire -> bytes -> wire -> contract; invalid messages give a typed error naming
//! the field; arbitrary bytes never panic a decoder.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

use std::time::Duration;

use cloudless::control::{AssignedReplica, AssignmentSet, HeartbeatAck, ReplicaReport};
use cloudless::protocol::MessageError;
use cloudless::protocol::wire::{
    ack_from_wire, ack_to_wire, report_to_wire, reports_from_wire, set_from_wire, set_to_wire,
};
use cloudless_core::ids::{Generation, NodeId, ReplicaId, Revision, WorkloadId};
use cloudless_core::node::Liveness;
use cloudless_core::replica::{Replica, ReplicaPhase};
use cloudless_core::resources::{IopsClass, Resources};
use cloudless_core::workload::{EnvVar, WorkloadSpec};
use cloudless_net::WireError;
use cloudless_net::wire::control::MAX_INTERVAL;
use cloudless_net::wire::pb;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use prost::Message;

fn liveness() -> impl Strategy<Value = Liveness> {
    prop_oneof![
        Just(Liveness::Joining),
        Just(Liveness::Ready),
        Just(Liveness::Suspect),
        Just(Liveness::Down),
        Just(Liveness::Left),
    ]
}

fn phase() -> impl Strategy<Value = ReplicaPhase> {
    prop_oneof![
        Just(ReplicaPhase::Pending),
        Just(ReplicaPhase::Starting),
        Just(ReplicaPhase::Running),
        Just(ReplicaPhase::Stopping),
        Just(ReplicaPhase::Succeeded),
        Just(ReplicaPhase::Failed),
    ]
}

fn ack() -> impl Strategy<Value = HeartbeatAck> {
    let max_ms = u64::try_from(MAX_INTERVAL.as_millis()).unwrap();
    (
        liveness(),
        any::<u64>(),
        0..=max_ms,
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(liveness, rev, ms, leader)| HeartbeatAck {
            liveness,
            assignments_revision: Revision(rev),
            interval: Duration::from_millis(ms),
            leader: leader.map(NodeId),
        })
}

fn spec() -> impl Strategy<Value = WorkloadSpec> {
    (
        "[a-z0-9./:-]{1,30}",
        proptest::collection::vec("\\PC{0,12}", 0..4),
        proptest::collection::vec(("[A-Z_]{1,8}", "\\PC{0,12}"), 0..4),
        0u32..100,
        proptest::option::of(0u32..100),
        proptest::option::of("/[a-z]{0,10}"),
    )
        .prop_map(|(image, args, env, replicas, min_available, working_dir)| {
            let mut s = WorkloadSpec::new(image);
            s.args = args;
            s.env = env
                .into_iter()
                .map(|(name, value)| EnvVar { name, value })
                .collect();
            s.replicas = replicas;
            s.min_available = min_available;
            s.working_dir = working_dir;
            s
        })
}

fn assigned() -> impl Strategy<Value = AssignedReplica> {
    (
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        (
            any::<u64>(),
            any::<u64>(),
            phase(),
            any::<bool>(),
            any::<u32>(),
        ),
        proptest::option::of("[0-9.:]{0,21}"),
        ("\\PC{0,20}", "[a-z0-9-]{0,20}", "[a-z0-9-]{0,20}"),
        spec(),
    )
        .prop_map(
            |(
                (id, wl, generation, node),
                (cpu, mem, phase, ready, restarts),
                address,
                (message, namespace, workload_name),
                spec,
            )| {
                AssignedReplica {
                    replica: Replica {
                        id: ReplicaId(id),
                        workload: WorkloadId(wl),
                        generation: Generation(generation),
                        node: NodeId(node),
                        resources: Resources {
                            cpu_millis: cpu,
                            memory_mib: mem,
                            storage_iops: IopsClass::Standard,
                            ..Resources::default()
                        },
                        phase,
                        ready,
                        restarts,
                        address,
                        assigned_at_ms: id ^ wl,
                        message,
                        host_ports: None,
                    },
                    namespace,
                    workload_name,
                    spec,
                }
            },
        )
}

fn report() -> impl Strategy<Value = ReplicaReport> {
    (
        (any::<u64>(), any::<u64>(), any::<u64>()),
        phase(),
        any::<bool>(),
        any::<u32>(),
        proptest::option::of("[0-9.:]{0,21}"),
        "\\PC{0,30}",
    )
        .prop_map(
            |((replica, workload, generation), phase, ready, restarts, address, message)| {
                ReplicaReport {
                    replica: ReplicaId(replica),
                    workload: WorkloadId(workload),
                    generation: Generation(generation),
                    phase,
                    ready,
                    restarts,
                    address,
                    message,
                }
            },
        )
}

/// Through bytes, as on the network.
fn via_bytes<M: Message + Default>(m: &M) -> M {
    M::decode(m.encode_to_vec().as_slice()).unwrap()
}

proptest! {
    #[test]
    fn acks_round_trip(a in ack()) {
        prop_assert_eq!(ack_from_wire(via_bytes(&ack_to_wire(&a))).unwrap(), a);
    }

    #[test]
    fn assignment_sets_round_trip(
        revision in any::<u64>(),
        replicas in proptest::collection::vec(assigned(), 0..4),
    ) {
        let set = AssignmentSet { revision: Revision(revision), replicas };
        prop_assert_eq!(set_from_wire(via_bytes(&set_to_wire(&set))).unwrap(), set);
    }

    #[test]
    fn reports_round_trip(reports in proptest::collection::vec(report(), 0..6)) {
        let msg = pb::ControlReport {
            node: Some(pb::NodeId { value: 1 }),
            reports: reports.iter().map(report_to_wire).collect(),
        };
        prop_assert_eq!(reports_from_wire(via_bytes(&msg).reports).unwrap(), reports);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(m) = pb::ControlHeartbeatAck::decode(bytes.as_slice()) {
            let _ = ack_from_wire(m);
        }
        if let Ok(m) = pb::ControlAssignmentSet::decode(bytes.as_slice()) {
            let _ = set_from_wire(m);
        }
        if let Ok(m) = pb::ControlReport::decode(bytes.as_slice()) {
            let _ = reports_from_wire(m.reports);
        }
        for decode in [
            |b: &[u8]| pb::ControlHeartbeatResponse::decode(b).map(drop),
            |b: &[u8]| pb::ControlAssignmentsResponse::decode(b).map(drop),
            |b: &[u8]| pb::ControlReportResponse::decode(b).map(drop),
            |b: &[u8]| pb::ControlHeartbeat::decode(b).map(drop),
        ] {
            let _ = decode(bytes.as_slice());
        }
    }

    #[test]
    fn arbitrary_spec_bodies_never_panic(body in proptest::collection::vec(any::<u8>(), 0..256)) {
        let mut set = set_to_wire(&sample_set());
        set.replicas[0].spec = Some(pb::EncodedWorkloadSpec { format: 1, body: body.into() });
        let _ = set_from_wire(set);
    }
}

fn sample_set() -> AssignmentSet {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let replica = assigned().new_tree(&mut runner).unwrap().current();
    AssignmentSet {
        revision: Revision(1),
        replicas: vec![replica],
    }
}

#[test]
fn invalid_messages_name_the_field() {
    // Heartbeat ack: liveness missing, unknown, interval too long.
    let mut a = ack_to_wire(&HeartbeatAck {
        liveness: Liveness::Ready,
        assignments_revision: Revision(1),
        interval: Duration::from_millis(500),
        leader: None,
    });
    a.liveness = 0;
    assert_eq!(
        ack_from_wire(a).unwrap_err(),
        MessageError::Wire(WireError::missing("liveness"))
    );
    a.liveness = 99;
    assert!(matches!(
        ack_from_wire(a).unwrap_err(),
        MessageError::Wire(WireError::UnknownEnum { ref field, value: 99 }) if field == "liveness"
    ));
    a.liveness = pb::Liveness::Ready as i32;
    a.interval_ms = u64::MAX;
    assert!(matches!(
        ack_from_wire(a).unwrap_err(),
        MessageError::Wire(WireError::OutOfRange { ref field, .. }) if field == "interval_ms"
    ));

    // Assignment set: paths name the replica index.
    let good = set_to_wire(&sample_set());
    let mut s = good.clone();
    s.replicas[0].spec = Some(pb::EncodedWorkloadSpec {
        format: 7,
        body: Vec::new().into(),
    });
    assert_eq!(
        set_from_wire(s).unwrap_err(),
        MessageError::UnknownSpecFormat {
            field: "replicas[0].spec.format".into(),
            format: 7
        }
    );
    let mut s = good.clone();
    s.replicas[0].spec = Some(pb::EncodedWorkloadSpec {
        format: 1,
        body: br#"{"image":"x","bogus":1}"#.to_vec().into(),
    });
    match set_from_wire(s).unwrap_err() {
        MessageError::Spec { field, reason } => {
            assert_eq!(field, "replicas[0].spec.body");
            assert!(reason.contains("bogus"), "{reason}");
        }
        other => panic!("expected a spec error, got {other:?}"),
    }
    let mut s = good.clone();
    s.replicas[0].spec = None;
    assert_eq!(
        set_from_wire(s).unwrap_err(),
        MessageError::Wire(WireError::missing("replicas[0].spec"))
    );
    let mut s = good.clone();
    s.replicas[0].replica.as_mut().unwrap().phase = 0;
    assert_eq!(
        set_from_wire(s).unwrap_err(),
        MessageError::Wire(WireError::missing("replicas[0].replica.phase"))
    );
    let mut s = good;
    s.replicas[0].replica = None;
    assert_eq!(
        set_from_wire(s).unwrap_err(),
        MessageError::Wire(WireError::missing("replicas[0].replica"))
    );

    // Reports: phase missing in the second report.
    let r = ReplicaReport {
        replica: ReplicaId(1),
        workload: WorkloadId(2),
        generation: Generation(3),
        phase: ReplicaPhase::Running,
        ready: true,
        restarts: 0,
        address: None,
        message: String::new(),
    };
    let mut bad = report_to_wire(&r);
    bad.phase = 0;
    assert_eq!(
        reports_from_wire(vec![report_to_wire(&r), bad]).unwrap_err(),
        MessageError::Wire(WireError::missing("reports[1].phase"))
    );
}
