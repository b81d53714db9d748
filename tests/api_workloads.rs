//! Public API, workloads and nodes over real TLS on 127.0.0.1: create → get → list → scale →
//! rollout → delete, manifest errors with field paths, NotFound, AlreadyExists, idempotency,
//! apply, oversized requests, and node operations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_common;

use std::time::SystemTime;

use api_common::{TestApi, workload_manifest};
use cloudless::api::pb;
use cloudless::api::pb::workloads_client::WorkloadsClient;
use cloudless_core::ids::NodeId;
use cloudless_core::node::{NodeReport, Platform, PowerSource, Reliability};
use cloudless_core::resources::{IopsClass, Resources};
use cloudless_core::state::{Command, CommandEnvelope};
use tonic::Code;

#[tokio::test]
async fn create_get_list_scale_rollout_delete() {
    let api = TestApi::start().await;
    let c = api.admin_client();

    let created = c
        .create_workload(&workload_manifest("web", 3))
        .await
        .expect("create");
    assert_eq!(
        (created.namespace.as_str(), created.name.as_str()),
        ("demo", "web")
    );
    assert_eq!(created.replicas, 3);
    assert_eq!(created.generation, 1);
    assert_eq!(created.image, "localhost/cloudless/busybox:latest");
    assert_eq!(created.labels.get("app").map(String::as_str), Some("web"));
    let full: serde_json::Value = serde_json::from_str(&created.workload_json).expect("json");
    assert_eq!(full["spec"]["replicas"], 3);

    let got = c.get_workload("demo", "web").await.expect("get");
    assert_eq!(got.id, created.id);

    c.create_workload(&workload_manifest("batch", 1))
        .await
        .expect("second");
    let names: Vec<String> = c
        .list_workloads("demo")
        .await
        .expect("list")
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["batch", "web"]);
    assert!(c.list_workloads("other").await.expect("list").is_empty());

    let scaled = c.scale("demo", "web", 5).await.expect("scale");
    assert_eq!(scaled.replicas, 5);
    assert_eq!(scaled.generation, 1, "scaling does not bump the generation");

    let paused = c
        .set_rollout_paused("demo", "web", true)
        .await
        .expect("pause");
    assert!(paused.paused);
    assert_eq!(paused.desired, 5);
    assert!(!paused.complete, "no agent runs anything");
    let resumed = c
        .set_rollout_paused("demo", "web", false)
        .await
        .expect("resume");
    assert!(!resumed.paused);

    c.delete_workload("demo", "web").await.expect("delete");
    let e = c.get_workload("demo", "web").await.expect_err("deleted");
    assert_eq!(e.code(), Code::NotFound);
    assert_eq!(c.list_workloads("").await.expect("list").len(), 1);
}

#[tokio::test]
async fn invalid_manifest_names_the_field() {
    let api = TestApi::start().await;
    let c = api.admin_client();
    let bad = workload_manifest("web", 3).replace("  replicas: 3\n", "  replicsa: 3\n");
    let e = c.create_workload(&bad).await.expect_err("invalid");
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert_eq!(e.field_paths(), ["spec.replicsa"], "{e}");
    assert!(e.to_string().contains("spec.replicsa"), "{e}");

    let e = c
        .create_workload(&workload_manifest("Bad_Name", 1))
        .await
        .expect_err("invalid name");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.field_paths(), ["metadata.name"], "{e}");

    let e = c.create_workload("{").await.expect_err("syntax");
    assert_eq!(e.code(), Code::InvalidArgument);

    // Apply refuses the whole input before changing anything.
    let mixed = format!(
        "{}---\napiVersion: cloudless.dev/v1\nkind: Bucket\nmetadata:\n  name: b\nspec: {{}}\n",
        workload_manifest("web", 1)
    );
    let e = c.apply(&mixed).await.expect_err("bucket");
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert!(c.list_workloads("").await.expect("list").is_empty());
}

#[tokio::test]
async fn unknown_objects_are_not_found_and_names_are_unique() {
    let api = TestApi::start().await;
    let c = api.admin_client();
    for e in [
        c.get_workload("demo", "nope").await.expect_err("get"),
        c.scale("demo", "nope", 1).await.expect_err("scale"),
        c.delete_workload("demo", "nope").await.expect_err("delete"),
        c.rollout_status("demo", "nope").await.expect_err("rollout"),
        c.update_workload(&workload_manifest("nope", 1), 0)
            .await
            .expect_err("update"),
    ] {
        assert_eq!(e.code(), Code::NotFound, "{e}");
    }
    assert_eq!(
        c.get_node("nope").await.expect_err("node").code(),
        Code::NotFound
    );
    assert_eq!(
        c.cordon("nope").await.expect_err("node").code(),
        Code::NotFound
    );

    c.create_workload(&workload_manifest("web", 1))
        .await
        .expect("create");
    let e = c
        .create_workload(&workload_manifest("web", 1))
        .await
        .expect_err("twice");
    assert_eq!(e.code(), Code::AlreadyExists, "{e}");

    // A generation conflict is a failed precondition.
    let e = c
        .update_workload(&workload_manifest("web", 2), 7)
        .await
        .expect_err("conflict");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");

    // Logs of a workload none of whose replicas runs anywhere (this cluster has no nodes).
    let e = c
        .logs(pb::LogsRequest {
            workload: Some(pb::WorkloadRef {
                namespace: "demo".into(),
                name: "web".into(),
            }),
            ..Default::default()
        })
        .await
        .expect_err("logs");
    assert_eq!(e.code(), Code::FailedPrecondition, "{e}");
    assert!(
        e.to_string().contains("demo/web has no replica running"),
        "{e}"
    );
}

#[tokio::test]
async fn idempotency_keys_and_apply() {
    let api = TestApi::start().await;
    let c = api.admin_client();
    let m = workload_manifest("web", 2);
    let first = c
        .create_workload_with_key(&m, Some("create-web-1"))
        .await
        .expect("create");
    let again = c
        .create_workload_with_key(&m, Some("create-web-1"))
        .await
        .expect("a retried create returns the first result");
    assert_eq!(first.id, again.id);

    let r = c.apply(&m).await.expect("apply unchanged");
    assert_eq!(r.results.len(), 1);
    assert_eq!(r.results[0].action, "unchanged");
    let r = c
        .apply(&workload_manifest("web", 2).replace("busybox:latest", "busybox:2"))
        .await
        .expect("apply update");
    assert_eq!(
        (r.results[0].action.as_str(), r.results[0].generation),
        ("updated", 2)
    );
    let r = c
        .apply(&workload_manifest("api", 1))
        .await
        .expect("apply create");
    assert_eq!(r.results[0].action, "created");
    assert_eq!(c.list_workloads("demo").await.expect("list").len(), 2);
}

#[tokio::test]
async fn oversized_request_is_rejected_and_the_server_stays_up() {
    let api = TestApi::start_with(Some(64 * 1024)).await;
    let c = api.admin_client();
    let huge = format!(
        "{}# {}\n",
        workload_manifest("web", 1),
        "x".repeat(256 * 1024)
    );
    let e = c.create_workload(&huge).await.expect_err("too large");
    assert!(
        matches!(e.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{e}"
    );
    // Same client, same connection, and a fresh one: both still served.
    c.create_workload(&workload_manifest("web", 1))
        .await
        .expect("after the oversized request");
    let fresh = api.admin_client();
    assert_eq!(fresh.list_workloads("").await.expect("list").len(), 1);

    // A raw generic client sees the same limit.
    let mut raw = WorkloadsClient::new(c.channel().expect("channel"));
    let e = raw
        .create(pb::CreateWorkloadRequest {
            manifest: huge,
            idempotency_key: String::new(),
        })
        .await
        .expect_err("raw too large");
    assert!(matches!(
        e.code(),
        Code::OutOfRange | Code::ResourceExhausted
    ));
}

fn report(zone: &str) -> NodeReport {
    let r = Resources {
        cpu_millis: 2000,
        memory_mib: 2048,
        storage_gib: 10,
        storage_iops: IopsClass::Standard,
        egress_mbps: 100,
        gpus: 0,
    };
    NodeReport {
        platform: Platform {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        },
        region: "lab".into(),
        zone: zone.into(),
        labels: Default::default(),
        capacity: r,
        allocatable: r,
        power: PowerSource::Mains,
        reliability: Reliability {
            uptime_secs: 1,
            recent_failures: 0,
        },
    }
}

#[tokio::test]
async fn nodes_list_get_cordon_drain_uncordon_remove() {
    let api = TestApi::start().await;
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    use cloudless_core::consensus::Consensus;
    api.mem
        .propose(CommandEnvelope::new(
            now,
            Command::RegisterNodeAs {
                node: NodeId(11),
                name: cloudless_core::ids::NodeName::new("edge-1").expect("name"),
                report: report("z1"),
            },
        ))
        .await
        .expect("register");
    let c = api.admin_client();
    let nodes = c.list_nodes().await.expect("list");
    assert_eq!(nodes.len(), 1);
    assert_eq!(
        (nodes[0].id, nodes[0].name.as_str(), nodes[0].zone.as_str()),
        (11, "edge-1", "z1")
    );
    assert_eq!(nodes[0].schedulability, "schedulable");
    assert_eq!(
        c.cordon("edge-1").await.expect("cordon").schedulability,
        "cordoned"
    );
    assert_eq!(
        c.drain("edge-1").await.expect("drain").schedulability,
        "draining"
    );
    assert_eq!(
        c.uncordon("edge-1").await.expect("uncordon").schedulability,
        "schedulable"
    );
    assert_eq!(c.get_node("edge-1").await.expect("get").id, 11);
    c.remove_node("edge-1", true).await.expect("remove");
    assert_eq!(
        c.get_node("edge-1").await.expect_err("removed").code(),
        Code::NotFound
    );
}
