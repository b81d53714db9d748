//! Faults the simulator can inject, and seeded schedules of them.

use std::time::Duration;

use super::link::LinkFaults;
use super::rng::SimRng;

/// A node of the simulation, by role and index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum SimNode {
    /// The `i`-th coordinator.
    Coordinator(usize),
    /// The `i`-th agent.
    Agent(usize),
}

/// One fault (or its repair).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Stop a coordinator (and its consensus member) as a crash would.
    CrashCoordinator(usize),
    /// Start a crashed coordinator again (its raft member from its files).
    RestartCoordinator(usize),
    /// Stop an agent process; its containers keep running.
    CrashAgent(usize),
    /// Power a node off: its agent stops and every container on it dies.
    PowerOffAgent(usize),
    /// Start a crashed or powered-off agent again on the same data dir (it adopts whatever
    /// containers still run).
    RestartAgent(usize),
    /// Cut every node of one side off from every node of the other (both directions; agent ↔
    /// coordinator calls and raft traffic).
    Partition(Vec<SimNode>, Vec<SimNode>),
    /// Remove every partition.
    Heal,
    /// Set message drop/delay on agent ↔ coordinator calls (`LinkFaults::default()` clears).
    Link(LinkFaults),
    /// Kill one running container on an agent's node (the agent should restart it); `pick`
    /// chooses among the running containers in id order, modulo their number.
    KillContainer {
        /// The agent whose node runs the container.
        agent: usize,
        /// Which running container.
        pick: u64,
    },
    /// Crash every coordinator.
    AllCoordinatorsDown,
    /// Restart every crashed coordinator.
    AllCoordinatorsUp,
}

/// A fault at a virtual time since the start of the run.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduledFault {
    /// When.
    pub at: Duration,
    /// What.
    pub fault: Fault,
}

/// Which faults a random schedule may contain.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultMix {
    /// Coordinators in the cluster.
    pub coordinators: usize,
    /// Agents in the cluster.
    pub agents: usize,
    /// Length of the faulty period; everything is repaired by then.
    pub duration: Duration,
    /// Mean quiet time between fault episodes.
    pub mean_gap: Duration,
    /// Longest fault episode.
    pub max_episode: Duration,
    /// Allow crashing a minority of coordinators.
    pub coordinator_crashes: bool,
    /// Allow agent crashes and power-offs.
    pub agent_crashes: bool,
    /// Allow partitions (one node isolated, or a coordinator minority cut off).
    pub partitions: bool,
    /// Allow drop/delay episodes.
    pub message_faults: bool,
    /// Allow container kills.
    pub container_kills: bool,
    /// Allow all-coordinators-down episodes.
    pub total_outages: bool,
}

impl FaultMix {
    /// Every kind of fault, for `coordinators` + `agents` nodes over `duration`.
    pub fn everything(coordinators: usize, agents: usize, duration: Duration) -> Self {
        Self {
            coordinators,
            agents,
            duration,
            mean_gap: Duration::from_secs(10),
            max_episode: Duration::from_secs(20),
            coordinator_crashes: true,
            agent_crashes: true,
            partitions: true,
            message_faults: true,
            container_kills: true,
            total_outages: true,
        }
    }
}

/// A seeded list of faults, sorted by time. Episodes do not overlap, and each one is repaired
/// before the next begins, so the cluster is whole again at the end.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FaultSchedule {
    /// The faults, in time order.
    pub faults: Vec<ScheduledFault>,
}

impl FaultSchedule {
    /// An explicit schedule (sorted by time, stable).
    pub fn new(mut faults: Vec<ScheduledFault>) -> Self {
        faults.sort_by_key(|f| f.at);
        Self { faults }
    }

    /// A random schedule drawn from `seed` under `mix`.
    pub fn random(seed: u64, mix: &FaultMix) -> Self {
        let mut rng = SimRng::new(seed, 0xFA_017);
        let mut kinds: Vec<u8> = Vec::new();
        if mix.coordinator_crashes && mix.coordinators > 1 {
            kinds.push(0);
        }
        if mix.agent_crashes && mix.agents > 0 {
            kinds.extend([1, 2]);
        }
        if mix.partitions && mix.agents + mix.coordinators > 1 {
            kinds.push(3);
        }
        if mix.message_faults {
            kinds.push(4);
        }
        if mix.container_kills && mix.agents > 0 {
            kinds.push(5);
        }
        if mix.total_outages && mix.coordinators > 0 {
            kinds.push(6);
        }
        let mut faults = Vec::new();
        if kinds.is_empty() {
            return Self { faults };
        }
        let gap_ms = u64::try_from(mix.mean_gap.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let episode_ms = u64::try_from(mix.max_episode.as_millis())
            .unwrap_or(u64::MAX)
            .max(1_000);
        let end_ms = u64::try_from(mix.duration.as_millis()).unwrap_or(u64::MAX);
        let mut t = gap_ms / 2 + rng.below(gap_ms);
        let n_agents = u64::try_from(mix.agents).unwrap_or(0);
        let n_coords = u64::try_from(mix.coordinators).unwrap_or(0);
        let pick = |rng: &mut SimRng, n: u64| usize::try_from(rng.below(n)).unwrap_or(0);
        while t < end_ms {
            let len = 1_000 + rng.below(episode_ms - 999);
            let stop = (t + len).min(end_ms);
            let at = Duration::from_millis(t);
            let until = Duration::from_millis(stop);
            let kind = kinds[pick(&mut rng, u64::try_from(kinds.len()).unwrap_or(1))];
            let (start, end) = match kind {
                0 => {
                    let c = pick(&mut rng, n_coords);
                    (
                        Fault::CrashCoordinator(c),
                        Some(Fault::RestartCoordinator(c)),
                    )
                }
                1 => {
                    let a = pick(&mut rng, n_agents);
                    (Fault::CrashAgent(a), Some(Fault::RestartAgent(a)))
                }
                2 => {
                    let a = pick(&mut rng, n_agents);
                    (Fault::PowerOffAgent(a), Some(Fault::RestartAgent(a)))
                }
                3 => {
                    // Isolate one node from every other node.
                    let total = n_agents + n_coords;
                    let chosen = rng.below(total);
                    let node = if chosen < n_coords {
                        SimNode::Coordinator(usize::try_from(chosen).unwrap_or(0))
                    } else {
                        SimNode::Agent(usize::try_from(chosen - n_coords).unwrap_or(0))
                    };
                    let rest: Vec<SimNode> = (0..mix.coordinators)
                        .map(SimNode::Coordinator)
                        .chain((0..mix.agents).map(SimNode::Agent))
                        .filter(|n| *n != node)
                        .collect();
                    (Fault::Partition(vec![node], rest), Some(Fault::Heal))
                }
                4 => {
                    let drop_rate = 0.05 + rng.below(26) as f64 / 100.0;
                    let delay = Duration::from_millis(rng.below(200));
                    let jitter = Duration::from_millis(rng.below(200));
                    (
                        Fault::Link(LinkFaults {
                            drop_rate,
                            delay,
                            jitter,
                        }),
                        Some(Fault::Link(LinkFaults::default())),
                    )
                }
                5 => (
                    Fault::KillContainer {
                        agent: pick(&mut rng, n_agents),
                        pick: rng.next_u64(),
                    },
                    None,
                ),
                _ => (Fault::AllCoordinatorsDown, Some(Fault::AllCoordinatorsUp)),
            };
            faults.push(ScheduledFault { at, fault: start });
            if let Some(end) = end {
                faults.push(ScheduledFault {
                    at: until,
                    fault: end,
                });
            }
            t = stop + gap_ms / 2 + rng.below(gap_ms);
        }
        Self { faults }
    }
}
