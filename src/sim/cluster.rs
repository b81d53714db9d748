//! `SimCluster`: building, stepping, observing and faulting an in-process cluster.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cloudless_core::clock::Clock;
use cloudless_core::consensus::{Consensus, ConsensusError};
use cloudless_core::ids::{NodeId, NodeName, ReplicaId, WorkloadId};
use cloudless_core::node::{NodeReport, Platform, PowerSource, Reliability};
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::resources::Resources;
use cloudless_core::runtime::{ContainerId, ContainerState, Runtime};
use cloudless_core::state::{Applied, ClusterState, Command, CommandEnvelope, CommandResult};
use cloudless_core::testing::consensus::{MemConsensus, MemConsensusConfig};
use cloudless_core::workload::WorkloadSpec;
use cloudless_net::mem::addr_of;
use cloudless_runtime::FakeRuntime;
use cloudless_runtime::supervisor::parse_container_id;
use cloudless_sched::{SchedulerConfig, WeightedScheduler};
use cloudless_store::Timeouts;
use tokio::time::Instant;

use super::SimError;
use super::clock::SimClock;
use super::consensus::{Members, RaftGroup, sim_timeouts};
use super::faults::{Fault, FaultSchedule, SimNode};
use super::invariants::{Checker, InvariantConfig, Observation, RunningContainer};
use super::link::{SimLink, SimNet};
use super::rng::SimRng;
use super::time::{Governor, TICK};
use crate::agent::{Agent, AgentConfig, AgentHandle, FixedResourceProbe, HostResources};
use crate::coordinator::{Coordinator, CoordinatorConfig, CoordinatorDeps, CoordinatorHandle};

/// Wall-clock time at the start of every simulation (2023-11-14T22:13:20Z), so timestamps in
/// commands and state files are the same on every run.
pub const SIM_ORIGIN_MS: u64 = 1_700_000_000_000;

/// First coordinator id; coordinator `i` is `NodeId(COORDINATOR_ID_BASE + i)` (agents get the
/// ids the cluster state mints, from 1).
pub const COORDINATOR_ID_BASE: u64 = 1_000;

/// One agent of a simulation: its name, topology and capacity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentSpec {
    /// Node name (unique).
    pub name: String,
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Storage in GiB.
    pub storage_gib: u64,
}

impl AgentSpec {
    /// A 4-core, 8 GiB, 64 GiB node named `name` in region `r0`, zone `z0`.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            region: "r0".into(),
            zone: "z0".into(),
            labels: BTreeMap::new(),
            cpu_millis: 4000,
            memory_mib: 8192,
            storage_gib: 64,
        }
    }

    /// Sets the zone.
    pub fn zone(mut self, zone: impl Into<String>) -> Self {
        self.zone = zone.into();
        self
    }

    /// Sets the region.
    pub fn region(mut self, region: impl Into<String>) -> Self {
        self.region = region.into();
        self
    }

    /// Sets CPU (millicores) and memory (MiB).
    pub fn resources(mut self, cpu_millis: u64, memory_mib: u64) -> Self {
        self.cpu_millis = cpu_millis;
        self.memory_mib = memory_mib;
        self
    }

    /// Adds a label.
    pub fn label(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(key.into(), value.into());
        self
    }

    fn capacity(&self) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis,
            memory_mib: self.memory_mib,
            storage_gib: self.storage_gib,
            ..Resources::default()
        }
    }

    fn report(&self) -> NodeReport {
        NodeReport {
            platform: Platform::linux_amd64(),
            region: self.region.clone(),
            zone: self.zone.clone(),
            labels: self.labels.clone(),
            capacity: self.capacity(),
            allocatable: self.capacity(),
            power: PowerSource::Mains,
            reliability: Reliability::default(),
        }
    }
}

/// Which consensus the coordinators share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsensusKind {
    /// `MemConsensus` (one coordinator only).
    Mem,
    /// `RaftConsensus` on `MemTransport`, one member per coordinator.
    Raft,
}

type AgentTweak = Arc<dyn Fn(&mut AgentConfig) + Send + Sync>;

/// Builds a [`SimCluster`].
#[derive(Clone)]
pub struct SimBuilder {
    seed: u64,
    coordinators: usize,
    consensus: Option<ConsensusKind>,
    agents: Vec<AgentSpec>,
    step: Duration,
    invariants: Option<InvariantConfig>,
    coordinator: CoordinatorConfig,
    agent_tweak: Option<AgentTweak>,
    raft_timeouts: Timeouts,
    real_time: bool,
}

impl std::fmt::Debug for SimBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimBuilder")
            .field("seed", &self.seed)
            .field("coordinators", &self.coordinators)
            .field("consensus", &self.consensus)
            .field("agents", &self.agents.len())
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

impl SimBuilder {
    /// One coordinator, no agents, 100 ms steps, every invariant checked.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            coordinators: 1,
            consensus: None,
            agents: Vec::new(),
            step: Duration::from_millis(100),
            invariants: Some(InvariantConfig::default()),
            coordinator: CoordinatorConfig::default(),
            agent_tweak: None,
            raft_timeouts: sim_timeouts(),
            real_time: false,
        }
    }

    /// Number of coordinators (1, 3 or 5 are the usual choices).
    pub fn coordinators(mut self, n: usize) -> Self {
        self.coordinators = n;
        self
    }

    /// The consensus; default `Mem` for one coordinator, `Raft` otherwise.
    pub fn consensus(mut self, kind: ConsensusKind) -> Self {
        self.consensus = Some(kind);
        self
    }

    /// Adds one agent.
    pub fn agent(mut self, spec: AgentSpec) -> Self {
        self.agents.push(spec);
        self
    }

    /// Adds agents.
    pub fn agents(mut self, specs: impl IntoIterator<Item = AgentSpec>) -> Self {
        self.agents.extend(specs);
        self
    }

    /// `n` agents named `n0..`, spread round-robin over `zones` (all in region `r0`).
    pub fn agents_in_zones(self, n: usize, zones: &[&str]) -> Self {
        let specs: Vec<AgentSpec> = (0..n)
            .map(|i| {
                let zone = zones.get(i % zones.len().max(1)).copied().unwrap_or("z0");
                AgentSpec::new(format!("n{i}")).zone(zone)
            })
            .collect();
        self.agents(specs)
    }

    /// Virtual time per step (invariants run after every step).
    pub fn step(mut self, step: Duration) -> Self {
        self.step = step;
        self
    }

    /// The invariant configuration; `None` turns checking off.
    pub fn invariants(mut self, config: Option<InvariantConfig>) -> Self {
        self.invariants = config;
        self
    }

    /// The coordinators' configuration.
    pub fn coordinator_config(mut self, config: CoordinatorConfig) -> Self {
        self.coordinator = config;
        self
    }

    /// Adjusts every agent's configuration after the simulator filled it in.
    pub fn agent_config(
        mut self,
        tweak: impl Fn(&mut AgentConfig) + Send + Sync + 'static,
    ) -> Self {
        self.agent_tweak = Some(Arc::new(tweak));
        self
    }

    /// Raft timings (default [`sim_timeouts`]).
    pub fn raft_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.raft_timeouts = timeouts;
        self
    }

    /// Runs on the real clock instead of tokio's paused clock (for measurements). By default
    /// the simulator expects a paused clock (`#[tokio::test(start_paused = true)]`).
    pub fn real_time(mut self, real: bool) -> Self {
        self.real_time = real;
        self
    }

    /// Starts the cluster: consensus, coordinators (waiting for a leader), node registrations,
    /// then the agents.
    pub async fn build(self) -> Result<SimCluster, SimError> {
        SimCluster::start(self).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AgentState {
    Running,
    Crashed,
    PoweredOff,
}

struct AgentSlot {
    spec: AgentSpec,
    node: NodeId,
    runtime: FakeRuntime,
    data_dir: PathBuf,
    link: Arc<SimLink>,
    handle: Option<AgentHandle>,
    state: AgentState,
}

struct CoordinatorSlot {
    id: NodeId,
    handle: Option<CoordinatorHandle>,
}

/// A container kill the simulator injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillRecord {
    /// When (virtual time since the start).
    pub at: Duration,
    /// The node.
    pub node: NodeId,
    /// The killed container.
    pub container: ContainerId,
}

/// What the simulation looked like after one step.
#[derive(Debug, Clone, Default)]
pub struct StepView {
    /// Step number (0 before the first step).
    pub step: u64,
    /// Virtual time since the start.
    pub at: Duration,
    /// The freshest ledger any running consensus member has applied.
    pub state: Option<Arc<ClusterState>>,
    /// Every running container, by node then container id.
    pub running: Vec<RunningContainer>,
    /// Replicas the agents report ready (containers on nodes whose agent is down count as
    /// ready while they run).
    pub ready: BTreeSet<ReplicaId>,
    /// The coordinator acting as leader, by index.
    pub leader: Option<usize>,
}

impl StepView {
    /// Running containers of `workload`.
    pub fn running_of(&self, workload: WorkloadId) -> Vec<RunningContainer> {
        self.running
            .iter()
            .filter(|c| c.workload == Some(workload))
            .copied()
            .collect()
    }

    /// Running containers on `node`.
    pub fn running_on(&self, node: NodeId) -> Vec<RunningContainer> {
        self.running
            .iter()
            .filter(|c| c.node == node)
            .copied()
            .collect()
    }

    /// The ledger's phase of `replica`.
    pub fn phase(&self, replica: ReplicaId) -> Option<ReplicaPhase> {
        self.state
            .as_ref()
            .and_then(|s| s.replicas.get(&replica).map(|r| r.phase))
    }
}

/// A running simulation. Drive it with [`step`](Self::step), [`run_for`](Self::run_for),
/// [`run_until`](Self::run_until) or [`run_schedule`](Self::run_schedule); invariants are
/// checked after every step.
pub struct SimCluster {
    seed: u64,
    step_len: Duration,
    dir: tempfile::TempDir,
    clock: SimClock,
    coordinator_config: CoordinatorConfig,
    agent_tweak: Option<AgentTweak>,
    members: Members,
    kind: ConsensusKind,
    coordinators: Vec<CoordinatorSlot>,
    agents: Vec<AgentSlot>,
    net: SimNet,
    checker: Option<Checker>,
    start: Instant,
    step: u64,
    view: StepView,
    owners: BTreeMap<ReplicaId, WorkloadId>,
    last_fault_change: Duration,
    kills: Vec<KillRecord>,
    fault_log: Vec<(Duration, Fault)>,
    governor: Governor,
    real_time: bool,
    _raft_dir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for SimCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimCluster")
            .field("seed", &self.seed)
            .field("kind", &self.kind)
            .field("coordinators", &self.coordinators.len())
            .field("agents", &self.agents.len())
            .field("step", &self.step)
            .finish_non_exhaustive()
    }
}

fn setup(what: &str, e: impl std::fmt::Display) -> SimError {
    SimError::Setup(format!("{what}: {e}"))
}

impl SimCluster {
    /// A builder for a simulation seeded with `seed`.
    pub fn builder(seed: u64) -> SimBuilder {
        SimBuilder::new(seed)
    }

    async fn start(b: SimBuilder) -> Result<Self, SimError> {
        if b.coordinators == 0 {
            return Err(SimError::Setup("at least one coordinator is needed".into()));
        }
        let kind = b.consensus.unwrap_or(if b.coordinators == 1 {
            ConsensusKind::Mem
        } else {
            ConsensusKind::Raft
        });
        if kind == ConsensusKind::Mem && b.coordinators != 1 {
            return Err(SimError::Setup(format!(
                "MemConsensus has one member; {} coordinators need raft",
                b.coordinators
            )));
        }
        let names: BTreeSet<&str> = b.agents.iter().map(|a| a.name.as_str()).collect();
        if names.len() != b.agents.len() {
            return Err(SimError::Setup("agent names must be unique".into()));
        }
        let dir = tempfile::Builder::new()
            .prefix("cloudless-sim-")
            .tempdir()
            .map_err(|e| setup("temp dir", e))?;
        let mut raft_tmp = None;
        let ids: Vec<NodeId> = (0..b.coordinators)
            .map(|i| NodeId(COORDINATOR_ID_BASE + u64::try_from(i).unwrap_or(0)))
            .collect();
        let members = match kind {
            ConsensusKind::Mem => {
                let config = MemConsensusConfig::default().with_id(ids[0]);
                Members::Mem(
                    MemConsensus::with_config(config).map_err(|e| setup("mem consensus", e))?,
                )
            }
            ConsensusKind::Raft => {
                // redb files on tmpfs when there is one: fsyncs then cost microseconds, so the
                // governed paused clock barely moves while a write is in flight.
                let shm = std::path::Path::new("/dev/shm");
                let base = if shm.is_dir() {
                    tempfile::Builder::new()
                        .prefix("cloudless-sim-raft-")
                        .tempdir_in(shm)
                        .ok()
                } else {
                    None
                };
                let raft_dir = match &base {
                    Some(d) => d.path().to_path_buf(),
                    None => dir.path().join("raft"),
                };
                let group = RaftGroup::new(raft_dir, b.seed, b.raft_timeouts);
                raft_tmp = base;
                Members::Raft(group)
            }
        };
        let net = SimNet::new(&ids, b.seed);
        let mut sim = Self {
            seed: b.seed,
            step_len: b.step,
            dir,
            clock: SimClock::new(SIM_ORIGIN_MS),
            coordinator_config: b.coordinator,
            agent_tweak: b.agent_tweak,
            members,
            kind,
            coordinators: ids
                .iter()
                .map(|&id| CoordinatorSlot { id, handle: None })
                .collect(),
            agents: Vec::new(),
            net,
            checker: b.invariants.map(|c| Checker::new(b.seed, c)),
            start: Instant::now(),
            step: 0,
            view: StepView::default(),
            owners: BTreeMap::new(),
            last_fault_change: Duration::ZERO,
            kills: Vec::new(),
            fault_log: Vec::new(),
            governor: Governor::default(),
            real_time: b.real_time,
            _raft_dir: raft_tmp,
        };
        if kind == ConsensusKind::Raft {
            for &id in &ids {
                sim.start_raft_member(id).await?;
            }
            let voters = ids.iter().map(|&id| (id, addr_of(id))).collect();
            let first = sim
                .members
                .raft_member(ids[0])
                .ok_or_else(|| SimError::Setup("raft member did not start".into()))?;
            sim.drive(async move { first.initialize(voters).await })
                .await
                .map_err(|e| setup("raft initialize", e))?;
        }
        for i in 0..sim.coordinators.len() {
            sim.start_coordinator(i).await?;
        }
        sim.wait_leader(Duration::from_secs(60)).await?;
        for spec in b.agents {
            sim.add_agent(spec).await?;
        }
        sim.view = sim.observe().await;
        Ok(sim)
    }

    /// Registers a node for `spec` and starts its agent; returns the agent's index.
    pub async fn add_agent(&mut self, spec: AgentSpec) -> Result<usize, SimError> {
        if self.agents.iter().any(|a| a.spec.name == spec.name) {
            return Err(SimError::Setup(format!(
                "agent name {} is taken",
                spec.name
            )));
        }
        // Registered under the next free id with the name a coordinator gives a node it learns
        // of from a heartbeat (`node-<id>`), so a heartbeat that reaches a coordinator whose
        // view has not applied the registration yet registers the same node again instead
        // of conflicting with it.
        let node = match self.members.observe().await {
            Some(state) => NodeId(state.next_node_id.max(1)),
            None => return Err(SimError::Setup("no consensus member runs".into())),
        };
        let name = NodeName::new(format!("node-{}", node.get()))
            .map_err(|e| setup(&format!("node name of {}", spec.name), e))?;
        self.propose(
            &format!("register {} as {node}", spec.name),
            Command::RegisterNodeAs {
                node,
                name,
                report: spec.report(),
            },
        )
        .await?;
        let i = self.agents.len();
        let n = self.coordinators.len();
        let link = Arc::new(SimLink::new(node, self.net.clone(), i % n));
        self.agents.push(AgentSlot {
            data_dir: self.dir.path().join("agents").join(&spec.name),
            spec,
            node,
            runtime: FakeRuntime::new(),
            link,
            handle: None,
            state: AgentState::Crashed,
        });
        self.start_agent(i).await?;
        Ok(i)
    }

    /// The state each running consensus member has applied (for "visible cluster-wide").
    pub async fn member_states(&self) -> Vec<Arc<ClusterState>> {
        match &self.members {
            Members::Mem(m) => m.state().await.ok().into_iter().collect(),
            Members::Raft(g) => g.states(),
        }
    }

    /// A multi-line summary of the last view: leader, nodes, workloads, replicas and running
    /// containers (for failure messages and exploring).
    pub fn describe(&self) -> String {
        use std::fmt::Write as _;
        let v = &self.view;
        let mut out = format!(
            "seed {} step {} t={:.1}s leader {:?} fault_active {}\n",
            self.seed,
            v.step,
            v.at.as_secs_f64(),
            v.leader,
            self.fault_active()
        );
        for line in self.members.describe() {
            let _ = writeln!(out, "  {line}");
        }
        for (i, c) in self.coordinators.iter().enumerate() {
            let _ = writeln!(
                out,
                "  coordinator #{i} {}: {}",
                c.id,
                match &c.handle {
                    None => "down",
                    Some(h) if h.is_leader() => "leading",
                    Some(_) => "following",
                }
            );
        }
        if let Some(s) = &v.state {
            let _ = writeln!(out, "  revision {}", s.revision.0);
            for n in s.nodes.values() {
                let _ = writeln!(
                    out,
                    "  node {} {} zone {} {:?} reserved {:?}",
                    n.id,
                    n.name.as_str(),
                    n.report.zone,
                    n.liveness,
                    s.reserved.get(&n.id).map(|r| (r.cpu_millis, r.memory_mib))
                );
            }
            for w in s.workloads.values() {
                let _ = writeln!(
                    out,
                    "  workload {} {}/{} gen {} replicas {} status {:?}",
                    w.id, w.namespace, w.name, w.generation, w.spec.replicas, w.status
                );
            }
            for r in s.replicas.values() {
                let _ = writeln!(
                    out,
                    "  replica {} of {} gen {} on {} {:?} ready {} restarts {} {}",
                    r.id, r.workload, r.generation, r.node, r.phase, r.ready, r.restarts, r.message
                );
            }
        }
        for c in &v.running {
            let _ = writeln!(out, "  running {c:?}");
        }
        out
    }

    // ---- accessors ----

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// Steps taken so far.
    pub fn steps(&self) -> u64 {
        self.step
    }

    /// Virtual time since the simulation started.
    pub fn elapsed(&self) -> Duration {
        self.start.elapsed()
    }

    /// The consensus the coordinators share.
    pub fn consensus_kind(&self) -> ConsensusKind {
        self.kind
    }

    /// The wall clock every component of the simulation reads.
    pub fn clock(&self) -> Arc<dyn Clock> {
        Arc::new(self.clock)
    }

    /// The view after the last step.
    pub fn view(&self) -> &StepView {
        &self.view
    }

    /// The agent ↔ coordinator network.
    pub fn net(&self) -> &SimNet {
        &self.net
    }

    /// Number of agents.
    pub fn agent_count(&self) -> usize {
        self.agents.len()
    }

    /// Number of coordinators.
    pub fn coordinator_count(&self) -> usize {
        self.coordinators.len()
    }

    /// The node id of agent `i`.
    pub fn node(&self, i: usize) -> Option<NodeId> {
        self.agents.get(i).map(|a| a.node)
    }

    /// The index of the agent of `node`.
    pub fn agent_index(&self, node: NodeId) -> Option<usize> {
        self.agents.iter().position(|a| a.node == node)
    }

    /// The spec agent `i` was built from.
    pub fn agent_spec(&self, i: usize) -> Option<&AgentSpec> {
        self.agents.get(i).map(|a| &a.spec)
    }

    /// Agent `i`'s handle while it runs.
    pub fn agent(&self, i: usize) -> Option<&AgentHandle> {
        self.agents.get(i).and_then(|a| a.handle.as_ref())
    }

    /// Agent `i`'s container runtime (outlives agent restarts).
    pub fn runtime(&self, i: usize) -> Option<&FakeRuntime> {
        self.agents.get(i).map(|a| &a.runtime)
    }

    /// Agent `i`'s link to the coordinators.
    pub fn link(&self, i: usize) -> Option<&Arc<SimLink>> {
        self.agents.get(i).map(|a| &a.link)
    }

    /// Coordinator `i`'s id.
    pub fn coordinator_id(&self, i: usize) -> Option<NodeId> {
        self.coordinators.get(i).map(|c| c.id)
    }

    /// Coordinator `i`'s handle while it runs.
    pub fn coordinator(&self, i: usize) -> Option<&CoordinatorHandle> {
        self.coordinators.get(i).and_then(|c| c.handle.as_ref())
    }

    /// The coordinator that acts as leader now (its consensus member leads and it knows).
    pub fn leader(&self) -> Option<usize> {
        let id = self.members.leader(self.coordinators.first()?.id)?;
        self.coordinators
            .iter()
            .position(|c| c.id == id && c.handle.as_ref().is_some_and(|h| h.is_leader()))
    }

    /// How virtual time was moved so far.
    pub fn time_stats(&self) -> super::time::TimeStats {
        self.governor.stats()
    }

    /// Container kills injected so far.
    pub fn kills(&self) -> &[KillRecord] {
        &self.kills
    }

    /// Faults applied so far, with their times.
    pub fn fault_log(&self) -> &[(Duration, Fault)] {
        &self.fault_log
    }

    /// The invariant checker, when checking is on.
    pub fn checker(&self) -> Option<&Checker> {
        self.checker.as_ref()
    }

    /// True while any fault is in effect.
    pub fn fault_active(&self) -> bool {
        self.coordinators.iter().any(|c| c.handle.is_none())
            || self.agents.iter().any(|a| a.state != AgentState::Running)
            || self.net.has_partitions()
            || self.net.faults() != super::link::LinkFaults::default()
    }

    // ---- commands ----

    /// Proposes `command` at the current leader's consensus member, retrying (in virtual time,
    /// without checking invariants) while there is no leader, for up to 60 s.
    pub async fn propose(&mut self, what: &str, command: Command) -> Result<Applied, SimError> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = String::from("no consensus leader");
        loop {
            let leader = self.members.leader(self.coordinators[0].id);
            if let Some(leader) = leader {
                let consensus = self.members.open_running(leader);
                if let Some(consensus) = consensus {
                    let envelope = CommandEnvelope::new(self.clock.now_ms(), command.clone());
                    let outcome = self
                        .drive(async move { consensus.propose(envelope).await })
                        .await;
                    match outcome {
                        Ok(applied) => return Ok(applied),
                        Err(ConsensusError::Rejected(e)) => {
                            return Err(SimError::Command {
                                what: what.into(),
                                reason: e.to_string(),
                            });
                        }
                        Err(e) => last = e.to_string(),
                    }
                }
            }
            if Instant::now() >= deadline {
                return Err(SimError::Command {
                    what: what.into(),
                    reason: format!("not committed within 60 s: {last}"),
                });
            }
            self.tick().await;
        }
    }

    /// Creates a workload (as `kubectl apply` of a manifest would); returns its id.
    pub async fn create_workload(
        &mut self,
        namespace: &str,
        name: &str,
        spec: WorkloadSpec,
    ) -> Result<WorkloadId, SimError> {
        let what = format!("create workload {namespace}/{name}");
        let existed = self.workload_named(namespace, name).await.is_some();
        let applied = self
            .propose(
                &what,
                Command::CreateWorkload {
                    namespace: namespace.into(),
                    name: name.into(),
                    labels: BTreeMap::new(),
                    spec: spec.clone(),
                },
            )
            .await;
        let applied = match applied {
            Ok(applied) => applied,
            // An attempt whose answer was lost (a leader change) may have committed; the
            // retry is then refused as a duplicate. It is ours if it was not there before and
            // carries our spec.
            Err(e) if !existed => match self.workload_named(namespace, name).await {
                Some(w) if w.spec == spec => return Ok(w.id),
                _ => return Err(e),
            },
            Err(e) => return Err(e),
        };
        match applied.result {
            CommandResult::WorkloadCreated { workload } => Ok(workload),
            other => Err(SimError::Command {
                what,
                reason: format!("unexpected result {other:?}"),
            }),
        }
    }

    /// The workload `namespace/name` in the state of any running member.
    async fn workload_named(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<cloudless_core::workload::Workload> {
        self.member_states()
            .await
            .iter()
            .find_map(|s| s.workload_by_name(namespace, name).cloned())
    }

    /// Parses a manifest text and creates every `Workload` in it; returns their ids in order.
    pub async fn apply_manifests(&mut self, text: &str) -> Result<Vec<WorkloadId>, SimError> {
        let manifests =
            cloudless_core::manifest::parse_str(text, cloudless_core::manifest::Format::default())
                .map_err(|e| SimError::Command {
                    what: "parse manifests".into(),
                    reason: e.to_string(),
                })?;
        let mut ids = Vec::new();
        for m in manifests {
            if let cloudless_core::manifest::ManifestSpec::Workload(spec) = m.spec {
                ids.push(
                    self.create_workload(&m.metadata.namespace, &m.metadata.name, spec)
                        .await?,
                );
            }
        }
        Ok(ids)
    }

    /// Replaces a workload's spec (a rollout when the pod template changes).
    pub async fn update_workload(
        &mut self,
        workload: WorkloadId,
        spec: WorkloadSpec,
    ) -> Result<(), SimError> {
        self.propose(
            &format!("update workload {workload}"),
            Command::UpdateWorkload {
                workload,
                expected_generation: None,
                spec,
            },
        )
        .await
        .map(|_| ())
    }

    // ---- time ----

    /// Advances virtual time by one step, observes the cluster and checks the invariants.
    pub async fn step(&mut self) -> Result<(), SimError> {
        let until = self.elapsed() + self.step_len;
        while self.elapsed() < until {
            self.tick().await;
        }
        self.step += 1;
        self.view = self.observe().await;
        self.check()
    }

    /// Steps for `duration` of virtual time.
    pub async fn run_for(&mut self, duration: Duration) -> Result<(), SimError> {
        let until = self.elapsed() + duration;
        while self.elapsed() < until {
            self.step().await?;
        }
        Ok(())
    }

    /// Steps until `done(view)` holds (checked before the first step too), for at most
    /// `limit` of virtual time.
    pub async fn run_until(
        &mut self,
        limit: Duration,
        what: &str,
        mut done: impl FnMut(&StepView) -> bool,
    ) -> Result<(), SimError> {
        let began = self.elapsed();
        loop {
            if done(&self.view) {
                return Ok(());
            }
            if self.elapsed() - began >= limit {
                tracing::warn!(
                    "simulation timed out waiting for {what}:\n{}",
                    self.describe()
                );
                return Err(SimError::Timeout {
                    what: what.into(),
                    waited: limit,
                    seed: self.seed,
                    step: self.step,
                });
            }
            self.step().await?;
        }
    }

    /// Steps until every agent's node is Ready in the ledger (agents join asynchronously after
    /// [`SimBuilder::build`]), for at most `limit`.
    pub async fn run_until_nodes_ready(&mut self, limit: Duration) -> Result<(), SimError> {
        let nodes: Vec<NodeId> = self.agents.iter().map(|a| a.node).collect();
        self.run_until(limit, "every node Ready", |v| {
            v.state.as_ref().is_some_and(|s| {
                nodes.iter().all(|n| {
                    s.nodes
                        .get(n)
                        .is_some_and(|x| x.liveness == cloudless_core::node::Liveness::Ready)
                })
            })
        })
        .await
    }

    /// Plays `schedule` (times relative to now), stepping between faults.
    pub async fn run_schedule(&mut self, schedule: &FaultSchedule) -> Result<(), SimError> {
        let base = self.elapsed();
        for f in &schedule.faults {
            while self.elapsed() < base + f.at {
                self.step().await?;
            }
            self.apply(f.fault.clone()).await?;
        }
        Ok(())
    }

    fn check(&mut self) -> Result<(), SimError> {
        let Some(checker) = self.checker.as_mut() else {
            return Ok(());
        };
        let up_nodes: BTreeSet<NodeId> = self
            .agents
            .iter()
            .filter(|a| a.state == AgentState::Running)
            .map(|a| a.node)
            .collect();
        let fault_active = self.coordinators.iter().any(|c| c.handle.is_none())
            || self.agents.iter().any(|a| a.state != AgentState::Running)
            || self.net.has_partitions()
            || self.net.faults() != super::link::LinkFaults::default();
        let obs = Observation {
            step: self.view.step,
            at: self.view.at,
            state: self.view.state.as_deref(),
            running: &self.view.running,
            ready: &self.view.ready,
            up_nodes: &up_nodes,
            fault_active,
            last_fault_change: self.last_fault_change,
        };
        checker.check(&obs).map_err(SimError::Invariant)
    }

    /// Observes the cluster now (also called by every step).
    pub async fn observe(&mut self) -> StepView {
        let state = self.members.observe().await;
        if let Some(s) = &state {
            for r in s.replicas.values() {
                self.owners.insert(r.id, r.workload);
            }
        }
        let mut running = Vec::new();
        let mut ready = BTreeSet::new();
        for a in &self.agents {
            let mut statuses = a.runtime.list().await.unwrap_or_default();
            statuses.sort_by(|x, y| x.id.cmp(&y.id));
            for s in statuses
                .iter()
                .filter(|s| s.state == ContainerState::Running)
            {
                let Some((replica, attempt)) = parse_container_id(&s.id) else {
                    continue;
                };
                running.push(RunningContainer {
                    node: a.node,
                    replica,
                    attempt,
                    workload: self.owners.get(&replica).copied(),
                });
                if a.handle.is_none() {
                    ready.insert(replica);
                }
            }
            if let Some(h) = &a.handle {
                for (id, r) in h.snapshot().replicas {
                    if r.ready && r.phase == ReplicaPhase::Running {
                        ready.insert(id);
                    }
                }
            }
        }
        StepView {
            step: self.step,
            at: self.elapsed(),
            state,
            running,
            ready,
            leader: self.leader(),
        }
    }

    /// Waits (without invariant checks) until a coordinator acts as leader.
    pub async fn wait_leader(&mut self, limit: Duration) -> Result<usize, SimError> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.leader() {
                return Ok(l);
            }
            if Instant::now() >= deadline {
                return Err(SimError::Timeout {
                    what: "a coordinator leader".into(),
                    waited: limit,
                    seed: self.seed,
                    step: self.step,
                });
            }
            self.tick().await;
        }
    }

    // ---- faults ----

    fn fault_error(fault: &Fault, reason: impl Into<String>) -> SimError {
        SimError::Fault {
            fault: format!("{fault:?}"),
            reason: reason.into(),
        }
    }

    fn node_ids(&self, nodes: &[SimNode]) -> Result<Vec<NodeId>, String> {
        nodes
            .iter()
            .map(|n| match *n {
                SimNode::Coordinator(i) => self
                    .coordinator_id(i)
                    .ok_or_else(|| format!("no coordinator #{i}")),
                SimNode::Agent(i) => self.node(i).ok_or_else(|| format!("no agent #{i}")),
            })
            .collect()
    }

    /// Applies one fault now.
    pub async fn apply(&mut self, fault: Fault) -> Result<(), SimError> {
        let at = self.elapsed();
        match &fault {
            Fault::CrashCoordinator(i) => self
                .crash_coordinator(*i)
                .await
                .map_err(|r| Self::fault_error(&fault, r))?,
            Fault::RestartCoordinator(i) => {
                if self.coordinators.get(*i).is_none() {
                    return Err(Self::fault_error(&fault, format!("no coordinator #{i}")));
                }
                self.start_coordinator(*i).await?;
            }
            Fault::CrashAgent(i) => self
                .stop_agent(*i, false)
                .await
                .map_err(|r| Self::fault_error(&fault, r))?,
            Fault::PowerOffAgent(i) => self
                .stop_agent(*i, true)
                .await
                .map_err(|r| Self::fault_error(&fault, r))?,
            Fault::RestartAgent(i) => {
                if self.agents.get(*i).is_none() {
                    return Err(Self::fault_error(&fault, format!("no agent #{i}")));
                }
                self.start_agent(*i).await?;
            }
            Fault::Partition(a, b) => {
                let a = self.node_ids(a).map_err(|r| Self::fault_error(&fault, r))?;
                let b = self.node_ids(b).map_err(|r| Self::fault_error(&fault, r))?;
                self.net.partition(&a, &b);
                if let Members::Raft(g) = &self.members {
                    g.net().partition(&a, &b);
                }
            }
            Fault::Heal => {
                self.net.heal();
                if let Members::Raft(g) = &self.members {
                    g.net().heal();
                }
            }
            Fault::Link(faults) => {
                if !(0.0..=1.0).contains(&faults.drop_rate) {
                    return Err(Self::fault_error(&fault, "drop rate must be within 0..=1"));
                }
                self.net.set_faults(*faults);
            }
            Fault::KillContainer { agent, pick } => {
                let slot = self
                    .agents
                    .get(*agent)
                    .ok_or_else(|| Self::fault_error(&fault, format!("no agent #{agent}")))?;
                let mut running: Vec<ContainerId> = slot
                    .runtime
                    .list()
                    .await
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|s| s.state == ContainerState::Running)
                    .map(|s| s.id)
                    .collect();
                running.sort();
                if !running.is_empty() {
                    let n = u64::try_from(running.len()).unwrap_or(1);
                    let idx = usize::try_from(pick % n).unwrap_or(0);
                    let id = running.swap_remove(idx);
                    // A kill from outside: exits at once, as SIGKILL would.
                    let _ = slot.runtime.stop(&id, 0).await;
                    self.kills.push(KillRecord {
                        at,
                        node: slot.node,
                        container: id,
                    });
                }
            }
            Fault::AllCoordinatorsDown => {
                for i in 0..self.coordinators.len() {
                    if self.coordinators[i].handle.is_some() {
                        self.crash_coordinator(i)
                            .await
                            .map_err(|r| Self::fault_error(&fault, r))?;
                    }
                }
            }
            Fault::AllCoordinatorsUp => {
                // Every raft member first, so the coordinators start on a group with a quorum.
                let down: Vec<NodeId> = self
                    .coordinators
                    .iter()
                    .filter(|c| c.handle.is_none())
                    .map(|c| c.id)
                    .collect();
                for id in down {
                    if let Members::Raft(g) = &self.members
                        && g.member(id).is_none()
                    {
                        self.start_raft_member(id).await?;
                    }
                }
                for i in 0..self.coordinators.len() {
                    if self.coordinators[i].handle.is_none() {
                        self.start_coordinator(i).await?;
                    }
                }
            }
        }
        self.last_fault_change = self.elapsed();
        self.fault_log.push((at, fault));
        Ok(())
    }

    /// Kills the container of `replica` wherever it runs; returns the container killed.
    pub async fn kill_replica(&mut self, replica: ReplicaId) -> Result<ContainerId, SimError> {
        let view = self.observe().await;
        let found = view
            .running
            .iter()
            .find(|c| c.replica == replica)
            .copied()
            .ok_or_else(|| SimError::Fault {
                fault: format!("kill replica {replica}"),
                reason: "no running container".into(),
            })?;
        let agent = self
            .agent_index(found.node)
            .ok_or_else(|| SimError::Fault {
                fault: format!("kill replica {replica}"),
                reason: format!("unknown node {}", found.node),
            })?;
        let id = ContainerId::for_replica(replica, found.attempt);
        let mut running: Vec<ContainerId> = self.agents[agent]
            .runtime
            .list()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter(|s| s.state == ContainerState::Running)
            .map(|s| s.id)
            .collect();
        running.sort();
        let pick = running.iter().position(|c| *c == id).unwrap_or(0);
        self.apply(Fault::KillContainer {
            agent,
            pick: u64::try_from(pick).unwrap_or(0),
        })
        .await?;
        Ok(id)
    }

    async fn start_coordinator(&mut self, i: usize) -> Result<(), SimError> {
        let id = self.coordinators[i].id;
        if self.coordinators[i].handle.is_some() {
            return Ok(());
        }
        if let Members::Raft(g) = &self.members
            && g.member(id).is_none()
        {
            self.start_raft_member(id).await?;
        }
        let consensus = self
            .members
            .open_running(id)
            .ok_or_else(|| SimError::Setup(format!("no consensus member for coordinator {id}")))?;
        let scheduler = WeightedScheduler::new(SchedulerConfig::default())
            .map_err(|e| setup("scheduler", e))?;
        let config = self.coordinator_config.clone();
        let deps = CoordinatorDeps {
            node: id,
            consensus,
            scheduler: Arc::new(scheduler),
            clock: Arc::new(self.clock),
        };
        let handle = self
            .drive(Coordinator::start(config, deps))
            .await
            .map_err(|e| setup(&format!("coordinator {id}"), e))?;
        self.net.set_coordinator(i, Some(handle.control_plane()));
        self.coordinators[i].handle = Some(handle);
        Ok(())
    }

    async fn crash_coordinator(&mut self, i: usize) -> Result<(), String> {
        let slot = self
            .coordinators
            .get_mut(i)
            .ok_or_else(|| format!("no coordinator #{i}"))?;
        let id = slot.id;
        let Some(handle) = slot.handle.take() else {
            return Ok(());
        };
        self.net.set_coordinator(i, None);
        self.drive(handle.shutdown()).await;
        if let Members::Raft(g) = &mut self.members
            && let Some(member) = g.take(id)
        {
            self.drive(async move { member.consensus.shutdown().await })
                .await;
        }
        Ok(())
    }

    fn agent_config(&self, slot: &AgentSlot) -> AgentConfig {
        let mut c = AgentConfig::new(slot.data_dir.clone());
        c.region = slot.spec.region.clone();
        c.zone = slot.spec.zone.clone();
        c.labels = slot.spec.labels.clone();
        c.platform = Some(Platform::linux_amd64());
        c.power = Some(PowerSource::Mains);
        c.cpu_millis = Some(slot.spec.cpu_millis);
        c.memory_mib = Some(slot.spec.memory_mib);
        c.storage_gib = Some(slot.spec.storage_gib);
        if let Some(tweak) = &self.agent_tweak {
            tweak(&mut c);
        }
        c
    }

    async fn start_agent(&mut self, i: usize) -> Result<(), SimError> {
        if self.agents[i].handle.is_some() {
            return Ok(());
        }
        let config = self.agent_config(&self.agents[i]);
        let slot = &self.agents[i];
        let deps = crate::agent::AgentDeps {
            node: slot.node,
            control: slot.link.clone(),
            runtime: Arc::new(slot.runtime.clone()),
            clock: Arc::new(self.clock),
            resources: Arc::new(FixedResourceProbe(HostResources {
                cpu_millis: slot.spec.cpu_millis,
                memory_mib: slot.spec.memory_mib,
                storage_gib: slot.spec.storage_gib,
                power: Some(PowerSource::Mains),
            })),
        };
        let name = slot.spec.name.clone();
        let handle = self
            .drive(Agent::start(config, deps))
            .await
            .map_err(|e| setup(&format!("agent {name}"), e))?;
        let slot = &mut self.agents[i];
        slot.handle = Some(handle);
        slot.state = AgentState::Running;
        Ok(())
    }

    async fn stop_agent(&mut self, i: usize, power_off: bool) -> Result<(), String> {
        let handle = self
            .agents
            .get_mut(i)
            .ok_or_else(|| format!("no agent #{i}"))?
            .handle
            .take();
        if let Some(handle) = handle {
            self.drive(handle.shutdown()).await;
        }
        let slot = &mut self.agents[i];
        if power_off {
            let ids: Vec<ContainerId> = slot
                .runtime
                .list()
                .await
                .unwrap_or_default()
                .into_iter()
                .map(|s| s.id)
                .collect();
            for id in ids {
                // Power loss: every container dies and is gone after the reboot.
                let _ = slot.runtime.remove(&id).await;
            }
            slot.state = AgentState::PoweredOff;
        } else if slot.state == AgentState::Running {
            slot.state = AgentState::Crashed;
        }
        Ok(())
    }

    /// Stops every agent (containers stay in their fakes), coordinator and consensus member.
    pub async fn shutdown(mut self) {
        for i in 0..self.agents.len() {
            if let Some(h) = self.agents[i].handle.take() {
                self.drive(h.shutdown()).await;
            }
        }
        for i in 0..self.coordinators.len() {
            if let Some(h) = self.coordinators[i].handle.take() {
                self.drive(h.shutdown()).await;
            }
        }
        match &mut self.members {
            Members::Mem(m) => m.shutdown(),
            Members::Raft(g) => {
                for id in g.running() {
                    if let Some(member) = g.take(id) {
                        member.consensus.shutdown().await;
                    }
                }
            }
        }
        self.governor.release();
    }

    // ---- virtual time ----

    /// Advances virtual time by one tick. With raft members running on a paused clock, time
    /// is *governed*: auto-advance is held off and each tick moves time by [`TICK`] and then
    /// gives the members' log-writer threads a moment of real time, so an fsync in flight
    /// never lets virtual time race ahead (`docs/determinism.md`). Otherwise the tick is a
    /// plain sleep that the paused clock auto-advances through.
    pub async fn tick(&mut self) {
        if self.real_time {
            tokio::time::sleep(TICK).await;
            return;
        }
        if self.members.raft_running() {
            self.governor.hold();
            let members = &self.members;
            self.governor.governed_tick(|| members.raft_busy()).await;
        } else {
            self.governor.release();
            tokio::time::sleep(TICK).await;
        }
    }

    /// Runs `fut` as its own task while driving virtual time, and returns its output (a
    /// panic in it is resumed here).
    pub async fn drive<T: Send + 'static>(
        &mut self,
        fut: impl std::future::Future<Output = T> + Send + 'static,
    ) -> T {
        let mut task = tokio::spawn(fut);
        loop {
            if task.is_finished() {
                match (&mut task).await {
                    Ok(v) => return v,
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(e) => panic!("simulator task ended without a result: {e}"),
                }
            }
            self.tick().await;
        }
    }

    async fn start_raft_member(&mut self, id: NodeId) -> Result<(), SimError> {
        let Members::Raft(g) = &self.members else {
            return Ok(());
        };
        let starter = g.starter();
        let member = self.drive(starter.start(id)).await?;
        if let Members::Raft(g) = &mut self.members {
            g.insert(id, member);
        }
        Ok(())
    }

    /// A seeded random stream for the caller's own choices in a scenario (`purpose` separates
    /// streams).
    pub fn rng(&self, purpose: u64) -> SimRng {
        SimRng::new(self.seed, purpose.wrapping_add(0x5CE_4A61))
    }
}
