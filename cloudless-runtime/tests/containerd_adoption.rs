//! An agent process that dies leaves its containers running, and a new agent process finds them
//! (by label) and takes them over without restarting them.
//!
//! `harness = false`: `main` is either the test (parent) or, with `CLD_ADOPT_SOCKET` set, the
//! first "agent" process, which starts a container and exits abruptly.

#![allow(missing_docs)]

mod common;

use std::process::Command;

use cloudless_core::runtime::{ContainerId, ContainerState, Runtime};
use cloudless_runtime::oci::NetworkMode;
use cloudless_runtime::{ContainerdConfig, ContainerdRuntime};

const ID: &str = "adoptee";

async fn token(rt: &ContainerdRuntime) -> String {
    let cmd = ["/bin/cat".to_owned(), "/tmp/token".to_owned()];
    let out = rt
        .exec(&ContainerId(ID.into()), &cmd, 10_000)
        .await
        .expect("exec");
    assert_eq!(out.exit_code, 0);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The first agent: start the container, report its token, die without cleaning up.
async fn first_agent(cfg: ContainerdConfig) {
    let rt = ContainerdRuntime::connect(cfg).await.expect("connect");
    let spec = common::sh(
        ID,
        "echo \"$$-$RANDOM$RANDOM\" >/tmp/token; trap 'exit 0' TERM; sleep 100000 & wait",
    );
    rt.create(&spec).await.expect("create");
    rt.start(&spec.id).await.expect("start");
    println!("TOKEN {}", token(&rt).await);
    std::process::exit(0);
}

async fn parent() {
    let Some(ctd) = common::ctd::Containerd::start("adopt") else {
        return;
    };
    let setup = common::runtime(&ctd, NetworkMode::Isolated).await;
    let cfg = setup.config().clone();
    drop(setup);

    let child = Command::new(std::env::current_exe().expect("test binary"))
        .env("CLD_ADOPT_SOCKET", &cfg.socket)
        .env("CLD_ADOPT_NS", &cfg.namespace)
        .env("CLD_ADOPT_DATA", &cfg.data_dir)
        .env("CLD_ADOPT_CGROUP", &cfg.cgroup_parent)
        .output()
        .expect("run the first agent");
    let stdout = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success(),
        "first agent failed: {stdout} {}",
        String::from_utf8_lossy(&child.stderr)
    );
    let first_token = stdout
        .lines()
        .find_map(|l| l.strip_prefix("TOKEN "))
        .expect("the first agent's token")
        .to_owned();

    // The second agent: a new process's runtime on the same namespace.
    let rt = ContainerdRuntime::connect(cfg).await.expect("connect");
    let listed = rt.list().await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].id, ContainerId(ID.into()));
    assert_eq!(listed[0].state, ContainerState::Running, "still running");
    assert_eq!(
        token(&rt).await,
        first_token,
        "the same process, not a restart"
    );
    let mut events = rt.events().await.expect("events");
    rt.stop(&listed[0].id, 5_000).await.expect("stop");
    assert_eq!(common::exit_of(&mut events, &listed[0].id).await, 0);
    rt.remove(&listed[0].id).await.expect("remove");
    println!("test a_new_agent_process_adopts_running_containers ... ok");
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    match std::env::var_os("CLD_ADOPT_SOCKET") {
        Some(socket) => {
            let var = |k: &str| std::env::var(k).expect("child env");
            let mut cfg =
                ContainerdConfig::new(socket, &var("CLD_ADOPT_NS"), var("CLD_ADOPT_DATA"));
            cfg.cgroup_parent = var("CLD_ADOPT_CGROUP");
            rt.block_on(first_agent(cfg));
        }
        None => rt.block_on(parent()),
    }
}
