//! Property tests of the core-valued pieces of the control protocol (`wire::control`): the
//! heartbeat request, leader hints, enum fields and the interval; typed errors, never a panic.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

use std::collections::BTreeMap;
use std::time::Duration;

use cloudless_core::ids::NodeId;
use cloudless_core::node::{Liveness, NodeReport, Platform, PowerSource, Reliability};
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::resources::{IopsClass, Resources};
use cloudless_net::WireError;
use cloudless_net::wire::control::{
    MAX_INTERVAL, interval_field, interval_to_wire, leader_hint, liveness_field, liveness_to_wire,
    node_field, not_leader, phase_field, phase_to_wire,
};
use cloudless_net::wire::{Heartbeat, pb};
use proptest::prelude::*;
use prost::Message;

fn report(cpu: u64, zone: String, level: u8) -> NodeReport {
    let r = Resources {
        cpu_millis: cpu,
        memory_mib: cpu / 2,
        storage_gib: 10,
        storage_iops: IopsClass::Low,
        egress_mbps: 5,
        gpus: 0,
    };
    NodeReport {
        platform: Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        },
        region: "r".into(),
        zone,
        labels: BTreeMap::from([("k".to_owned(), "v".to_owned())]),
        capacity: r,
        allocatable: r,
        power: PowerSource::Battery {
            level_percent: level,
            charging: false,
        },
        reliability: Reliability::default(),
    }
}

fn phases() -> [ReplicaPhase; 6] {
    [
        ReplicaPhase::Pending,
        ReplicaPhase::Starting,
        ReplicaPhase::Running,
        ReplicaPhase::Stopping,
        ReplicaPhase::Succeeded,
        ReplicaPhase::Failed,
    ]
}

proptest! {
    #[test]
    fn heartbeats_round_trip(node in any::<u64>(), cpu in any::<u64>(), zone in "\\PC{0,16}", level in 0u8..=100) {
        let h = Heartbeat { node: NodeId(node), report: report(cpu, zone, level) };
        let bytes = pb::ControlHeartbeat::from(h.clone()).encode_to_vec();
        let back = Heartbeat::try_from(pb::ControlHeartbeat::decode(bytes.as_slice()).unwrap()).unwrap();
        prop_assert_eq!(back, h);
    }

    #[test]
    fn leader_hints_round_trip(leader in proptest::option::of(any::<u64>())) {
        let leader = leader.map(NodeId);
        let bytes = not_leader(leader).encode_to_vec();
        prop_assert_eq!(leader_hint(&pb::NotLeader::decode(bytes.as_slice()).unwrap()), leader);
    }

    #[test]
    fn intervals_round_trip_in_whole_milliseconds(ms in 0..=u64::try_from(MAX_INTERVAL.as_millis()).unwrap()) {
        let d = Duration::from_millis(ms);
        prop_assert_eq!(interval_field(interval_to_wire(d), "i").unwrap(), d);
    }

    #[test]
    fn enum_fields_accept_known_values_and_name_the_field_otherwise(v in any::<i32>()) {
        match phase_field(v, "phase") {
            Ok(p) => prop_assert_eq!(phase_to_wire(p), v),
            Err(WireError::Missing { field }) => { prop_assert_eq!(v, 0); prop_assert_eq!(field, "phase"); }
            Err(WireError::UnknownEnum { field, value }) => { prop_assert_eq!(value, v); prop_assert_eq!(field, "phase"); }
            Err(e) => prop_assert!(false, "unexpected {e:?}"),
        }
        match liveness_field(v, "liveness") {
            Ok(l) => prop_assert_eq!(liveness_to_wire(l), v),
            Err(e) => prop_assert_eq!(e.field(), Some("liveness")),
        }
    }

    #[test]
    fn arbitrary_heartbeat_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        if let Ok(m) = pb::ControlHeartbeat::decode(bytes.as_slice()) {
            let _ = Heartbeat::try_from(m);
        }
    }
}

#[test]
fn every_phase_and_liveness_round_trips() {
    for p in phases() {
        assert_eq!(phase_field(phase_to_wire(p), "p").unwrap(), p);
    }
    for l in [
        Liveness::Joining,
        Liveness::Ready,
        Liveness::Suspect,
        Liveness::Down,
        Liveness::Left,
    ] {
        assert_eq!(liveness_field(liveness_to_wire(l), "l").unwrap(), l);
    }
}

#[test]
fn invalid_heartbeats_name_the_field() {
    let h = pb::ControlHeartbeat::from(Heartbeat {
        node: NodeId(1),
        report: report(1, "z".into(), 50),
    });
    let mut no_node = h.clone();
    no_node.node = None;
    assert_eq!(
        Heartbeat::try_from(no_node).unwrap_err(),
        WireError::missing("node")
    );
    let mut bad_power = h.clone();
    bad_power.report.as_mut().unwrap().power = Some(pb::PowerSource {
        source: Some(pb::power_source::Source::Battery(
            pb::power_source::Battery {
                level_percent: 101,
                charging: false,
            },
        )),
    });
    assert_eq!(
        Heartbeat::try_from(bad_power).unwrap_err().field(),
        Some("report.power.source.battery.level_percent")
    );
    assert_eq!(
        node_field(None, "leader").unwrap_err(),
        WireError::missing("leader")
    );
    assert!(matches!(
        interval_field(MAX_INTERVAL.as_millis() as u64 + 1, "interval_ms"),
        Err(WireError::OutOfRange { ref field, .. }) if field == "interval_ms"
    ));
}
