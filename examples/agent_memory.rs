//! Measures the agent's resident memory (NFR-M1: ≤ 20 MiB idle): idle with no replicas, then
//! supervising 10 replicas with readiness probes. Runtime: `FakeRuntime` (in-memory, so the
//! figure is the agent's own footprint, not containerd's); control plane: an in-process one
//! answering at once. Reads `VmRSS`/`VmHWM` from /proc/self/status.
//!
//! Run: `cargo run --release --example agent_memory`

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cloudless::agent::{Agent, AgentConfig, AgentDeps, ProcResourceProbe};
use cloudless::control::{
    AssignedReplica, AssignmentSet, ControlError, ControlPlane, HeartbeatAck, ReplicaReport,
};
use cloudless::runtime::FakeRuntime;
use cloudless::runtime::fake::ExecScript;
use cloudless_core::clock::SystemClock;
use cloudless_core::ids::{Generation, NodeId, ReplicaId, Revision, WorkloadId};
use cloudless_core::node::{Liveness, NodeReport};
use cloudless_core::quantity::DurationSpec;
use cloudless_core::replica::{Replica, ReplicaPhase};
use cloudless_core::resources::Resources;
use cloudless_core::workload::{ExecAction, Probe, WorkloadSpec};

#[derive(Default)]
struct Control {
    set: Mutex<AssignmentSet>,
    reports: Mutex<usize>,
}

#[async_trait]
impl ControlPlane for Control {
    async fn heartbeat(&self, _: NodeId, _: &NodeReport) -> Result<HeartbeatAck, ControlError> {
        let revision = self.set.lock().map(|s| s.revision).unwrap_or_default();
        Ok(HeartbeatAck {
            liveness: Liveness::Ready,
            assignments_revision: revision,
            interval: Duration::from_millis(500),
            leader: Some(NodeId(1)),
        })
    }
    async fn assignments(&self, _: NodeId) -> Result<AssignmentSet, ControlError> {
        self.set
            .lock()
            .map(|s| s.clone())
            .map_err(|_| ControlError::Unavailable("poisoned".into()))
    }
    async fn report(&self, _: NodeId, reports: Vec<ReplicaReport>) -> Result<(), ControlError> {
        if let Ok(mut n) = self.reports.lock() {
            *n += reports.len();
        }
        Ok(())
    }
}

fn rss_kib(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/self/status"))?;
    let kib = line
        .split_whitespace()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("bad {field} line"))?
        .parse()?;
    Ok(kib)
}

fn replica(id: u64) -> AssignedReplica {
    let mut spec = WorkloadSpec::new("localhost/app:1");
    spec.probes.readiness = Some(Probe {
        exec: Some(ExecAction {
            command: vec!["ready".into()],
        }),
        tcp: None,
        http: None,
        initial_delay: DurationSpec(0),
        period: DurationSpec::from_secs(1),
        timeout: DurationSpec::from_secs(1),
        success_threshold: 1,
        failure_threshold: 3,
    });
    AssignedReplica {
        replica: Replica {
            id: ReplicaId(id),
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
        workload_name: "app".into(),
        spec,
    }
}

fn main() -> anyhow::Result<()> {
    let before = rss_kib("VmRSS:")?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let dir = tempfile::tempdir()?;
        let fake = FakeRuntime::new();
        fake.script_exec(&["ready"], ExecScript::prints("ok"));
        let control = Arc::new(Control::default());
        let deps = AgentDeps {
            node: NodeId(2),
            control: control.clone(),
            runtime: Arc::new(fake.clone()),
            clock: Arc::new(SystemClock),
            resources: Arc::new(ProcResourceProbe),
        };
        let agent = Agent::start(AgentConfig::new(dir.path().join("agent")), deps).await?;
        tokio::time::sleep(Duration::from_secs(5)).await;
        let idle = rss_kib("VmRSS:")?;

        if let Ok(mut s) = control.set.lock() {
            *s = AssignmentSet {
                revision: Revision(2),
                replicas: (1..=10).map(replica).collect(),
            };
        }
        let mut watch = agent.watch();
        watch
            .wait_for(|s| s.replicas.len() == 10 && s.replicas.values().all(|r| r.ready))
            .await?;
        tokio::time::sleep(Duration::from_secs(10)).await;
        let ten = rss_kib("VmRSS:")?;
        let peak = rss_kib("VmHWM:")?;
        let reports = control.reports.lock().map(|n| *n).unwrap_or(0);
        agent.shutdown().await;
        println!("agent resident memory (FakeRuntime, current-thread tokio runtime)");
        println!("  process before the runtime: {:>6} KiB", before);
        println!(
            "  agent idle (0 replicas):    {:>6} KiB ({:.1} MiB)",
            idle,
            idle as f64 / 1024.0
        );
        println!(
            "  agent with 10 replicas:     {:>6} KiB ({:.1} MiB)",
            ten,
            ten as f64 / 1024.0
        );
        println!("  peak (VmHWM):               {:>6} KiB", peak);
        println!("  reports sent: {reports}");
        anyhow::Ok(())
    })
}
