//! Property tests: every valid core value survives core -> wire -> bytes -> wire -> core, and
//! invalid wire values are rejected with a typed error, never a panic.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

use std::collections::BTreeMap;

use cloudless_core::ids::{Generation, NodeId, NodeName, ReplicaId, WorkloadId};
use cloudless_core::node::{
    Liveness, Node, NodeReport, Platform, PowerSource, Reliability, Schedulability, Taint,
    TaintEffect,
};
use cloudless_core::replica::{Replica, ReplicaPhase};
use cloudless_core::resources::{IopsClass, Resources};
use cloudless_net::WireError;
use cloudless_net::wire::{Heartbeat, decode_as, encode_as, pb};
use proptest::prelude::*;
use prost::Message;

fn iops() -> impl Strategy<Value = IopsClass> {
    prop_oneof![
        Just(IopsClass::Low),
        Just(IopsClass::Standard),
        Just(IopsClass::High)
    ]
}

fn resources() -> impl Strategy<Value = Resources> {
    (
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        iops(),
        any::<u64>(),
        any::<u32>(),
    )
        .prop_map(
            |(cpu_millis, memory_mib, storage_gib, storage_iops, egress_mbps, gpus)| Resources {
                cpu_millis,
                memory_mib,
                storage_gib,
                storage_iops,
                egress_mbps,
                gpus,
            },
        )
}

fn report() -> impl Strategy<Value = NodeReport> {
    let platform = (
        "[a-z0-9]{0,8}",
        "[a-z]{0,6}",
        proptest::option::of("[a-z0-9]{0,4}"),
    )
        .prop_map(|(architecture, os, variant)| Platform {
            architecture,
            os,
            variant,
        });
    let power = prop_oneof![
        Just(PowerSource::Mains),
        (0u8..=100, any::<bool>()).prop_map(|(level_percent, charging)| PowerSource::Battery {
            level_percent,
            charging
        }),
    ];
    let labels = proptest::collection::btree_map(".{0,8}", ".{0,8}", 0..4);
    (
        platform,
        ".{0,10}",
        ".{0,10}",
        labels,
        resources(),
        resources(),
        power,
        any::<(u64, u32)>(),
    )
        .prop_map(
            |(platform, region, zone, labels, capacity, allocatable, power, (up, fails))| {
                NodeReport {
                    platform,
                    region,
                    zone,
                    labels,
                    capacity,
                    allocatable,
                    power,
                    reliability: Reliability {
                        uptime_secs: up,
                        recent_failures: fails,
                    },
                }
            },
        )
}

fn node() -> impl Strategy<Value = Node> {
    let liveness = prop_oneof![
        Just(Liveness::Joining),
        Just(Liveness::Ready),
        Just(Liveness::Suspect),
        Just(Liveness::Down),
        Just(Liveness::Left)
    ];
    let effect = prop_oneof![
        Just(TaintEffect::NoSchedule),
        Just(TaintEffect::PreferNoSchedule),
        Just(TaintEffect::NoExecute)
    ];
    let taint =
        (".{0,6}", ".{0,6}", effect).prop_map(|(key, value, effect)| Taint { key, value, effect });
    let name = "[a-z]([a-z0-9-]{0,20}[a-z0-9])?".prop_map(|s| NodeName::new(s).unwrap());
    (
        any::<u64>(),
        name,
        report(),
        proptest::collection::vec(taint, 0..3),
        liveness,
        any::<(bool, bool, u64, u64)>(),
    )
        .prop_map(
            |(id, name, report, taints, liveness, (cordoned, draining, reg, seen))| Node {
                id: NodeId(id),
                name,
                report,
                taints,
                liveness,
                schedulability: Schedulability { cordoned, draining },
                registered_at_ms: reg,
                last_seen_ms: seen,
            },
        )
}

fn replica() -> impl Strategy<Value = Replica> {
    let phase = prop_oneof![
        Just(ReplicaPhase::Pending),
        Just(ReplicaPhase::Starting),
        Just(ReplicaPhase::Running),
        Just(ReplicaPhase::Stopping),
        Just(ReplicaPhase::Succeeded),
        Just(ReplicaPhase::Failed)
    ];
    (
        any::<(u64, u64, u64, u64)>(),
        resources(),
        phase,
        any::<(bool, u32, u64)>(),
        proptest::option::of(".{0,12}"),
        ".{0,12}",
    )
        .prop_map(
            |((id, w, g, n), resources, phase, (ready, restarts, at), address, message)| Replica {
                id: ReplicaId(id),
                workload: WorkloadId(w),
                generation: Generation(g),
                node: NodeId(n),
                resources,
                phase,
                ready,
                restarts,
                address,
                assigned_at_ms: at,
                message,
                host_ports: None,
            },
        )
}

proptest! {
    #[test]
    fn nodes_round_trip(n in node()) {
        let bytes = encode_as::<pb::Node, _>(n.clone());
        prop_assert_eq!(decode_as::<pb::Node, Node>(&bytes).unwrap(), n);
    }

    #[test]
    fn replicas_round_trip(r in replica()) {
        let bytes = encode_as::<pb::Replica, _>(r.clone());
        prop_assert_eq!(decode_as::<pb::Replica, Replica>(&bytes).unwrap(), r);
    }

    #[test]
    fn heartbeats_round_trip(id in any::<u64>(), report in report()) {
        let hb = Heartbeat { node: NodeId(id), report };
        let bytes = encode_as::<pb::Heartbeat, _>(hb.clone());
        prop_assert_eq!(decode_as::<pb::Heartbeat, Heartbeat>(&bytes).unwrap(), hb);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode_as::<pb::Node, Node>(&bytes);
        let _ = decode_as::<pb::Replica, Replica>(&bytes);
        let _ = decode_as::<pb::Heartbeat, Heartbeat>(&bytes);
        let _ = decode_as::<pb::NodeReport, NodeReport>(&bytes);
    }

    #[test]
    fn battery_above_100_is_rejected(level in 101u32..) {
        let mut wire = pb::NodeReport::from(sample_report());
        wire.power = Some(pb::PowerSource {
            source: Some(pb::power_source::Source::Battery(pb::power_source::Battery { level_percent: level, charging: false })),
        });
        let err = NodeReport::try_from(wire).unwrap_err();
        prop_assert!(matches!(err, WireError::OutOfRange { .. }), "{err}");
        prop_assert_eq!(err.field(), Some("power.source.battery.level_percent"));
    }

    #[test]
    fn unknown_enum_values_are_rejected(v in 7i32..) {
        let mut wire = pb::Replica::from(sample_replica());
        wire.phase = v;
        let err = Replica::try_from(wire).unwrap_err();
        prop_assert_eq!(err, WireError::UnknownEnum { field: "phase".into(), value: v });
    }
}

fn sample_report() -> NodeReport {
    NodeReport {
        platform: Platform::linux_amd64(),
        region: "eu".into(),
        zone: "z1".into(),
        labels: BTreeMap::new(),
        capacity: Resources::ZERO,
        allocatable: Resources::ZERO,
        power: PowerSource::Mains,
        reliability: Reliability::default(),
    }
}

fn sample_replica() -> Replica {
    Replica {
        id: ReplicaId(1),
        workload: WorkloadId(2),
        generation: Generation(3),
        node: NodeId(4),
        resources: Resources::ZERO,
        phase: ReplicaPhase::Running,
        ready: true,
        restarts: 0,
        address: None,
        assigned_at_ms: 5,
        message: String::new(),
        host_ports: None,
    }
}

#[test]
fn missing_and_invalid_fields_are_named() {
    let node = Node {
        id: NodeId(9),
        name: NodeName::new("edge-1").unwrap(),
        report: sample_report(),
        taints: vec![],
        liveness: Liveness::Ready,
        schedulability: Schedulability::default(),
        registered_at_ms: 1,
        last_seen_ms: 2,
    };
    let mut wire = pb::Node::from(node.clone());
    wire.report.as_mut().unwrap().capacity = None;
    assert_eq!(
        Node::try_from(wire).unwrap_err(),
        WireError::missing("report.capacity")
    );

    let mut wire = pb::Node::from(node.clone());
    wire.report
        .as_mut()
        .unwrap()
        .allocatable
        .as_mut()
        .unwrap()
        .storage_iops = 0;
    assert_eq!(
        Node::try_from(wire).unwrap_err(),
        WireError::missing("report.allocatable.storage_iops")
    );

    let mut wire = pb::Node::from(node.clone());
    wire.name = "Not A Name".into();
    let err = Node::try_from(wire).unwrap_err();
    assert!(
        matches!(err, WireError::InvalidName { ref field, .. } if field == "name"),
        "{err}"
    );

    let mut wire = pb::Node::from(node);
    wire.taints.push(pb::Taint {
        key: "k".into(),
        value: String::new(),
        effect: 42,
    });
    assert_eq!(
        Node::try_from(wire).unwrap_err(),
        WireError::UnknownEnum {
            field: "taints[0].effect".into(),
            value: 42
        }
    );

    let garbage = [0xffu8, 0xff, 0xff];
    assert!(matches!(
        decode_as::<pb::Node, Node>(&garbage),
        Err(WireError::Decode(_))
    ));
    // An empty message decodes but lacks every required field.
    assert_eq!(
        pb::Node::decode(&[][..])
            .map(Node::try_from)
            .unwrap()
            .unwrap_err(),
        WireError::missing("id")
    );
}
