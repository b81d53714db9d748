//! `SimLink`: the in-process agent → coordinator path, with the fault plan applied.
//!
//! ```text
//!  agent ──ControlPlane──▶ SimLink(node) ──decide(faults, seeded rng)──▶ coordinator[target]
//!                              │  blocked / coordinator down ─▶ next coordinator
//!                              └─ NotLeader { leader } ─────────▶ the hinted coordinator
//! ```
//!
//! Each link remembers the coordinator its agent currently talks to. A call goes there; if the
//! pair is partitioned or the coordinator is down it moves on to the next coordinator, and a
//! `NotLeader` answer with a hint moves it to the hinted one, so one agent call tries at most
//! every coordinator once plus one hinted retry. Drops and delays are drawn from one seeded
//! stream under the network lock, in call order.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use cloudless_core::ids::NodeId;
use cloudless_core::node::NodeReport;

use super::rng::SimRng;
use crate::control::{
    AssignmentSet, ControlError, ControlPlane, HeartbeatAck, ReplicaReport, StoppedReplica,
};

/// Message-level faults on agent ↔ coordinator calls.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct LinkFaults {
    /// Probability that a call is lost (the caller sees `Unavailable` after the delay).
    pub drop_rate: f64,
    /// Fixed delay added to every call.
    pub delay: Duration,
    /// Extra uniform delay in `0..=jitter` added to every call.
    pub jitter: Duration,
}

/// Counters of the link layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Calls attempted against some coordinator (one agent call may make several).
    pub attempts: u64,
    /// Attempts refused by a partition.
    pub blocked: u64,
    /// Attempts that found the coordinator down.
    pub down: u64,
    /// Calls dropped by the fault plan.
    pub dropped: u64,
    /// `NotLeader` answers followed.
    pub redirects: u64,
}

struct NetState {
    /// Coordinator ids, by index, and their control planes (`None` while crashed).
    coordinators: Vec<(NodeId, Option<Arc<dyn ControlPlane>>)>,
    /// Unordered pairs that cannot talk.
    blocked: BTreeSet<(NodeId, NodeId)>,
    faults: LinkFaults,
    rng: SimRng,
    stats: LinkStats,
}

/// The shared agent ↔ coordinator network of a simulation.
#[derive(Clone)]
pub struct SimNet {
    inner: Arc<Mutex<NetState>>,
}

impl std::fmt::Debug for SimNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.lock();
        f.debug_struct("SimNet")
            .field("coordinators", &s.coordinators.len())
            .field("blocked", &s.blocked.len())
            .field("faults", &s.faults)
            .finish()
    }
}

fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    if a <= b { (a, b) } else { (b, a) }
}

/// What the network does with one attempt.
enum Decision {
    Blocked,
    Down,
    Dropped(Duration),
    Deliver(Arc<dyn ControlPlane>, Duration),
}

impl SimNet {
    /// A network with `coordinators` (ids, all down until [`set_coordinator`](Self::set_coordinator))
    /// whose drop/delay draws follow `seed`.
    pub fn new(coordinators: &[NodeId], seed: u64) -> Self {
        Self {
            inner: Arc::new(Mutex::new(NetState {
                coordinators: coordinators.iter().map(|&id| (id, None)).collect(),
                blocked: BTreeSet::new(),
                faults: LinkFaults::default(),
                rng: SimRng::new(seed, 0x11_4e7),
                stats: LinkStats::default(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, NetState> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Makes coordinator `index` reachable through `control`, or down with `None`.
    pub fn set_coordinator(&self, index: usize, control: Option<Arc<dyn ControlPlane>>) {
        if let Some(slot) = self.lock().coordinators.get_mut(index) {
            slot.1 = control;
        }
    }

    /// Cuts every node of `a` off from every node of `b` (both directions).
    pub fn partition(&self, a: &[NodeId], b: &[NodeId]) {
        let mut s = self.lock();
        for &x in a {
            for &y in b {
                if x != y {
                    s.blocked.insert(pair(x, y));
                }
            }
        }
    }

    /// Removes every partition.
    pub fn heal(&self) {
        self.lock().blocked.clear();
    }

    /// True if `a` and `b` are partitioned.
    pub fn is_blocked(&self, a: NodeId, b: NodeId) -> bool {
        self.lock().blocked.contains(&pair(a, b))
    }

    /// True if any partition is in effect.
    pub fn has_partitions(&self) -> bool {
        !self.lock().blocked.is_empty()
    }

    /// Replaces the message faults.
    pub fn set_faults(&self, faults: LinkFaults) {
        self.lock().faults = faults;
    }

    /// The message faults in effect.
    pub fn faults(&self) -> LinkFaults {
        self.lock().faults
    }

    /// Counters so far.
    pub fn stats(&self) -> LinkStats {
        self.lock().stats
    }

    fn coordinator_count(&self) -> usize {
        self.lock().coordinators.len()
    }

    fn index_of(&self, id: NodeId) -> Option<usize> {
        self.lock().coordinators.iter().position(|(c, _)| *c == id)
    }

    fn decide(&self, from: NodeId, index: usize) -> Decision {
        let mut s = self.lock();
        s.stats.attempts += 1;
        let Some((id, control)) = s.coordinators.get(index).cloned() else {
            return Decision::Down;
        };
        if s.blocked.contains(&pair(from, id)) {
            s.stats.blocked += 1;
            return Decision::Blocked;
        }
        let Some(control) = control else {
            s.stats.down += 1;
            return Decision::Down;
        };
        let faults = s.faults;
        let delay = faults.delay + s.rng.duration_up_to(faults.jitter);
        if s.rng.chance(faults.drop_rate) {
            s.stats.dropped += 1;
            return Decision::Dropped(delay);
        }
        Decision::Deliver(control, delay)
    }

    fn note_redirect(&self) {
        self.lock().stats.redirects += 1;
    }
}

enum Request<'a> {
    Heartbeat(&'a NodeReport),
    Assignments,
    Report(Vec<ReplicaReport>),
    ReportStopped(Vec<StoppedReplica>),
}

enum Response {
    Ack(HeartbeatAck),
    Set(AssignmentSet),
    Done,
}

/// One agent's [`ControlPlane`]: routes its calls to the coordinator it currently targets.
pub struct SimLink {
    node: NodeId,
    net: SimNet,
    target: Mutex<usize>,
}

impl std::fmt::Debug for SimLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimLink")
            .field("node", &self.node)
            .field("target", &self.target())
            .finish()
    }
}

impl SimLink {
    /// The link of agent `node`, first aimed at coordinator `first` (an index).
    pub fn new(node: NodeId, net: SimNet, first: usize) -> Self {
        Self {
            node,
            net,
            target: Mutex::new(first),
        }
    }

    /// The index of the coordinator this link currently targets.
    pub fn target(&self) -> usize {
        *self.target.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set_target(&self, index: usize) {
        *self.target.lock().unwrap_or_else(PoisonError::into_inner) = index;
    }

    async fn call(&self, request: Request<'_>) -> Result<Response, ControlError> {
        let n = self.net.coordinator_count();
        if n == 0 {
            return Err(ControlError::Unavailable("no coordinators".into()));
        }
        let mut last = ControlError::Unavailable("no coordinator reachable".into());
        // Every coordinator once, plus one hinted retry.
        for _ in 0..=n {
            let index = self.target();
            let (control, delay) = match self.net.decide(self.node, index) {
                Decision::Blocked => {
                    last = ControlError::Unavailable(format!(
                        "coordinator #{index} unreachable from {} (partition)",
                        self.node
                    ));
                    self.set_target((index + 1) % n);
                    continue;
                }
                Decision::Down => {
                    last = ControlError::Unavailable(format!("coordinator #{index} is down"));
                    self.set_target((index + 1) % n);
                    continue;
                }
                Decision::Dropped(delay) => {
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await;
                    }
                    return Err(ControlError::Unavailable(format!(
                        "call to coordinator #{index} lost"
                    )));
                }
                Decision::Deliver(control, delay) => (control, delay),
            };
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
            let result = match &request {
                Request::Heartbeat(report) => control
                    .heartbeat(self.node, report)
                    .await
                    .map(Response::Ack),
                Request::Assignments => control.assignments(self.node).await.map(Response::Set),
                Request::Report(reports) => control
                    .report(self.node, reports.clone())
                    .await
                    .map(|()| Response::Done),
                Request::ReportStopped(stopped) => control
                    .report_stopped(self.node, stopped.clone())
                    .await
                    .map(|()| Response::Done),
            };
            match result {
                Err(ControlError::NotLeader { leader }) => {
                    self.net.note_redirect();
                    let next = leader
                        .and_then(|l| self.net.index_of(l))
                        .filter(|&i| i != index)
                        .unwrap_or((index + 1) % n);
                    self.set_target(next);
                    last = ControlError::NotLeader { leader };
                }
                Err(ControlError::Unavailable(reason)) => {
                    // A coordinator that cannot serve now (e.g. no quorum): try another.
                    self.set_target((index + 1) % n);
                    last = ControlError::Unavailable(reason);
                }
                other => return other,
            }
        }
        Err(last)
    }
}

fn unexpected() -> ControlError {
    ControlError::Unavailable("simulator link returned a mismatched response".into())
}

#[async_trait]
impl ControlPlane for SimLink {
    async fn heartbeat(
        &self,
        node: NodeId,
        report: &NodeReport,
    ) -> Result<HeartbeatAck, ControlError> {
        if node != self.node {
            return Err(ControlError::PermissionDenied(format!(
                "the link of {} cannot act for {node}",
                self.node
            )));
        }
        match self.call(Request::Heartbeat(report)).await? {
            Response::Ack(ack) => Ok(ack),
            _ => Err(unexpected()),
        }
    }

    async fn assignments(&self, node: NodeId) -> Result<AssignmentSet, ControlError> {
        if node != self.node {
            return Err(ControlError::PermissionDenied(format!(
                "the link of {} cannot act for {node}",
                self.node
            )));
        }
        match self.call(Request::Assignments).await? {
            Response::Set(set) => Ok(set),
            _ => Err(unexpected()),
        }
    }

    async fn report(&self, node: NodeId, reports: Vec<ReplicaReport>) -> Result<(), ControlError> {
        if node != self.node {
            return Err(ControlError::PermissionDenied(format!(
                "the link of {} cannot act for {node}",
                self.node
            )));
        }
        match self.call(Request::Report(reports)).await? {
            Response::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }

    async fn report_stopped(
        &self,
        node: NodeId,
        stopped: Vec<StoppedReplica>,
    ) -> Result<(), ControlError> {
        if node != self.node {
            return Err(ControlError::PermissionDenied(format!(
                "the link of {} cannot act for {node}",
                self.node
            )));
        }
        match self.call(Request::ReportStopped(stopped)).await? {
            Response::Done => Ok(()),
            _ => Err(unexpected()),
        }
    }
}
