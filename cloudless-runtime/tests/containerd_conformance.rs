//! `ContainerdRuntime` passes the public `Runtime` conformance suite against a private
//! containerd, with busybox containers.

mod common;

use cloudless_core::testing::runtime::conformance;

use common::fixture::BusyboxFixture;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_runtime_conforms() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    conformance(&BusyboxFixture {
        ctd,
        log_limit: None,
    })
    .await;
}
