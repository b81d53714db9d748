//! Replays every file of `fuzz/corpus/rpc_codec/` through the fuzz entry point, and
//! regenerates the seed files when `CLOUDLESS_WRITE_CORPUS=1`.

use std::path::PathBuf;

use bytes::Bytes;
use cloudless_core::ids::{NodeId, NodeName};
use cloudless_core::node::{
    Liveness, Node, NodeReport, Platform, PowerSource, Reliability, Schedulability,
};
use cloudless_core::resources::Resources;
use cloudless_net::codec::FrameCodec;
use cloudless_net::fuzzing::rpc_codec;
use cloudless_net::wire::pb::{self, envelope::Body};
use cloudless_net::wire::{Heartbeat, encode_as};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/rpc_codec")
}

fn heartbeat() -> Vec<u8> {
    let report = NodeReport {
        platform: Platform::linux_amd64(),
        region: "eu".into(),
        zone: "home-1".into(),
        labels: [("disk".to_owned(), "ssd".to_owned())].into(),
        capacity: Resources {
            cpu_millis: 4000,
            memory_mib: 8192,
            ..Resources::ZERO
        },
        allocatable: Resources {
            cpu_millis: 3500,
            memory_mib: 7000,
            ..Resources::ZERO
        },
        power: PowerSource::Battery {
            level_percent: 80,
            charging: true,
        },
        reliability: Reliability {
            uptime_secs: 3600,
            recent_failures: 1,
        },
    };
    encode_as::<pb::Heartbeat, _>(Heartbeat {
        node: NodeId(7),
        report,
    })
}

fn node() -> Vec<u8> {
    let node = Node {
        id: NodeId(3),
        name: NodeName::new("edge-3").expect("valid"),
        report: NodeReport {
            platform: Platform::linux_amd64(),
            region: String::new(),
            zone: String::new(),
            labels: Default::default(),
            capacity: Resources::ZERO,
            allocatable: Resources::ZERO,
            power: PowerSource::Mains,
            reliability: Reliability::default(),
        },
        taints: vec![],
        liveness: Liveness::Ready,
        schedulability: Schedulability::default(),
        registered_at_ms: 1,
        last_seen_ms: 2,
    };
    encode_as::<pb::Node, _>(node)
}

fn battery_out_of_range() -> Vec<u8> {
    use prost::Message;
    let mut hb = pb::Heartbeat::decode(heartbeat().as_slice()).expect("decodes");
    let power = hb
        .report
        .as_mut()
        .and_then(|r| r.power.as_mut())
        .expect("has power");
    power.source = Some(pb::power_source::Source::Battery(
        pb::power_source::Battery {
            level_percent: 150,
            charging: false,
        },
    ));
    hb.encode_to_vec()
}

fn frame(body: Body) -> Vec<u8> {
    FrameCodec::default()
        .encode(&pb::Envelope { body: Some(body) })
        .expect("encodes")
        .to_vec()
}

/// The seed inputs: valid frames of every kind, then truncated, oversized and garbage ones.
fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let request = frame(Body::Request(pb::Request {
        call_id: 1,
        method: "cloudless.v1.Membership/Heartbeat".into(),
        deadline_ms: 1000,
        payload: Bytes::from(heartbeat()),
        streaming: false,
    }));
    let ok = pb::Status {
        code: pb::StatusCode::Ok as i32,
        message: String::new(),
    };
    let mut two = frame(Body::Cancel(pb::Cancel { call_id: 9 }));
    two.extend(frame(Body::StreamEnd(pb::StreamEnd {
        call_id: 9,
        status: Some(ok.clone()),
    })));
    vec![
        (
            "hello",
            frame(Body::Hello(pb::Hello {
                version: Some(pb::ProtocolVersion { major: 1, minor: 0 }),
            })),
        ),
        (
            "hello_ack_refused",
            frame(Body::HelloAck(pb::HelloAck {
                version: None,
                accepted: false,
                reason: "2.0".into(),
            })),
        ),
        ("request_heartbeat", request.clone()),
        (
            "response_node",
            frame(Body::Response(pb::Response {
                call_id: 1,
                status: Some(ok),
                payload: Bytes::from(node()),
            })),
        ),
        (
            "stream_item",
            frame(Body::StreamItem(pb::StreamItem {
                call_id: 4,
                payload: Bytes::from(node()),
            })),
        ),
        ("two_frames", two),
        ("truncated_request", request[..request.len() / 2].to_vec()),
        ("oversized_prefix", vec![0x7f, 0xff, 0xff, 0xff, 1, 2, 3]),
        ("empty_envelope", vec![0, 0, 0, 0]),
        (
            "garbage",
            b"\x00\x00\x00\x05\xff\xff\xff\xff\xff not protobuf".to_vec(),
        ),
        ("battery_out_of_range", battery_out_of_range()),
    ]
}

#[test]
fn corpus_replays_without_panicking() {
    let dir = corpus_dir();
    if std::env::var_os("CLOUDLESS_WRITE_CORPUS").is_some() {
        std::fs::create_dir_all(&dir).expect("corpus dir");
        for (name, bytes) in seeds() {
            std::fs::write(dir.join(name), bytes).expect("write seed");
        }
    }
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("corpus dir exists") {
        let path = entry.expect("dir entry").path();
        if path.is_file() {
            rpc_codec(&std::fs::read(&path).expect("read corpus file"));
            replayed += 1;
        }
    }
    assert!(
        replayed >= 10,
        "only {replayed} corpus files in {}",
        dir.display()
    );
}

#[test]
fn seeds_replay_without_panicking() {
    for (_, bytes) in seeds() {
        rpc_codec(&bytes);
    }
}
