//! Invariant checks that run after every simulation step.
//!
//! The checker sees the ledger (the freshest state any running consensus member has applied),
//! the containers actually running in every node's `FakeRuntime`, the readiness the live agents
//! report, and whether a fault is in effect. It keeps what it needs across steps: which
//! workload each replica id belonged to (containers can outlive their ledger entry), when each
//! workload was first acknowledged, when its spec last changed, and rollouts in progress.
//!
//! | invariant | when | what |
//! |---|---|---|
//! | [`Invariant::OverCommit`] | every step | per node, reservations of live ledger replicas ≤ allocatable |
//! | [`Invariant::Counters`] | every step | per workload, `ready`/`available` ≤ ledger replicas Running on Ready/Suspect nodes |
//! | [`Invariant::OverCommit`] | settled | per node, requests of running containers ≤ allocatable |
//! | [`Invariant::Duplicates`] | settled | per workload, running containers ≤ replicas; per replica ≤ 1 |
//! | [`Invariant::MinAvailable`] | rollout, no fault | available replicas ≥ `minAvailable` |
//! | [`Invariant::Placement`] | settled for `placement_deadline`, capacity exists | every replica of the current generation runs |
//!
//! "Settled" means no fault has been in effect and no workload spec has changed for
//! [`InvariantConfig::settle`]: the window the system gets to converge.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::Duration;

use cloudless_core::ids::{Generation, NodeId, ReplicaId, WorkloadId};
use cloudless_core::node::Liveness;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::resources::Resources;
use cloudless_core::state::ClusterState;

/// The invariants the simulator checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// More live replicas of a workload than its count after convergence (or one replica
    /// running twice).
    Duplicates,
    /// A node's reservations or running containers exceed its allocatable resources.
    OverCommit,
    /// A rollout took a workload below `minAvailable` while capacity existed.
    MinAvailable,
    /// An acknowledged workload was not fully placed although capacity existed.
    Placement,
    /// A workload's `ready` or `available` counter exceeds its ledger replicas that are
    /// Running on a Ready or Suspect node (a replica on a Down, removed or revoked node, or
    /// not running, counted as ready).
    Counters,
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Invariant::Duplicates => "no-duplicates",
            Invariant::OverCommit => "no-over-commit",
            Invariant::MinAvailable => "min-available",
            Invariant::Placement => "eventual-placement",
            Invariant::Counters => "counters-match-liveness",
        })
    }
}

/// A broken invariant, with what is needed to replay it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// The simulation's seed.
    pub seed: u64,
    /// The step after which the check failed.
    pub step: u64,
    /// Virtual time since the simulation started.
    pub at: Duration,
    /// Which invariant.
    pub invariant: Invariant,
    /// What exactly was wrong.
    pub detail: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invariant {} violated (seed {}, step {}, t={:.1}s): {}",
            self.invariant,
            self.seed,
            self.step,
            self.at.as_secs_f64(),
            self.detail
        )
    }
}

impl std::error::Error for Violation {}

/// Which invariants run, and the windows they allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvariantConfig {
    /// Checked invariants (all by default).
    pub enabled: BTreeSet<Invariant>,
    /// How long after the last fault or spec change the system gets to converge before the
    /// duplicate and running-over-commit checks apply.
    pub settle: Duration,
    /// How long after acknowledgement (and after the last fault) every replica must run when
    /// capacity exists.
    pub placement_deadline: Duration,
}

impl Default for InvariantConfig {
    fn default() -> Self {
        Self {
            enabled: BTreeSet::from([
                Invariant::Duplicates,
                Invariant::OverCommit,
                Invariant::MinAvailable,
                Invariant::Placement,
                Invariant::Counters,
            ]),
            settle: Duration::from_secs(30),
            placement_deadline: Duration::from_secs(60),
        }
    }
}

/// A container found running in a node's runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunningContainer {
    /// The node whose runtime runs it.
    pub node: NodeId,
    /// The replica it belongs to.
    pub replica: ReplicaId,
    /// The attempt number.
    pub attempt: u32,
    /// Its workload, when the simulator has seen the replica in the ledger.
    pub workload: Option<WorkloadId>,
}

/// What the checker sees after one step.
#[derive(Debug, Clone)]
pub struct Observation<'a> {
    /// Step number.
    pub step: u64,
    /// Virtual time since the start.
    pub at: Duration,
    /// The ledger, if any consensus member runs.
    pub state: Option<&'a ClusterState>,
    /// Every running container on every node.
    pub running: &'a [RunningContainer],
    /// Replicas the live agents report ready.
    pub ready: &'a BTreeSet<ReplicaId>,
    /// Nodes whose agent runs and is reachable (placement capacity is counted on these).
    pub up_nodes: &'a BTreeSet<NodeId>,
    /// True while any fault is in effect (a crashed or isolated node, a partition, drops).
    pub fault_active: bool,
    /// When the last fault began or ended.
    pub last_fault_change: Duration,
}

#[derive(Debug, Clone, Copy)]
struct ReplicaInfo {
    workload: WorkloadId,
    generation: Generation,
    resources: Resources,
}

#[derive(Debug, Clone, Copy)]
struct WorkloadSeen {
    acknowledged: Duration,
    generation: Generation,
    replicas: u32,
    changed: Duration,
}

#[derive(Debug, Clone, Copy)]
struct RolloutWatch {
    /// True if the rollout began with enough available replicas and no fault.
    checked: bool,
}

/// The continuous checker.
#[derive(Debug, Clone)]
pub struct Checker {
    seed: u64,
    config: InvariantConfig,
    replicas: BTreeMap<ReplicaId, ReplicaInfo>,
    workloads: BTreeMap<WorkloadId, WorkloadSeen>,
    rollouts: BTreeMap<WorkloadId, RolloutWatch>,
    last_spec_change: Duration,
    checks: u64,
}

fn add(a: &Resources, b: &Resources) -> Resources {
    a.checked_add(b).unwrap_or(Resources {
        cpu_millis: u64::MAX,
        memory_mib: u64::MAX,
        storage_gib: u64::MAX,
        storage_iops: a.storage_iops.max(b.storage_iops),
        egress_mbps: u64::MAX,
        gpus: u32::MAX,
    })
}

impl Checker {
    /// A checker for the simulation with `seed`.
    pub fn new(seed: u64, config: InvariantConfig) -> Self {
        Self {
            seed,
            config,
            replicas: BTreeMap::new(),
            workloads: BTreeMap::new(),
            rollouts: BTreeMap::new(),
            last_spec_change: Duration::ZERO,
            checks: 0,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &InvariantConfig {
        &self.config
    }

    /// How many observations were checked.
    pub fn checks(&self) -> u64 {
        self.checks
    }

    fn on(&self, i: Invariant) -> bool {
        self.config.enabled.contains(&i)
    }

    fn violation(&self, obs: &Observation<'_>, invariant: Invariant, detail: String) -> Violation {
        Violation {
            seed: self.seed,
            step: obs.step,
            at: obs.at,
            invariant,
            detail,
        }
    }

    /// True if no fault and no spec change happened for the settle window.
    fn settled(&self, obs: &Observation<'_>, window: Duration) -> bool {
        !obs.fault_active
            && obs.at.saturating_sub(obs.last_fault_change) >= window
            && obs.at.saturating_sub(self.last_spec_change) >= window
    }

    /// Checks one observation; the first broken invariant is returned.
    pub fn check(&mut self, obs: &Observation<'_>) -> Result<(), Violation> {
        self.checks += 1;
        let Some(state) = obs.state else {
            return Ok(());
        };
        self.learn(obs, state);
        if self.on(Invariant::OverCommit) {
            self.ledger_over_commit(obs, state)?;
        }
        if self.on(Invariant::Counters) {
            self.counters(obs, state)?;
        }
        let settled = self.settled(obs, self.config.settle);
        if settled && self.on(Invariant::OverCommit) {
            self.running_over_commit(obs, state)?;
        }
        if settled && self.on(Invariant::Duplicates) {
            self.duplicates(obs, state)?;
        }
        if self.on(Invariant::MinAvailable) {
            self.min_available(obs, state)?;
        }
        if self.on(Invariant::Placement) && self.settled(obs, self.config.placement_deadline) {
            self.placement(obs, state)?;
        }
        Ok(())
    }

    /// Remembers replica → workload (containers outlive ledger entries) and spec changes.
    fn learn(&mut self, obs: &Observation<'_>, state: &ClusterState) {
        for r in state.replicas.values() {
            self.replicas.insert(
                r.id,
                ReplicaInfo {
                    workload: r.workload,
                    generation: r.generation,
                    resources: r.resources,
                },
            );
        }
        for w in state.workloads.values() {
            let available = self.available(obs, w.id);
            match self.workloads.get_mut(&w.id) {
                None => {
                    self.workloads.insert(
                        w.id,
                        WorkloadSeen {
                            acknowledged: obs.at,
                            generation: w.generation,
                            replicas: w.spec.replicas,
                            changed: obs.at,
                        },
                    );
                    self.last_spec_change = obs.at;
                }
                Some(seen) => {
                    if seen.generation != w.generation || seen.replicas != w.spec.replicas {
                        if seen.generation != w.generation {
                            // A rollout starts; it is checked only if it begins without a
                            // fault and with the workload available.
                            let checked =
                                !obs.fault_active && available >= w.spec.effective_min_available();
                            self.rollouts.insert(w.id, RolloutWatch { checked });
                        }
                        seen.generation = w.generation;
                        seen.replicas = w.spec.replicas;
                        seen.changed = obs.at;
                        self.last_spec_change = obs.at;
                    }
                }
            }
        }
        let gone: Vec<WorkloadId> = self
            .workloads
            .keys()
            .filter(|id| !state.workloads.contains_key(id))
            .copied()
            .collect();
        for id in gone {
            self.workloads.remove(&id);
            self.rollouts.remove(&id);
            self.last_spec_change = obs.at;
        }
    }

    fn workload_of(&self, replica: ReplicaId) -> Option<WorkloadId> {
        self.replicas.get(&replica).map(|i| i.workload)
    }

    /// Running containers of `workload` that count as available (ready when their agent
    /// reports; running otherwise).
    fn available(&self, obs: &Observation<'_>, workload: WorkloadId) -> u32 {
        let replicas: BTreeSet<ReplicaId> = obs
            .running
            .iter()
            .filter(|c| self.workload_of(c.replica) == Some(workload))
            .filter(|c| obs.ready.contains(&c.replica))
            .map(|c| c.replica)
            .collect();
        u32::try_from(replicas.len()).unwrap_or(u32::MAX)
    }

    fn ledger_over_commit(
        &self,
        obs: &Observation<'_>,
        state: &ClusterState,
    ) -> Result<(), Violation> {
        let mut used: BTreeMap<NodeId, Resources> = BTreeMap::new();
        for r in state.replicas.values().filter(|r| r.holds_reservation()) {
            let e = used.entry(r.node).or_default();
            *e = add(e, &r.resources);
        }
        for (node, used) in used {
            let Some(n) = state.nodes.get(&node) else {
                return Err(self.violation(
                    obs,
                    Invariant::OverCommit,
                    format!("live replicas reserve {used:?} on unknown node {node}"),
                ));
            };
            let short = n.report.allocatable.shortfalls(&used);
            if !short.is_empty() {
                return Err(self.violation(
                    obs,
                    Invariant::OverCommit,
                    format!(
                        "ledger reserves {used:?} on {node}, allocatable {:?} (short in {short:?})",
                        n.report.allocatable
                    ),
                ));
            }
        }
        Ok(())
    }

    /// `ready` ≤ replicas Running (of any generation) and `available` ≤ replicas Running of the
    /// current generation, both counted only on Ready or Suspect nodes: the rule the state
    /// machine keeps the counters by, checked from the outside.
    fn counters(&self, obs: &Observation<'_>, state: &ClusterState) -> Result<(), Violation> {
        for w in state.workloads.values() {
            let (mut running, mut current) = (0u32, 0u32);
            for r in state.replicas_of(w.id) {
                let live = state
                    .nodes
                    .get(&r.node)
                    .is_some_and(|n| matches!(n.liveness, Liveness::Ready | Liveness::Suspect));
                if live && r.phase == ReplicaPhase::Running {
                    running = running.saturating_add(1);
                    if r.generation == w.generation {
                        current = current.saturating_add(1);
                    }
                }
            }
            let s = &w.status;
            if s.ready > running || s.available > current {
                return Err(self.violation(
                    obs,
                    Invariant::Counters,
                    format!(
                        "workload {} ({}/{}) counts {} ready and {} available, but only {running} replicas run on Ready/Suspect nodes ({current} of generation {})",
                        w.id, w.namespace, w.name, s.ready, s.available, w.generation
                    ),
                ));
            }
        }
        Ok(())
    }

    fn running_over_commit(
        &self,
        obs: &Observation<'_>,
        state: &ClusterState,
    ) -> Result<(), Violation> {
        let mut used: BTreeMap<NodeId, Resources> = BTreeMap::new();
        for c in obs.running {
            if let Some(info) = self.replicas.get(&c.replica) {
                let e = used.entry(c.node).or_default();
                *e = add(e, &info.resources);
            }
        }
        for (node, used) in used {
            if let Some(n) = state.nodes.get(&node) {
                let short = n.report.allocatable.shortfalls(&used);
                if !short.is_empty() {
                    return Err(self.violation(
                        obs,
                        Invariant::OverCommit,
                        format!(
                            "containers running on {node} request {used:?}, allocatable {:?} (short in {short:?})",
                            n.report.allocatable
                        ),
                    ));
                }
            }
        }
        Ok(())
    }

    fn duplicates(&self, obs: &Observation<'_>, state: &ClusterState) -> Result<(), Violation> {
        let mut per_replica: BTreeMap<ReplicaId, Vec<NodeId>> = BTreeMap::new();
        for c in obs.running {
            per_replica.entry(c.replica).or_default().push(c.node);
        }
        if let Some((replica, nodes)) = per_replica.iter().find(|(_, n)| n.len() > 1) {
            return Err(self.violation(
                obs,
                Invariant::Duplicates,
                format!(
                    "replica {replica} runs in {} containers on {nodes:?}",
                    nodes.len()
                ),
            ));
        }
        let mut per_workload: BTreeMap<WorkloadId, Vec<(ReplicaId, NodeId)>> = BTreeMap::new();
        for (replica, nodes) in &per_replica {
            if let (Some(w), Some(node)) = (self.workload_of(*replica), nodes.first()) {
                per_workload.entry(w).or_default().push((*replica, *node));
            }
        }
        for (w, running) in per_workload {
            let want = state.workloads.get(&w).map_or(0, |x| x.spec.replicas);
            if u32::try_from(running.len()).unwrap_or(u32::MAX) > want {
                return Err(self.violation(
                    obs,
                    Invariant::Duplicates,
                    format!(
                        "workload {w} wants {want} replicas but {} run, {} after the last change: {running:?}",
                        running.len(),
                        fmt_secs(self.config.settle)
                    ),
                ));
            }
        }
        Ok(())
    }

    fn min_available(
        &mut self,
        obs: &Observation<'_>,
        state: &ClusterState,
    ) -> Result<(), Violation> {
        let ids: Vec<WorkloadId> = self.rollouts.keys().copied().collect();
        for id in ids {
            let Some(w) = state.workloads.get(&id) else {
                self.rollouts.remove(&id);
                continue;
            };
            let done = {
                let live: Vec<_> = state
                    .replicas_of(id)
                    .filter(|r| r.holds_reservation())
                    .collect();
                u32::try_from(live.len()).unwrap_or(u32::MAX) == w.spec.replicas
                    && live.iter().all(|r| r.generation == w.generation && r.ready)
            };
            if done {
                self.rollouts.remove(&id);
                continue;
            }
            if obs.fault_active {
                // Capacity may be gone; this rollout is no longer held to minAvailable.
                if let Some(r) = self.rollouts.get_mut(&id) {
                    r.checked = false;
                }
                continue;
            }
            let checked = self.rollouts.get(&id).is_some_and(|r| r.checked);
            let min = w.spec.effective_min_available();
            let available = self.available(obs, id);
            if checked && available < min {
                return Err(self.violation(
                    obs,
                    Invariant::MinAvailable,
                    format!(
                        "rollout of workload {id} to generation {} has {available} available replicas, minAvailable {min}",
                        w.generation
                    ),
                ));
            }
        }
        Ok(())
    }

    /// True if the desired replicas of every workload fit on the up nodes' allocatable
    /// resources (first-fit decreasing; a sufficient test, blind to spread and affinity).
    fn capacity_exists(&self, obs: &Observation<'_>, state: &ClusterState) -> bool {
        let mut free: Vec<Resources> = state
            .nodes
            .values()
            .filter(|n| obs.up_nodes.contains(&n.id))
            .map(|n| n.report.allocatable)
            .collect();
        let mut wanted: Vec<Resources> = state
            .workloads
            .values()
            .flat_map(|w| {
                let r = w.spec.resources.requests.to_resources();
                std::iter::repeat_n(r, usize::try_from(w.spec.replicas).unwrap_or(0))
            })
            .collect();
        wanted.sort_by_key(|r| std::cmp::Reverse((r.cpu_millis, r.memory_mib)));
        for r in wanted {
            match free.iter_mut().find(|f| f.fits(&r)) {
                Some(f) => *f = f.saturating_sub(&r),
                None => return false,
            }
        }
        true
    }

    fn placement(&self, obs: &Observation<'_>, state: &ClusterState) -> Result<(), Violation> {
        if !self.capacity_exists(obs, state) {
            return Ok(());
        }
        for w in state.workloads.values() {
            let Some(seen) = self.workloads.get(&w.id) else {
                continue;
            };
            if obs.at.saturating_sub(seen.acknowledged) < self.config.placement_deadline
                || obs.at.saturating_sub(seen.changed) < self.config.placement_deadline
            {
                continue;
            }
            let running: BTreeSet<ReplicaId> = obs
                .running
                .iter()
                .filter(|c| {
                    self.replicas
                        .get(&c.replica)
                        .is_some_and(|i| i.workload == w.id && i.generation == w.generation)
                })
                .map(|c| c.replica)
                .collect();
            if u32::try_from(running.len()).unwrap_or(u32::MAX) < w.spec.replicas {
                return Err(self.violation(
                    obs,
                    Invariant::Placement,
                    format!(
                        "workload {} ({}/{}) has {} of {} replicas of generation {} running {} after acknowledgement, and capacity exists",
                        w.id,
                        w.namespace,
                        w.name,
                        running.len(),
                        w.spec.replicas,
                        w.generation,
                        fmt_secs(obs.at.saturating_sub(seen.acknowledged))
                    ),
                ));
            }
        }
        Ok(())
    }
}

fn fmt_secs(d: Duration) -> String {
    format!("{:.1}s", d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::time::Duration;

    use cloudless_core::ids::{NodeName, ReplicaId, WorkloadId};
    use cloudless_core::node::{Liveness, NodeReport, Platform};
    use cloudless_core::replica::ReplicaPhase;
    use cloudless_core::resources::Resources;
    use cloudless_core::state::{
        Assignment, ClusterState, Command, CommandEnvelope, CommandResult, apply,
    };
    use cloudless_core::workload::WorkloadSpec;

    use super::{Checker, Invariant, InvariantConfig, Observation};

    fn run(state: &mut ClusterState, command: Command) -> CommandResult {
        match apply(state, &CommandEnvelope::new(1, command)) {
            Ok(a) => a.result,
            Err(e) => panic!("command refused: {e}"),
        }
    }

    /// One Ready node running one ready replica of a one-replica workload.
    fn one_ready_replica() -> (ClusterState, WorkloadId) {
        let mut state = ClusterState::new();
        let r = Resources {
            cpu_millis: 1000,
            memory_mib: 1000,
            ..Resources::ZERO
        };
        let report = NodeReport {
            platform: Platform::linux_amd64(),
            region: "eu".into(),
            zone: "z1".into(),
            labels: Default::default(),
            capacity: r,
            allocatable: r,
            power: Default::default(),
            reliability: Default::default(),
        };
        let name = NodeName::new("a").unwrap_or_else(|e| panic!("{e}"));
        let CommandResult::NodeRegistered { node } =
            run(&mut state, Command::RegisterNode { name, report })
        else {
            panic!("no node");
        };
        run(
            &mut state,
            Command::SetLiveness {
                changes: vec![(node, Liveness::Ready)],
            },
        );
        let CommandResult::WorkloadCreated { workload } = run(
            &mut state,
            Command::CreateWorkload {
                namespace: "default".into(),
                name: "web".into(),
                labels: Default::default(),
                spec: WorkloadSpec::new("web:1"),
            },
        ) else {
            panic!("no workload");
        };
        let generation = state.workloads[&workload].generation;
        run(
            &mut state,
            Command::AssignReplicas {
                workload,
                generation,
                assignments: vec![Assignment {
                    node,
                    resources: Resources {
                        cpu_millis: 1,
                        memory_mib: 1,
                        ..Resources::ZERO
                    },
                }],
            },
        );
        run(
            &mut state,
            Command::UpdateReplica {
                replica: ReplicaId(1),
                phase: ReplicaPhase::Running,
                ready: true,
                restarts: 0,
                address: None,
                message: String::new(),
            },
        );
        (state, workload)
    }

    fn check(state: &ClusterState) -> Result<(), super::Violation> {
        let config = InvariantConfig {
            enabled: BTreeSet::from([Invariant::Counters]),
            ..InvariantConfig::default()
        };
        let (ready, up) = (BTreeSet::new(), BTreeSet::new());
        Checker::new(7, config).check(&Observation {
            step: 1,
            at: Duration::from_secs(1),
            state: Some(state),
            running: &[],
            ready: &ready,
            up_nodes: &up,
            fault_active: false,
            last_fault_change: Duration::ZERO,
        })
    }

    #[test]
    fn counters_follow_node_liveness_and_a_miscount_is_a_violation() {
        let (mut state, workload) = one_ready_replica();
        assert_eq!(state.workloads[&workload].status.available, 1);
        assert_eq!(check(&state), Ok(()));
        // The node goes Down: the state machine recounts, the invariant holds.
        let node = state.replicas[&ReplicaId(1)].node;
        run(
            &mut state,
            Command::SetLiveness {
                changes: vec![(node, Liveness::Down)],
            },
        );
        assert_eq!(state.workloads[&workload].status.available, 0);
        assert_eq!(check(&state), Ok(()));
        // A counter that still included the Down node's replica is caught.
        let mut stale = state.clone();
        if let Some(w) = stale.workloads.get_mut(&workload) {
            w.status.ready = 1;
            w.status.available = 1;
        }
        let violation = check(&stale).err().map(|v| v.invariant);
        assert_eq!(violation, Some(Invariant::Counters));
    }
}
