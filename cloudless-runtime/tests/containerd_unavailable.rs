//! containerd going away mid-way gives typed `Unavailable` errors, never a panic, and the
//! runtime recovers when containerd returns; the running container survives throughout.

mod common;

use cloudless_core::runtime::{ContainerState, Runtime, RuntimeError};
use cloudless_runtime::ContainerdRuntime;
use cloudless_runtime::oci::NetworkMode;

fn unavailable<T: std::fmt::Debug>(what: &str, r: Result<T, RuntimeError>) {
    assert!(
        matches!(r, Err(RuntimeError::Unavailable(_))),
        "{what}: expected Unavailable, got {r:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containerd_killed_mid_way_is_unavailable_then_recovers() {
    // Its own containerd: killing the shared one would disturb other tests.
    let Some(ctd) = common::ctd::Containerd::start("unavailable") else {
        return;
    };
    let rt = common::runtime(&ctd, NetworkMode::Isolated).await;
    let mut events = rt.events().await.expect("events");
    let spec = common::sh("steady", "trap 'exit 0' TERM; sleep 100000 & wait");
    rt.create(&spec).await.expect("create");
    rt.start(&spec.id).await.expect("start");

    ctd.kill();
    unavailable("status", rt.status(&spec.id).await);
    unavailable("list", rt.list().await);
    unavailable("stop", rt.stop(&spec.id, 1_000).await);
    unavailable("logs", rt.logs(&spec.id, 0, false).await.map(|_| ()));
    let other = common::sh("other", "true");
    unavailable("create", rt.create(&other).await);
    let cfg = rt.config().clone();
    unavailable("connect", ContainerdRuntime::connect(cfg).await);

    ctd.restart();
    let st = rt
        .status(&spec.id)
        .await
        .expect("status after containerd returned");
    assert_eq!(st.state, ContainerState::Running, "the container survived");
    // The waiter rode out the outage: the exit still arrives exactly once.
    rt.stop(&spec.id, 5_000).await.expect("stop");
    assert_eq!(common::exit_of(&mut events, &spec.id).await, 0);
    rt.remove(&spec.id).await.expect("remove");
}
