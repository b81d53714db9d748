//! Latency of create -> running and stop -> removed through `ContainerdRuntime`, against `ctr`
//! doing the same with the same image on the same private containerd.
//!
//! Run: `cargo bench -p cloudless-runtime --bench containerd_lifecycle` (root; needs containerd,
//! runc and busybox-static). Prints P50/P90 in milliseconds over `ROUNDS` rounds.

#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use cloudless_core::runtime::Runtime;
use cloudless_runtime::oci::NetworkMode;

const ROUNDS: usize = 30;

fn percentile(samples: &mut [Duration], p: usize) -> f64 {
    samples.sort();
    let i = (samples.len() * p / 100).min(samples.len() - 1);
    samples[i].as_secs_f64() * 1000.0
}

fn report(what: &str, samples: &mut [Duration]) {
    println!(
        "{what:<44} P50 {:>7.1} ms   P90 {:>7.1} ms   (n = {})",
        percentile(samples, 50),
        percentile(samples, 90),
        samples.len()
    );
}

fn ctr(ctd: &common::ctd::Containerd, ns: &str, args: &[&str]) {
    let out = Command::new("ctr")
        .arg("--address")
        .arg(ctd.socket())
        .args(["-n", ns])
        .args(args)
        .output()
        .expect("run ctr");
    assert!(
        out.status.success(),
        "ctr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let runtime = rt.block_on(common::runtime(ctd, NetworkMode::Isolated));
    let ns = runtime.config().namespace.clone();

    let (mut up, mut down) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let spec = common::sh(&format!("bench-{i}"), "sleep 100000 & wait");
        rt.block_on(async {
            let t0 = Instant::now();
            runtime.create(&spec).await.expect("create");
            runtime.start(&spec.id).await.expect("start");
            up.push(t0.elapsed());
            let t1 = Instant::now();
            runtime.stop(&spec.id, 0).await.expect("stop");
            runtime.remove(&spec.id).await.expect("remove");
            down.push(t1.elapsed());
        });
    }

    let (mut ctr_up, mut ctr_down) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let id = format!("ctr-{i}");
        let t0 = Instant::now();
        ctr(
            ctd,
            &ns,
            &[
                "run",
                "-d",
                common::image::IMAGE,
                &id,
                "sh",
                "-c",
                "sleep 100000 & wait",
            ],
        );
        ctr_up.push(t0.elapsed());
        let t1 = Instant::now();
        ctr(ctd, &ns, &["task", "delete", "--force", &id]);
        ctr(ctd, &ns, &["container", "delete", &id]);
        ctr_down.push(t1.elapsed());
    }

    report("ContainerdRuntime create+start -> running", &mut up);
    report("ctr run -d -> running", &mut ctr_up);
    report("ContainerdRuntime stop(SIGKILL)+remove", &mut down);
    report("ctr task delete --force + container delete", &mut ctr_down);
}
