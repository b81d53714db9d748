//! Shared pieces of the agent tests: a scripted in-memory `ControlPlane`, assignment builders,
//! and waiting on a condition under tokio's paused clock.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cloudless::agent::{
    Agent, AgentConfig, AgentDeps, AgentHandle, FixedResourceProbe, HostResources,
};
use cloudless::control::{
    AssignedReplica, AssignmentSet, ControlError, ControlPlane, HeartbeatAck, ReplicaReport,
};
use cloudless::runtime::FakeRuntime;
use cloudless_core::clock::SystemClock;
use cloudless_core::ids::{Generation, NodeId, ReplicaId, Revision, WorkloadId};
use cloudless_core::node::{Liveness, NodeReport, PowerSource};
use cloudless_core::replica::{Replica, ReplicaPhase};
use cloudless_core::resources::Resources;
use cloudless_core::runtime::{ContainerId, ContainerState};
use cloudless_core::workload::WorkloadSpec;
use tokio::time::Instant;

pub const NODE: NodeId = NodeId(3);

#[derive(Default)]
struct Inner {
    up: bool,
    set: AssignmentSet,
    reports: Vec<ReplicaReport>,
    batches: Vec<usize>,
    heartbeats: Vec<NodeReport>,
    attempts: Vec<Instant>,
    not_leader_first: u32,
}

/// A control plane the test scripts: up or down, and the assignment set it serves.
#[derive(Clone, Default)]
pub struct TestControl {
    inner: Arc<Mutex<Inner>>,
}

impl TestControl {
    pub fn new(set: AssignmentSet) -> Self {
        let c = Self::default();
        {
            let mut i = c.lock();
            i.up = true;
            i.set = set;
        }
        c
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn set_up(&self, up: bool) {
        self.lock().up = up;
    }

    pub fn assign(&self, set: AssignmentSet) {
        self.lock().set = set;
    }

    /// Every report received, in order.
    pub fn reports(&self) -> Vec<ReplicaReport> {
        self.lock().reports.clone()
    }

    /// The last report received for `replica`.
    pub fn last_report(&self, replica: u64) -> Option<ReplicaReport> {
        self.lock()
            .reports
            .iter()
            .rev()
            .find(|r| r.replica == ReplicaId(replica))
            .cloned()
    }

    pub fn heartbeats(&self) -> Vec<NodeReport> {
        self.lock().heartbeats.clone()
    }

    /// When each heartbeat was attempted (up or down).
    pub fn attempts(&self) -> Vec<Instant> {
        self.lock().attempts.clone()
    }

    /// Sizes of the report calls received.
    pub fn batches(&self) -> Vec<usize> {
        self.lock().batches.clone()
    }

    /// The next `n` heartbeats answer `NotLeader`.
    pub fn not_leader_for(&self, n: u32) {
        self.lock().not_leader_first = n;
    }

    fn check(&self, node: NodeId) -> Result<(), ControlError> {
        if node != NODE {
            return Err(ControlError::PermissionDenied(format!(
                "{node} is not {NODE}"
            )));
        }
        if self.lock().up {
            Ok(())
        } else {
            Err(ControlError::Unavailable("coordinators down (test)".into()))
        }
    }
}

#[async_trait]
impl ControlPlane for TestControl {
    async fn heartbeat(
        &self,
        node: NodeId,
        report: &NodeReport,
    ) -> Result<HeartbeatAck, ControlError> {
        self.lock().attempts.push(Instant::now());
        self.check(node)?;
        let mut i = self.lock();
        if i.not_leader_first > 0 {
            i.not_leader_first -= 1;
            return Err(ControlError::NotLeader {
                leader: Some(NodeId(2)),
            });
        }
        i.heartbeats.push(report.clone());
        Ok(HeartbeatAck {
            liveness: Liveness::Ready,
            assignments_revision: i.set.revision,
            interval: Duration::from_millis(500),
            leader: Some(NodeId(1)),
        })
    }

    async fn assignments(&self, node: NodeId) -> Result<AssignmentSet, ControlError> {
        self.check(node)?;
        Ok(self.lock().set.clone())
    }

    async fn report(&self, node: NodeId, reports: Vec<ReplicaReport>) -> Result<(), ControlError> {
        self.check(node)?;
        let mut i = self.lock();
        i.batches.push(reports.len());
        i.reports.extend(reports);
        Ok(())
    }
}

/// Replica `id` of workload 7 running `spec`.
pub fn assigned(id: u64, spec: &WorkloadSpec) -> AssignedReplica {
    AssignedReplica {
        replica: Replica {
            id: ReplicaId(id),
            workload: WorkloadId(7),
            generation: Generation(1),
            node: NODE,
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
        workload_name: "web".into(),
        spec: spec.clone(),
    }
}

pub fn set(revision: u64, replicas: Vec<AssignedReplica>) -> AssignmentSet {
    AssignmentSet {
        revision: Revision(revision),
        replicas,
    }
}

pub fn config(dir: &std::path::Path) -> AgentConfig {
    let mut c = AgentConfig::new(dir.join("agent"));
    c.region = "eu".into();
    c.zone = "home-1".into();
    c.egress_mbps = 50;
    c
}

pub fn deps(control: &TestControl, runtime: &FakeRuntime) -> AgentDeps {
    AgentDeps {
        node: NODE,
        control: Arc::new(control.clone()),
        runtime: Arc::new(runtime.clone()),
        clock: Arc::new(SystemClock),
        resources: Arc::new(FixedResourceProbe(HostResources {
            cpu_millis: 4000,
            memory_mib: 8192,
            storage_gib: 64,
            power: Some(PowerSource::Battery {
                level_percent: 80,
                charging: true,
            }),
        })),
    }
}

pub async fn start(
    dir: &std::path::Path,
    control: &TestControl,
    runtime: &FakeRuntime,
) -> AgentHandle {
    Agent::start(config(dir), deps(control, runtime))
        .await
        .expect("agent starts")
}

/// Waits (in tokio time) until `f` holds, failing after `limit`.
pub async fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn cid(replica: u64, attempt: u32) -> ContainerId {
    ContainerId::for_replica(ReplicaId(replica), attempt)
}

/// The state of container `id` in `runtime` now.
pub async fn state_of(runtime: &FakeRuntime, id: &ContainerId) -> Option<ContainerState> {
    use cloudless_core::runtime::Runtime;
    runtime.status(id).await.ok().map(|s| s.state)
}

/// Waits (in tokio time) until container `id` is in `state`.
pub async fn wait_state(
    runtime: &FakeRuntime,
    id: &ContainerId,
    state: ContainerState,
    limit: Duration,
) {
    let deadline = Instant::now() + limit;
    while state_of(runtime, id).await != Some(state) {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {id} to be {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
