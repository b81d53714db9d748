//! The busybox fixture of the `Runtime` conformance suite for `ContainerdRuntime`.

use async_trait::async_trait;
use cloudless_core::runtime::{ContainerId, ContainerSpec};
use cloudless_core::testing::runtime::{RuntimeFixture, basic_spec};
use cloudless_core::workload::EnvVar;
use cloudless_runtime::ContainerdRuntime;
use cloudless_runtime::containerd::LogLimit;
use cloudless_runtime::oci::NetworkMode;
use futures::future::BoxFuture;

use super::ctd::Containerd;
use super::image::IMAGE;

pub struct BusyboxFixture {
    pub ctd: &'static Containerd,
    /// Capped logs through `cloudless-logger` when set.
    pub log_limit: Option<LogLimit>,
}

fn sh(id: ContainerId, script: &str) -> ContainerSpec {
    let mut spec = basic_spec(id, IMAGE);
    spec.command = vec!["/bin/sh".into(), "-c".into(), script.into()];
    spec
}

#[async_trait]
impl RuntimeFixture for BusyboxFixture {
    type Runtime = ContainerdRuntime;

    async fn runtime(&self) -> ContainerdRuntime {
        // Host network: the suite expects a running container to have an address.
        let limit = self.log_limit.clone();
        super::runtime_with(self.ctd, NetworkMode::Host, |cfg| cfg.log_limit = limit).await
    }

    fn exits_with(&self, _: &ContainerdRuntime, id: ContainerId, code: i32) -> ContainerSpec {
        sh(id, &format!("exit {code}"))
    }

    fn runs_until_stopped(&self, _: &ContainerdRuntime, id: ContainerId) -> ContainerSpec {
        // `wait` returns at once on a trapped signal; PID 1 ignores untrapped SIGTERM.
        sh(id, "trap 'exit 0' TERM; sleep 100000 & wait")
    }

    fn prints(&self, _: &ContainerdRuntime, id: ContainerId, text: &str) -> ContainerSpec {
        let mut spec = sh(id, "printf '%s' \"$TEXT\"");
        spec.env = vec![EnvVar {
            name: "TEXT".into(),
            value: text.into(),
        }];
        spec
    }

    fn exec_prints(&self, _: &ContainerdRuntime, text: &str) -> Vec<String> {
        vec!["/bin/printf".into(), "%s".into(), text.into()]
    }

    fn exec_exits_with(&self, _: &ContainerdRuntime, code: i32) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), format!("exit {code}")]
    }

    fn sleep(&self, ms: u64) -> BoxFuture<'static, ()> {
        Box::pin(tokio::time::sleep(std::time::Duration::from_millis(ms)))
    }
}
