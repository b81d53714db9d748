//! A readiness HTTP probe run by the agent against a real listener on 127.0.0.1 (real clock,
//! real sockets). The fake runtime's containers are given the loopback address by a thin
//! delegating wrapper, as a CNI bridge address would be by containerd.

mod agent_common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use agent_common::*;
use async_trait::async_trait;
use cloudless::agent::Agent;
use cloudless::runtime::FakeRuntime;
use cloudless_core::node::Platform;
use cloudless_core::quantity::DurationSpec;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::runtime::{
    ContainerId, ContainerSpec, ContainerStats, ContainerStatus, ExecOutput, ImageInfo, LogChunk,
    Runtime, RuntimeError, RuntimeEvent, Support,
};
use cloudless_core::workload::{HttpAction, Probe, WorkloadSpec};
use futures::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

struct Loopback(FakeRuntime);

fn loopback(mut s: ContainerStatus) -> ContainerStatus {
    if s.address.is_some() {
        s.address = Some("127.0.0.1".into());
    }
    s
}

#[async_trait]
impl Runtime for Loopback {
    fn name(&self) -> &str {
        "loopback-fake"
    }
    fn supports(&self, spec: &ContainerSpec) -> Support {
        self.0.supports(spec)
    }
    async fn pull_image(
        &self,
        image: &str,
        p: Option<&Platform>,
    ) -> Result<ImageInfo, RuntimeError> {
        self.0.pull_image(image, p).await
    }
    async fn import_image(&self, archive: &Path) -> Result<Vec<ImageInfo>, RuntimeError> {
        self.0.import_image(archive).await
    }
    async fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        self.0.create(spec).await
    }
    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.0.start(id).await
    }
    async fn stop(&self, id: &ContainerId, grace_ms: u64) -> Result<(), RuntimeError> {
        self.0.stop(id, grace_ms).await
    }
    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.0.remove(id).await
    }
    async fn status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        self.0.status(id).await.map(loopback)
    }
    async fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        Ok(self.0.list().await?.into_iter().map(loopback).collect())
    }
    async fn events(&self) -> Result<BoxStream<'static, RuntimeEvent>, RuntimeError> {
        self.0.events().await
    }
    async fn logs(
        &self,
        id: &ContainerId,
        from: u64,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<LogChunk, RuntimeError>>, RuntimeError> {
        self.0.logs(id, from, follow).await
    }
    async fn exec(
        &self,
        id: &ContainerId,
        c: &[String],
        t: u64,
    ) -> Result<ExecOutput, RuntimeError> {
        self.0.exec(id, c, t).await
    }
    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        self.0.stats(id).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_readiness_probe_against_a_loopback_listener() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    // The status the server answers with; the test flips it.
    let status = Arc::new(AtomicU16::new(503));
    let served = Arc::clone(&status);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let code = served.load(Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let reply = format!("HTTP/1.1 {code} X\r\nContent-Length: 0\r\n\r\n");
                let _ = s.write_all(reply.as_bytes()).await;
            });
        }
    });

    let mut spec = WorkloadSpec::new("web");
    spec.probes.readiness = Some(Probe {
        exec: None,
        tcp: None,
        http: Some(HttpAction {
            port,
            path: "/ready".into(),
        }),
        initial_delay: DurationSpec(0),
        period: DurationSpec::from_millis(50),
        timeout: DurationSpec::from_secs(1),
        success_threshold: 1,
        failure_threshold: 1,
    });
    let dir = tempfile::tempdir().expect("tempdir");
    let fake = FakeRuntime::new();
    fake.preload_image("web");
    let control = TestControl::new(set(1, vec![assigned(1, &spec)]));
    let mut d = deps(&control, &fake);
    d.runtime = Arc::new(Loopback(fake.clone()));
    let agent = Agent::start(config(dir.path()), d).await.expect("start");
    eventually("Running, not ready (503)", Duration::from_secs(10), || {
        control.last_report(1).is_some_and(|r| {
            r.phase == ReplicaPhase::Running
                && !r.ready
                && r.address.as_deref() == Some("127.0.0.1")
        })
    })
    .await;
    status.store(200, Ordering::SeqCst);
    eventually("ready after 200", Duration::from_secs(10), || {
        control.last_report(1).is_some_and(|r| r.ready)
    })
    .await;
    status.store(500, Ordering::SeqCst);
    eventually("not ready after 500", Duration::from_secs(10), || {
        control.last_report(1).is_some_and(|r| !r.ready)
    })
    .await;
    agent.shutdown().await;
}
