//! Shared pieces of the coordinator tests: a `MemConsensus` with a switchable leader, a
//! coordinator with the `WeightedScheduler`, real agents on `FakeRuntime` reached through links
//! that can be cut, and waiting on a condition under tokio's paused clock.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cloudless::agent::{
    Agent, AgentConfig, AgentDeps, AgentHandle, FixedResourceProbe, HostResources,
};
use cloudless::control::{AssignmentSet, ControlError, ControlPlane, HeartbeatAck, ReplicaReport};
use cloudless::coordinator::{Coordinator, CoordinatorConfig, CoordinatorDeps, CoordinatorHandle};
use cloudless::runtime::FakeRuntime;
use cloudless_core::clock::SystemClock;
use cloudless_core::consensus::{
    ChangeStream, Consensus, ConsensusError, ConsensusStatus, WatchFilter,
};
use cloudless_core::ids::{NodeId, Revision, WorkloadId};
use cloudless_core::node::{Liveness, NodeReport};
use cloudless_core::state::{Applied, ClusterState, Command, CommandEnvelope, CommandResult};
use cloudless_core::testing::consensus::MemConsensus;
use cloudless_core::workload::WorkloadSpec;
use cloudless_sched::{SchedulerConfig, WeightedScheduler};
use tokio::time::Instant;

/// The coordinators' member ids; agents use ids from 11 on.
pub const LEADER: NodeId = NodeId(1);
pub const FOLLOWER: NodeId = NodeId(2);

/// One member's view of a shared `MemConsensus` whose leader the test chooses.
#[derive(Clone)]
pub struct Member {
    inner: MemConsensus,
    me: NodeId,
    leader: Arc<Mutex<NodeId>>,
}

impl Member {
    fn leader(&self) -> NodeId {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait]
impl Consensus for Member {
    async fn propose(&self, command: CommandEnvelope) -> Result<Applied, ConsensusError> {
        let leader = self.leader();
        if leader != self.me {
            return Err(ConsensusError::NotLeader {
                leader: Some(leader),
            });
        }
        self.inner.propose(command).await
    }
    async fn state(&self) -> Result<Arc<ClusterState>, ConsensusError> {
        self.inner.state().await
    }
    async fn watch(
        &self,
        filter: WatchFilter,
        from: Revision,
    ) -> Result<ChangeStream, ConsensusError> {
        self.inner.watch(filter, from).await
    }
    async fn status(&self) -> Result<ConsensusStatus, ConsensusError> {
        let mut s = self.inner.status().await?;
        s.id = self.me;
        s.leader = Some(self.leader());
        Ok(s)
    }
    async fn add_voter(&self, id: NodeId, address: String) -> Result<(), ConsensusError> {
        self.inner.add_voter(id, address).await
    }
    async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError> {
        self.inner.remove_voter(id).await
    }
}

/// A control plane an agent reaches through a link that can be cut (a partition) and pointed
/// at another coordinator.
#[derive(Clone)]
pub struct Link {
    target: Arc<Mutex<Arc<dyn ControlPlane>>>,
    cut: Arc<AtomicBool>,
}

impl Link {
    pub fn new(target: Arc<dyn ControlPlane>) -> Self {
        Self {
            target: Arc::new(Mutex::new(target)),
            cut: Arc::new(AtomicBool::new(false)),
        }
    }
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
    pub fn point_at(&self, target: Arc<dyn ControlPlane>) {
        *self.target.lock().unwrap_or_else(|p| p.into_inner()) = target;
    }
    fn target(&self) -> Result<Arc<dyn ControlPlane>, ControlError> {
        if self.cut.load(Ordering::SeqCst) {
            return Err(ControlError::Unavailable("partitioned (test)".into()));
        }
        Ok(Arc::clone(
            &self.target.lock().unwrap_or_else(|p| p.into_inner()),
        ))
    }
}

#[async_trait]
impl ControlPlane for Link {
    async fn heartbeat(
        &self,
        node: NodeId,
        report: &NodeReport,
    ) -> Result<HeartbeatAck, ControlError> {
        self.target()?.heartbeat(node, report).await
    }
    async fn assignments(&self, node: NodeId) -> Result<AssignmentSet, ControlError> {
        self.target()?.assignments(node).await
    }
    async fn report(&self, node: NodeId, reports: Vec<ReplicaReport>) -> Result<(), ControlError> {
        self.target()?.report(node, reports).await
    }
}

pub struct TestAgent {
    pub handle: Option<AgentHandle>,
    pub runtime: FakeRuntime,
    pub link: Link,
}

pub struct Cluster {
    pub mem: MemConsensus,
    leader: Arc<Mutex<NodeId>>,
    pub coordinator: CoordinatorHandle,
    pub agents: BTreeMap<NodeId, TestAgent>,
    pub dir: tempfile::TempDir,
}

pub fn test_config() -> CoordinatorConfig {
    CoordinatorConfig {
        // Short so stop-confirmation tests run quickly.
        stop_grace: Duration::from_secs(2),
        ..CoordinatorConfig::default()
    }
}

pub fn member(mem: &MemConsensus, me: NodeId, leader: &Arc<Mutex<NodeId>>) -> Member {
    Member {
        inner: mem.clone(),
        me,
        leader: Arc::clone(leader),
    }
}

pub async fn start_coordinator(
    mem: &MemConsensus,
    me: NodeId,
    leader: &Arc<Mutex<NodeId>>,
    config: CoordinatorConfig,
) -> CoordinatorHandle {
    let scheduler = WeightedScheduler::new(SchedulerConfig::default()).expect("scheduler");
    Coordinator::start(
        config,
        CoordinatorDeps {
            node: me,
            consensus: Arc::new(member(mem, me, leader)),
            scheduler: Arc::new(scheduler),
            clock: Arc::new(SystemClock),
        },
    )
    .await
    .expect("coordinator starts")
}

impl Cluster {
    /// A coordinator (the leader) and one agent per `(id, zone)`.
    pub async fn start(nodes: &[(u64, &str)]) -> Self {
        Self::start_with(test_config(), nodes).await
    }

    pub async fn start_with(config: CoordinatorConfig, nodes: &[(u64, &str)]) -> Self {
        let mem = MemConsensus::new();
        let leader = Arc::new(Mutex::new(LEADER));
        let coordinator = start_coordinator(&mem, LEADER, &leader, config).await;
        let mut cluster = Self {
            mem,
            leader,
            coordinator,
            agents: BTreeMap::new(),
            dir: tempfile::tempdir().expect("tempdir"),
        };
        for (id, zone) in nodes {
            cluster.add_agent(NodeId(*id), zone).await;
        }
        cluster
    }

    pub fn set_leader(&self, leader: NodeId) {
        *self.leader.lock().unwrap_or_else(|p| p.into_inner()) = leader;
    }

    pub fn leader_cell(&self) -> Arc<Mutex<NodeId>> {
        Arc::clone(&self.leader)
    }

    pub fn agent_config(&self, node: NodeId, zone: &str) -> AgentConfig {
        let mut c = AgentConfig::new(self.dir.path().join(format!("agent-{}", node.get())));
        c.region = "eu".into();
        c.zone = zone.into();
        c.egress_mbps = 100;
        c.control_retry_max = Duration::from_secs(2);
        c.stop_grace = Duration::from_secs(1);
        c
    }

    pub async fn add_agent(&mut self, node: NodeId, zone: &str) {
        let runtime = FakeRuntime::new();
        let link = Link::new(self.coordinator.control_plane());
        let deps = AgentDeps {
            node,
            control: Arc::new(link.clone()),
            runtime: Arc::new(runtime.clone()),
            clock: Arc::new(SystemClock),
            resources: Arc::new(FixedResourceProbe(HostResources {
                cpu_millis: 4000,
                memory_mib: 8192,
                storage_gib: 64,
                power: None,
            })),
        };
        let handle = Agent::start(self.agent_config(node, zone), deps)
            .await
            .expect("agent starts");
        self.agents.insert(
            node,
            TestAgent {
                handle: Some(handle),
                runtime,
                link,
            },
        );
    }

    /// Cuts (or restores) the link between an agent and the coordinators.
    pub fn partition(&self, node: NodeId, cut: bool) {
        if let Some(a) = self.agents.get(&node) {
            a.link.set_cut(cut);
        }
    }

    pub fn runtime(&self, node: NodeId) -> &FakeRuntime {
        &self.agents[&node].runtime
    }

    pub async fn state(&self) -> Arc<ClusterState> {
        self.mem.state().await.expect("state")
    }

    pub async fn propose(&self, command: Command) -> Result<Applied, ConsensusError> {
        self.mem
            .propose(CommandEnvelope::new(SystemClock.now_ms_u64(), command))
            .await
    }

    pub async fn create(&self, name: &str, spec: WorkloadSpec) -> WorkloadId {
        match self
            .propose(Command::CreateWorkload {
                namespace: "default".into(),
                name: name.into(),
                labels: Default::default(),
                spec,
            })
            .await
            .expect("workload created")
            .result
        {
            CommandResult::WorkloadCreated { workload } => workload,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Waits (in tokio time) until `f` holds for the cluster state, failing after `limit`.
    pub async fn eventually(
        &self,
        what: &str,
        limit: Duration,
        mut f: impl FnMut(&ClusterState) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let state = self.state().await;
            if f(&state) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for: {what}\nnodes: {:?}\nreplicas: {:?}",
                state
                    .nodes
                    .values()
                    .map(|n| (n.id, n.liveness))
                    .collect::<Vec<_>>(),
                state
                    .replicas
                    .values()
                    .map(|r| (r.id, r.node, r.phase, r.ready))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn shutdown(mut self) {
        for (_, a) in std::mem::take(&mut self.agents) {
            if let Some(h) = a.handle {
                h.shutdown().await;
            }
        }
        self.coordinator.shutdown().await;
    }
}

/// `SystemClock` as a free function (tests stamp their own commands).
trait NowMs {
    fn now_ms_u64(&self) -> u64;
}

impl NowMs for SystemClock {
    fn now_ms_u64(&self) -> u64 {
        use cloudless_core::clock::Clock;
        self.now_ms()
    }
}

/// Every node is Ready in `state`.
pub fn all_ready(state: &ClusterState, n: usize) -> bool {
    state.nodes.len() == n && state.nodes.values().all(|x| x.liveness == Liveness::Ready)
}

/// Live (non-terminal, non-Stopping) replicas of `w`, with their nodes.
pub fn live_replicas(state: &ClusterState, w: WorkloadId) -> Vec<(u64, NodeId, bool)> {
    state
        .replicas_of(w)
        .filter(|r| {
            !r.phase.is_terminal() && r.phase != cloudless_core::replica::ReplicaPhase::Stopping
        })
        .map(|r| (r.id.get(), r.node, r.ready))
        .collect()
}
