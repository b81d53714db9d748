//! `ProcessRuntime` passes the public `Runtime` conformance suite with host `/bin/sh` processes
//! (under cgroups when this host lets the test make them), alone and behind a `ChainRuntime`.

use std::path::PathBuf;
use std::sync::Mutex;

use async_trait::async_trait;
use cloudless_core::runtime::{ContainerId, ContainerSpec};
use cloudless_core::testing::runtime::{RuntimeFixture, basic_spec, conformance};
use cloudless_core::workload::EnvVar;
use cloudless_runtime::process::CgroupMode;
use cloudless_runtime::{ChainRuntime, FakeRuntime, ProcessConfig, ProcessRuntime};
use futures::future::BoxFuture;

const IMAGE: &str = "process:///bin/sh";

/// A fresh state directory per runtime; every directory is removed at the end.
struct ShFixture {
    dirs: Mutex<Vec<tempfile::TempDir>>,
    cgroup_parent: String,
}

impl ShFixture {
    fn new(tag: &str) -> Self {
        Self {
            dirs: Mutex::new(Vec::new()),
            cgroup_parent: format!("cloudless-test-{tag}-{}", std::process::id()),
        }
    }

    async fn process_runtime(&self) -> ProcessRuntime {
        let dir = tempfile::tempdir().expect("state dir");
        let mut cfg = ProcessConfig::new(dir.path(), env!("CARGO_BIN_EXE_cloudless-process-shim"));
        cfg.cgroup = CgroupMode::Auto;
        cfg.cgroup_parent = self.cgroup_parent.clone();
        self.dirs.lock().expect("dirs").push(dir);
        ProcessRuntime::open(cfg).await.expect("open")
    }

    /// Removes the per-test parent cgroups (the replicas' own are gone or empty by now).
    fn cleanup(&self, rt: &ProcessRuntime) {
        let roots: Vec<PathBuf> = match rt.cgroup_mode() {
            CgroupMode::V1 { root } => ["cpu", "cpuacct", "memory", "pids"]
                .iter()
                .map(|c| root.join(c).join(&self.cgroup_parent))
                .collect(),
            CgroupMode::V2 { root } => vec![root.join(&self.cgroup_parent)],
            _ => Vec::new(),
        };
        for parent in roots {
            if let Ok(children) = std::fs::read_dir(&parent) {
                for c in children.flatten() {
                    if c.path().is_dir() {
                        let _ = std::fs::remove_dir(c.path());
                    }
                }
            }
            let _ = std::fs::remove_dir(&parent);
        }
    }
}

fn sh(id: ContainerId, script: &str) -> ContainerSpec {
    let mut spec = basic_spec(id, IMAGE);
    spec.command = vec!["/bin/sh".into(), "-c".into(), script.into()];
    spec
}

fn exits_with(id: ContainerId, code: i32) -> ContainerSpec {
    sh(id, &format!("exit {code}"))
}

fn runs_until_stopped(id: ContainerId) -> ContainerSpec {
    sh(id, "trap 'exit 0' TERM; sleep 100000 & wait")
}

fn prints(id: ContainerId, text: &str) -> ContainerSpec {
    let mut spec = sh(id, "printf '%s' \"$TEXT\"");
    spec.env = vec![EnvVar {
        name: "TEXT".into(),
        value: text.into(),
    }];
    spec
}

fn exec_prints(text: &str) -> Vec<String> {
    // A bare name: found through the replica's PATH.
    vec!["printf".into(), "%s".into(), text.into()]
}

fn exec_exits_with(code: i32) -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into(), format!("exit {code}")]
}

fn sleep(ms: u64) -> BoxFuture<'static, ()> {
    Box::pin(tokio::time::sleep(std::time::Duration::from_millis(ms)))
}

#[async_trait]
impl RuntimeFixture for ShFixture {
    type Runtime = ProcessRuntime;

    async fn runtime(&self) -> ProcessRuntime {
        self.process_runtime().await
    }
    fn exits_with(&self, _: &ProcessRuntime, id: ContainerId, code: i32) -> ContainerSpec {
        exits_with(id, code)
    }
    fn runs_until_stopped(&self, _: &ProcessRuntime, id: ContainerId) -> ContainerSpec {
        runs_until_stopped(id)
    }
    fn prints(&self, _: &ProcessRuntime, id: ContainerId, text: &str) -> ContainerSpec {
        prints(id, text)
    }
    fn exec_prints(&self, _: &ProcessRuntime, text: &str) -> Vec<String> {
        exec_prints(text)
    }
    fn exec_exits_with(&self, _: &ProcessRuntime, code: i32) -> Vec<String> {
        exec_exits_with(code)
    }
    fn sleep(&self, ms: u64) -> BoxFuture<'static, ()> {
        sleep(ms)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_runtime_conforms() {
    let fx = ShFixture::new("conf");
    conformance(&fx).await;
    let rt = fx.process_runtime().await;
    fx.cleanup(&rt);
}

/// The chain: a fake runtime that takes only OCI images, then the process runtime. Every spec
/// of the suite is refused by the first and falls through to the second.
struct ChainFixture(ShFixture);

#[async_trait]
impl RuntimeFixture for ChainFixture {
    type Runtime = ChainRuntime;

    async fn runtime(&self) -> ChainRuntime {
        let oci_only = FakeRuntime::new().with_support_rule(|spec| {
            if spec.image.starts_with("process://") {
                cloudless_core::runtime::Support::No("not an OCI image".into())
            } else {
                cloudless_core::runtime::Support::Yes
            }
        });
        ChainRuntime::new(vec![
            std::sync::Arc::new(oci_only),
            std::sync::Arc::new(self.0.process_runtime().await),
        ])
    }
    fn exits_with(&self, _: &ChainRuntime, id: ContainerId, code: i32) -> ContainerSpec {
        exits_with(id, code)
    }
    fn runs_until_stopped(&self, _: &ChainRuntime, id: ContainerId) -> ContainerSpec {
        runs_until_stopped(id)
    }
    fn prints(&self, _: &ChainRuntime, id: ContainerId, text: &str) -> ContainerSpec {
        prints(id, text)
    }
    fn exec_prints(&self, _: &ChainRuntime, text: &str) -> Vec<String> {
        exec_prints(text)
    }
    fn exec_exits_with(&self, _: &ChainRuntime, code: i32) -> Vec<String> {
        exec_exits_with(code)
    }
    fn sleep(&self, ms: u64) -> BoxFuture<'static, ()> {
        sleep(ms)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chain_with_process_runtime_conforms() {
    let fx = ChainFixture(ShFixture::new("chain"));
    conformance(&fx).await;
    let rt = fx.0.process_runtime().await;
    fx.0.cleanup(&rt);
}
