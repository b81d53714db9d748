//! Measures how fast one agent restarts a crashed container: from the container's exit to the
//! `start` of its next attempt returning, through the whole agent (runtime exit event → listing
//! → supervisor decision → remove + create + start). Runtime: `FakeRuntime` behind a thin
//! wrapper that timestamps starts with `Instant`; each attempt crashes 50 ms after its start
//! (tokio timer, so the exit may be up to ~1 ms late, which the figure includes); real clock. Two workloads: restart
//! backoff 0 (the agent's own reaction time) and a constant 500 ms backoff (the default first delay).
//!
//! Run: `cargo run --release --example agent_restart_latency`

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use cloudless::agent::{Agent, AgentConfig, AgentDeps, FixedResourceProbe, HostResources};
use cloudless::control::{
    AssignedReplica, AssignmentSet, ControlError, ControlPlane, HeartbeatAck, ReplicaReport,
};
use cloudless::runtime::FakeRuntime;
use cloudless::runtime::fake::{Attempt, Script};
use cloudless_core::clock::SystemClock;
use cloudless_core::ids::{Generation, NodeId, ReplicaId, Revision, WorkloadId};
use cloudless_core::node::{Liveness, NodeReport, Platform};
use cloudless_core::quantity::DurationSpec;
use cloudless_core::replica::{Replica, ReplicaPhase};
use cloudless_core::resources::Resources;
use cloudless_core::runtime::{
    ContainerId, ContainerSpec, ContainerStats, ContainerStatus, ExecOutput, ImageInfo, LogChunk,
    Runtime, RuntimeError, RuntimeEvent, Support,
};
use cloudless_core::workload::WorkloadSpec;
use futures::stream::BoxStream;

struct Control(AssignmentSet);

#[async_trait]
impl ControlPlane for Control {
    async fn heartbeat(&self, _: NodeId, _: &NodeReport) -> Result<HeartbeatAck, ControlError> {
        Ok(HeartbeatAck {
            liveness: Liveness::Ready,
            assignments_revision: self.0.revision,
            interval: Duration::from_millis(500),
            leader: Some(NodeId(1)),
        })
    }
    async fn assignments(&self, _: NodeId) -> Result<AssignmentSet, ControlError> {
        Ok(self.0.clone())
    }
    async fn report(&self, _: NodeId, _: Vec<ReplicaReport>) -> Result<(), ControlError> {
        Ok(())
    }
}

/// `FakeRuntime` that timestamps every start.
struct Timed {
    inner: FakeRuntime,
    starts: Arc<Mutex<Vec<(ContainerId, Instant)>>>,
}

#[async_trait]
impl Runtime for Timed {
    fn name(&self) -> &str {
        "timed-fake"
    }
    fn supports(&self, spec: &ContainerSpec) -> Support {
        self.inner.supports(spec)
    }
    async fn pull_image(&self, i: &str, p: Option<&Platform>) -> Result<ImageInfo, RuntimeError> {
        self.inner.pull_image(i, p).await
    }
    async fn import_image(&self, a: &Path) -> Result<Vec<ImageInfo>, RuntimeError> {
        self.inner.import_image(a).await
    }
    async fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        self.inner.create(spec).await
    }
    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.inner.start(id).await?;
        if let Ok(mut s) = self.starts.lock() {
            s.push((id.clone(), Instant::now()));
        }
        Ok(())
    }
    async fn stop(&self, id: &ContainerId, grace_ms: u64) -> Result<(), RuntimeError> {
        self.inner.stop(id, grace_ms).await
    }
    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        self.inner.remove(id).await
    }
    async fn status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        self.inner.status(id).await
    }
    async fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        self.inner.list().await
    }
    async fn events(&self) -> Result<BoxStream<'static, RuntimeEvent>, RuntimeError> {
        self.inner.events().await
    }
    async fn logs(
        &self,
        id: &ContainerId,
        from: u64,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<LogChunk, RuntimeError>>, RuntimeError> {
        self.inner.logs(id, from, follow).await
    }
    async fn exec(
        &self,
        id: &ContainerId,
        c: &[String],
        t: u64,
    ) -> Result<ExecOutput, RuntimeError> {
        self.inner.exec(id, c, t).await
    }
    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        self.inner.stats(id).await
    }
}

fn assigned(spec: WorkloadSpec) -> AssignedReplica {
    AssignedReplica {
        replica: Replica {
            id: ReplicaId(1),
            workload: WorkloadId(1),
            generation: Generation(1),
            node: NodeId(2),
            resources: Resources::default(),
            phase: ReplicaPhase::Pending,
            ready: false,
            restarts: 0,
            address: None,
            assigned_at_ms: 0,
            message: String::new(),
            host_ports: None,
        },
        namespace: "default".into(),
        workload_name: "crash".into(),
        spec,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// How long each attempt runs before it crashes.
const RUN: Duration = Duration::from_millis(50);

/// Crashes of a container that exits `RUN` after each start; latencies exit → next start.
async fn measure(backoff_initial_ms: u64, crashes: usize) -> anyhow::Result<Vec<Duration>> {
    let dir = tempfile::tempdir()?;
    let fake = FakeRuntime::new();
    fake.preload_image("crash");
    fake.script_image(
        "crash",
        Script::new([Attempt::exits(1).after_ms(RUN.as_millis() as u64)]),
    );
    let mut spec = WorkloadSpec::new("crash");
    spec.restart.backoff.initial = DurationSpec::from_millis(backoff_initial_ms);
    spec.restart.backoff.multiplier_percent = 100;
    let starts = Arc::new(Mutex::new(Vec::new()));
    let runtime = Arc::new(Timed {
        inner: fake.clone(),
        starts: Arc::clone(&starts),
    });
    let deps = AgentDeps {
        node: NodeId(2),
        control: Arc::new(Control(AssignmentSet {
            revision: Revision(1),
            replicas: vec![assigned(spec)],
        })),
        runtime,
        clock: Arc::new(SystemClock),
        resources: Arc::new(FixedResourceProbe(HostResources {
            cpu_millis: 2000,
            memory_mib: 1024,
            storage_gib: 10,
            power: None,
        })),
    };
    let mut config = AgentConfig::new(dir.path().join("agent"));
    config.restart_reset_after = Duration::from_secs(3600);
    let agent = Agent::start(config, deps).await?;
    let count = || starts.lock().map(|s| s.len()).unwrap_or(0);
    while count() < crashes + 1 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.shutdown().await;
    let starts: Vec<Instant> = starts
        .lock()
        .map(|s| s.iter().map(|(_, t)| *t).collect())
        .unwrap_or_default();
    // Attempt k exits RUN after its start (tokio timer, ≤ 1 ms late); attempt k+1 starts then.
    let mut lat: Vec<Duration> = starts
        .windows(2)
        .map(|w| w[1].saturating_duration_since(w[0]).saturating_sub(RUN))
        .take(crashes)
        .collect();
    lat.sort();
    Ok(lat)
}

fn main() -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        println!("crash -> next attempt started, one agent, FakeRuntime, real clock");
        for (backoff, n) in [(0u64, 200usize), (500, 20)] {
            let lat = measure(backoff, n).await?;
            println!(
                "  backoff {backoff:>3} ms, {n} crashes: P50 {:?}  P95 {:?}  max {:?}",
                percentile(&lat, 0.5),
                percentile(&lat, 0.95),
                lat.last().copied().unwrap_or_default()
            );
        }
        anyhow::Ok(())
    })
}
