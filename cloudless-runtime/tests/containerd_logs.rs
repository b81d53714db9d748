//! Capped logs through `cloudless-logger`: the contract still holds, and a container writing
//! more than the cap is neither blocked nor allowed to grow its log past it.

mod common;

use cloudless_core::testing::runtime::conformance;
use cloudless_runtime::containerd::LogLimit;
use cloudless_runtime::oci::NetworkMode;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn output_past_the_cap_is_dropped_without_blocking_the_container() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime_with(ctd, NetworkMode::Isolated, |cfg| {
        cfg.log_limit = Some(limit(64 << 10));
    })
    .await;
    // 1 MiB of output, then a line on stderr: the container must run to its end.
    let spec = common::sh("chatty", "yes | head -c 1048576; echo finished >&2; exit 3");
    let (code, log) = common::run_to_exit(&rt, &spec).await;
    assert_eq!(code, 3, "the container ran to its end");
    let (kept, rest) = log.split_at(64 << 10);
    assert!(
        kept.bytes().all(|b| b == b'y' || b == b'\n'),
        "the first 64 KiB are kept"
    );
    assert_eq!(
        rest,
        "\n[cloudless: log limit of 65536 bytes reached; further output dropped]\n"
    );
}
