//! Bad input through the public API of a real `cloudless-coordinator` process: an invalid
//! manifest is InvalidArgument naming the field, an unknown workload NotFound, a request over
//! the 4 MiB limit is refused; the process stays up and keeps serving, on the same connection
//! and on new ones. (The in-process equivalents, with every variant, are `tests/api_*.rs`.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use cloudless::api::pb;
use cloudless::api::pb::workloads_client::WorkloadsClient;
use common::Lab;
use tonic::Code;

fn manifest(name: &str, replicas_line: &str) -> String {
    format!(
        "apiVersion: cloudless.dev/v1\nkind: Workload\nmetadata:\n  name: {name}\nspec:\n  image: busybox:1\n  {replicas_line}\n"
    )
}

#[test]
fn bad_input_is_refused_with_its_code_and_the_coordinator_stays_up() {
    let mut lab = Lab::init("bad", 1);
    lab.start_coordinator(0);
    let c = lab.client(&[lab.api(0)]);

    let e = lab
        .block_on(c.create_workload(&manifest("web", "replicsa: 3")))
        .expect_err("a misspelled field");
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert_eq!(e.field_paths(), ["spec.replicsa"], "{e}");
    let e = lab
        .block_on(c.create_workload(&manifest("web", "replicas: many")))
        .expect_err("a wrong type");
    assert_eq!(e.code(), Code::InvalidArgument, "{e}");
    assert_eq!(e.field_paths(), ["spec.replicas"], "{e}");

    let e = lab
        .block_on(c.get_workload("default", "missing"))
        .expect_err("unknown workload");
    assert_eq!(e.code(), Code::NotFound, "{e}");
    let e = lab
        .block_on(c.scale("default", "missing", 2))
        .expect_err("scale of an unknown workload");
    assert_eq!(e.code(), Code::NotFound, "{e}");

    // 5 MiB against the 4 MiB default limit, through a raw channel (one request).
    let huge = format!(
        "{}# {}\n",
        manifest("web", "replicas: 1"),
        "x".repeat(5 * 1024 * 1024)
    );
    let channel = lab.channel(&lab.api(0));
    let mut raw = WorkloadsClient::new(channel.clone());
    let e = lab
        .block_on(raw.create(pb::CreateWorkloadRequest {
            manifest: huge,
            idempotency_key: String::new(),
        }))
        .expect_err("oversized request");
    assert!(
        matches!(e.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{e:?}"
    );

    // Still up: the same channel and a fresh client are served.
    assert!(lab.coordinators[0].as_mut().unwrap().running());
    let created = lab
        .block_on(raw.create(pb::CreateWorkloadRequest {
            manifest: manifest("web", "replicas: 1"),
            idempotency_key: String::new(),
        }))
        .expect("a valid create after the bad ones")
        .into_inner();
    assert_eq!(created.workload.unwrap().name, "web");
    let fresh = lab.client(&[lab.api(0)]);
    let names: Vec<String> = lab
        .block_on(fresh.list_workloads(""))
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["web"]);
    assert!(lab.coordinators[0].as_mut().unwrap().running());
}
