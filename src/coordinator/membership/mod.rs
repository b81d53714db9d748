//! Membership: the failure detector's pure core and the adaptive heartbeat interval.
//!
//! ```text
//!  heartbeat ──observe(node, now)──▶ view = Ready, last_heard = now
//!  tick(now) ──▶ silence ≥ suspect_after·k ─▶ Suspect
//!            └─▶ silence ≥ down_after·k    ─▶ Down (one per throttled_down_interval while
//!                                                    a mass silence is going on)
//!            ──▶ changes = view ≠ committed  (the driver commits them as one SetLiveness)
//!  k = adaptive_interval(nodes) / heartbeat_interval
//! ```
//!
//! Timers live only here, in the leader's memory, measured on a monotonic clock the caller
//! passes in (`now` as time since an arbitrary origin). Nothing here reads a clock, sleeps or
//! does I/O, so every decision is tested by asserting exact outputs.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use cloudless_core::ids::NodeId;
use cloudless_core::node::Liveness;

use super::config::CoordinatorConfig;

/// The heartbeat interval that keeps a leader with `nodes` nodes within `budget_per_sec`
/// heartbeats per second: `max(base, nodes / budget_per_sec)`, rounded up to the millisecond.
///
/// With the defaults (500 ms, 10 000/s) the interval stays 500 ms up to 5 000 nodes and grows
/// linearly after that (10 000 nodes: 1 s; 20 000 nodes: 2 s).
pub fn adaptive_interval(base: Duration, budget_per_sec: u32, nodes: usize) -> Duration {
    let budget = u128::from(budget_per_sec.max(1));
    let nodes = nodes as u128;
    let needed_ms = (nodes * 1000).div_ceil(budget);
    let needed = Duration::from_millis(u64::try_from(needed_ms).unwrap_or(u64::MAX));
    base.max(needed)
}

/// One node as the detector tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Track {
    /// When its last heartbeat arrived (or its grace window started).
    last_heard: Duration,
    /// Liveness as last committed in the cluster state.
    committed: Liveness,
    /// Liveness as the detector now believes it.
    view: Liveness,
}

/// What one [`FailureDetector::tick`] decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TickOutcome {
    /// Liveness changes to commit (view differs from the committed value), by node id.
    pub changes: Vec<(NodeId, Liveness)>,
    /// Set when a mass silence started this tick: `(silent nodes, live nodes)`.
    pub throttle_started: Option<(usize, usize)>,
    /// True when a mass silence ended this tick.
    pub throttle_ended: bool,
}

/// Timeout-with-suspicion failure detector with eviction throttling.
#[derive(Debug, Clone)]
pub struct FailureDetector {
    heartbeat_interval: Duration,
    suspect_after: Duration,
    down_after: Duration,
    budget_per_sec: u32,
    mass_silence_percent: u32,
    mass_silence_min_nodes: u32,
    throttled_down_interval: Duration,
    nodes: BTreeMap<NodeId, Track>,
    /// When the last throttled Down happened (or the throttle started), while throttled.
    throttle: Option<Duration>,
    /// Nodes the throttle let go Down during the current mass silence: they still count as
    /// silent members of it, so the share does not dip below the threshold just because the
    /// first evictions shrank the live population.
    episode: BTreeSet<NodeId>,
}

impl FailureDetector {
    /// An empty detector with the timeouts of `config`.
    pub fn new(config: &CoordinatorConfig) -> Self {
        Self {
            heartbeat_interval: config.heartbeat_interval,
            suspect_after: config.suspect_after,
            down_after: config.down_after,
            budget_per_sec: config.heartbeat_budget_per_sec,
            mass_silence_percent: config.mass_silence_percent,
            mass_silence_min_nodes: config.mass_silence_min_nodes,
            throttled_down_interval: config.throttled_down_interval,
            nodes: BTreeMap::new(),
            throttle: None,
            episode: BTreeSet::new(),
        }
    }

    /// Starts over, as a new leader does: every node of `committed` gets a fresh grace window
    /// starting `now`, and its view is its committed liveness.
    pub fn reset(
        &mut self,
        now: Duration,
        committed: impl IntoIterator<Item = (NodeId, Liveness)>,
    ) {
        self.throttle = None;
        self.nodes = committed
            .into_iter()
            .map(|(id, liveness)| {
                (
                    id,
                    Track {
                        last_heard: now,
                        committed: liveness,
                        view: liveness,
                    },
                )
            })
            .collect();
    }

    /// Follows the cluster state: `committed` is every node with its committed liveness. New
    /// nodes get a grace window from `now`; nodes no longer there are forgotten. A node whose
    /// committed liveness changed elsewhere (a re-registration makes it Joining) keeps the
    /// detector's view only if that view is Ready (it heartbeated since).
    pub fn sync(&mut self, now: Duration, committed: impl IntoIterator<Item = (NodeId, Liveness)>) {
        let mut next = BTreeMap::new();
        for (id, liveness) in committed {
            let track = match self.nodes.get(&id) {
                Some(t) => Track {
                    last_heard: t.last_heard,
                    committed: liveness,
                    view: if t.committed == liveness || t.view == Liveness::Ready {
                        t.view
                    } else {
                        liveness
                    },
                },
                None => Track {
                    last_heard: now,
                    committed: liveness,
                    view: liveness,
                },
            };
            next.insert(id, track);
        }
        self.nodes = next;
    }

    /// A heartbeat from `node` at `now`. Returns its liveness as the detector now sees it
    /// (Ready), or `None` for a node it does not track (not in the cluster state).
    pub fn observe(&mut self, node: NodeId, now: Duration) -> Option<Liveness> {
        let t = self.nodes.get_mut(&node)?;
        t.last_heard = t.last_heard.max(now);
        t.view = Liveness::Ready;
        Some(t.view)
    }

    /// The detector's view of `node`.
    pub fn view(&self, node: NodeId) -> Option<Liveness> {
        self.nodes.get(&node).map(|t| t.view)
    }

    /// Nodes tracked.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True if no node is tracked.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// True while a mass silence throttles Down transitions.
    pub fn throttled(&self) -> bool {
        self.throttle.is_some()
    }

    /// The heartbeat interval to hand to agents now.
    pub fn interval(&self) -> Duration {
        adaptive_interval(
            self.heartbeat_interval,
            self.budget_per_sec,
            self.nodes.len(),
        )
    }

    /// The suspect and down timeouts now: the configured ones scaled by how much the
    /// adaptive interval exceeds the base interval.
    pub fn timeouts(&self) -> (Duration, Duration) {
        let interval = self.interval();
        let scale = |d: Duration| {
            if interval <= self.heartbeat_interval {
                d
            } else {
                let num = d.as_nanos() * interval.as_nanos();
                let den = self.heartbeat_interval.as_nanos().max(1);
                Duration::from_nanos(u64::try_from(num / den).unwrap_or(u64::MAX))
            }
        };
        (scale(self.suspect_after), scale(self.down_after))
    }

    /// Moves silent nodes to Suspect and Down and returns the changes to commit.
    ///
    /// Only Ready and Suspect nodes have timers: a Joining node has not heartbeated yet, a
    /// Down or Left one has nothing left to lose. A mass silence is more than
    /// `mass_silence_percent` of the Ready and Suspect nodes (and at least
    /// `mass_silence_min_nodes`) silent past the suspect timeout: that smells of a problem on
    /// the coordinator's side, so the silent nodes go Suspect (their replicas keep counting)
    /// and only one per `throttled_down_interval` goes Down, longest-silent first; the first
    /// such Down comes one interval after the silence began. Nodes the throttle took Down keep
    /// counting as part of the mass silence until they heartbeat again; the throttle ends when
    /// the silent share falls to the threshold or no silent node is left to take Down.
    pub fn tick(&mut self, now: Duration) -> TickOutcome {
        let (suspect_after, down_after) = self.timeouts();
        let mut population = 0usize;
        let mut silent = 0usize;
        // (last_heard, id) of nodes due to go Down, so the longest-silent sorts first.
        let mut down_due: Vec<(Duration, NodeId)> = Vec::new();
        for (id, t) in &self.nodes {
            if !matches!(t.view, Liveness::Ready | Liveness::Suspect) {
                continue;
            }
            population += 1;
            let silence = now.saturating_sub(t.last_heard);
            if silence >= suspect_after {
                silent += 1;
            }
            if silence >= down_after {
                down_due.push((t.last_heard, *id));
            }
        }
        let nodes = &self.nodes;
        self.episode
            .retain(|id| nodes.get(id).is_some_and(|t| t.view == Liveness::Down));
        let evicted = self.episode.len();
        let (silent_all, population_all) = (silent + evicted, population + evicted);
        let min = usize::try_from(self.mass_silence_min_nodes).unwrap_or(usize::MAX);
        let percent = usize::try_from(self.mass_silence_percent).unwrap_or(100);
        let mass = silent_all >= min
            && silent_all.saturating_mul(100) > percent.saturating_mul(population_all);
        let mut out = TickOutcome::default();
        match (mass && silent > 0, self.throttle) {
            (true, None) => {
                self.throttle = Some(now);
                out.throttle_started = Some((silent_all, population_all));
            }
            (false, Some(_)) => {
                self.throttle = None;
                self.episode.clear();
                out.throttle_ended = true;
            }
            _ => {}
        }
        down_due.sort();
        let mut allowed: Vec<NodeId> = Vec::new();
        match self.throttle {
            None => allowed.extend(down_due.iter().map(|(_, id)| *id)),
            Some(last) => {
                if let Some((_, first)) = down_due.first()
                    && now.saturating_sub(last) >= self.throttled_down_interval
                {
                    allowed.push(*first);
                    self.episode.insert(*first);
                    self.throttle = Some(now);
                }
            }
        }
        for (id, t) in self.nodes.iter_mut() {
            if !matches!(t.view, Liveness::Ready | Liveness::Suspect) {
                continue;
            }
            let silence = now.saturating_sub(t.last_heard);
            if allowed.contains(id) {
                t.view = Liveness::Down;
            } else if silence >= suspect_after {
                t.view = Liveness::Suspect;
            }
        }
        out.changes = self.pending();
        out
    }

    /// Changes not yet committed: nodes whose view differs from the committed liveness.
    pub fn pending(&self) -> Vec<(NodeId, Liveness)> {
        self.nodes
            .iter()
            .filter(|(_, t)| t.view != t.committed)
            .map(|(id, t)| (*id, t.view))
            .collect()
    }

    /// Records that `changes` were committed.
    pub fn confirm(&mut self, changes: &[(NodeId, Liveness)]) {
        for (id, liveness) in changes {
            if let Some(t) = self.nodes.get_mut(id) {
                t.committed = *liveness;
            }
        }
    }
}

#[cfg(test)]
mod tests;
