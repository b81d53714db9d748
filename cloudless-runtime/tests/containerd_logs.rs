//! Rotating logs through `cloudless-logger`: the contract still holds, a container writing more
//! than the cap is neither blocked nor allowed to grow its log past it, the newest bytes are kept
//! at their logical offsets, and a follower reads on across rotations.

mod common;

use cloudless_core::runtime::{ContainerId, Runtime};
use cloudless_core::testing::runtime::conformance;
use cloudless_runtime::containerd::LogLimit;
use cloudless_runtime::oci::NetworkMode;
use futures::StreamExt;

use common::fixture::BusyboxFixture;

fn limit(max_bytes: u64) -> LogLimit {
    LogLimit {
        logger: env!("CARGO_BIN_EXE_cloudless-logger").into(),
        max_bytes,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_runtime_with_capped_logs_conforms() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    conformance(&BusyboxFixture {
        ctd,
        log_limit: Some(limit(1 << 20)),
    })
    .await;
}

/// `seq 1 n` output, as the container prints it.
fn seq(from: u32, to: u32) -> String {
    (from..=to).map(|i| format!("{i}\n")).collect()
}

/// Bytes of the log files of `id` on disk (current and rotated).
fn bytes_on_disk(rt: &cloudless_runtime::ContainerdRuntime, id: &ContainerId) -> u64 {
    let path = rt.log_path(id);
    let name = path
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    std::fs::read_dir(path.parent().expect("dir"))
        .expect("log dir")
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n == name
                || n.strip_prefix(&format!("{name}."))
                    .is_some_and(|d| d.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| e.metadata().map_or(0, |m| m.len()))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_past_the_cap_keeps_the_newest_bytes_without_blocking_the_container() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime_with(ctd, NetworkMode::Isolated, |cfg| {
        cfg.log_limit = Some(limit(64 << 10));
    })
    .await;
    // About 1.3 MiB of output: the container must run to its end.
    let spec = common::sh("chatty", "seq 1 200000; echo finished; exit 3");
    let mut events = rt.events().await.expect("events");
    rt.create(&spec).await.expect("create");
    rt.start(&spec.id).await.expect("start");
    assert_eq!(
        common::exit_of(&mut events, &spec.id).await,
        3,
        "ran to its end"
    );
    let expected = seq(1, 200_000) + "finished\n";
    let mut stream = rt.logs(&spec.id, 0, false).await.expect("logs");
    let mut kept = Vec::new();
    let mut first = None;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        let at = *first.get_or_insert(chunk.offset);
        assert_eq!(chunk.offset, at + kept.len() as u64, "contiguous");
        kept.extend_from_slice(&chunk.data);
    }
    let first = first.expect("some output kept") as usize;
    assert!(first > 0, "offset 0 was rotated away");
    assert_eq!(
        String::from_utf8_lossy(&kept),
        expected[first..],
        "the newest bytes, at their offsets since the start"
    );
    assert!(
        kept.len() > 48 << 10 && kept.len() <= 64 << 10,
        "{} bytes kept",
        kept.len()
    );
    assert!(bytes_on_disk(&rt, &spec.id) <= 64 << 10);
    rt.remove(&spec.id).await.expect("remove");
    assert_eq!(bytes_on_disk(&rt, &spec.id), 0, "rotated files removed too");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_reads_on_across_rotations() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime_with(ctd, NetworkMode::Isolated, |cfg| {
        cfg.log_limit = Some(limit(64 << 10));
    })
    .await;
    // Eight bursts of ~29 KiB, 500 ms apart: 230 KiB through files of 16 KiB. The 64 KiB kept
    // hold about two bursts, so the follower may lag about a second (a loaded machine) before
    // unread bytes rotate away.
    let script = "i=0; while [ $i -lt 8 ]; do seq $((i*5000+1)) $((i*5000+5000)); \
                  i=$((i+1)); usleep 500000; done";
    let spec = common::sh("follow", script);
    rt.create(&spec).await.expect("create");
    rt.start(&spec.id).await.expect("start");
    let mut stream = rt.logs(&spec.id, 0, true).await.expect("logs");
    let mut seen = Vec::new();
    loop {
        let next = tokio::time::timeout(common::PATIENCE, stream.next())
            .await
            .expect("log in time");
        let Some(chunk) = next else { break };
        let chunk = chunk.expect("chunk");
        assert_eq!(
            chunk.offset,
            seen.len() as u64,
            "no gap: the follower keeps up"
        );
        seen.extend_from_slice(&chunk.data);
    }
    assert_eq!(String::from_utf8_lossy(&seen), seq(1, 40_000));
    assert!(
        seen.len() > 3 * (64 << 10),
        "{} bytes: several rotations",
        seen.len()
    );
    rt.remove(&spec.id).await.expect("remove");
}
