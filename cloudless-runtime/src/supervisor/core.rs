//! [`Supervisor`]: desired replicas + observed containers + probe results + `now` → actions.

use std::collections::{BTreeMap, BTreeSet};

use cloudless_core::ids::ReplicaId;
use cloudless_core::runtime::{ContainerId, ContainerState, ContainerStatus};

use super::SupervisorConfig;
use super::slot::{Slot, Tracked};
use super::types::{
    Action, DesiredReplica, Outcome, ProbeKind, ProbeRequest, ReplicaRecord, StopReason,
    parse_container_id,
};

/// How long a replica whose stop or remove failed waits before the next try.
const OP_RETRY_MS: u64 = 1_000;

/// The node-local decision core. Pure: no I/O, no clock; `now_ms` is monotonic milliseconds
/// from the driver.
///
/// Until the first [`set_desired`](Self::set_desired) it knows nothing it may act on and emits
/// no action, so an agent that starts without assignments never removes containers it cannot
/// account for.
#[derive(Debug, Clone)]
pub struct Supervisor {
    config: SupervisorConfig,
    desired_known: bool,
    slots: BTreeMap<ReplicaId, Slot>,
    /// Containers of replicas that are not desired, by replica.
    orphans: BTreeMap<ReplicaId, BTreeMap<ContainerId, ContainerStatus>>,
    /// Replicas with a runtime action in flight.
    busy: BTreeSet<ReplicaId>,
    /// Replicas whose last stop/remove failed, and until when they wait.
    holds: BTreeMap<ReplicaId, u64>,
    restored: BTreeMap<ReplicaId, ReplicaRecord>,
    records_changed: bool,
}

impl Supervisor {
    /// A supervisor with nothing desired yet.
    pub fn new(config: SupervisorConfig) -> Self {
        Self {
            config,
            desired_known: false,
            slots: BTreeMap::new(),
            orphans: BTreeMap::new(),
            busy: BTreeSet::new(),
            holds: BTreeMap::new(),
            restored: BTreeMap::new(),
            records_changed: false,
        }
    }

    /// Counters persisted by an earlier run, applied to replicas as they become desired.
    pub fn restore_records(&mut self, records: BTreeMap<ReplicaId, ReplicaRecord>) {
        self.restored = records;
    }

    /// The replicas this node should run now (the complete set).
    pub fn set_desired(&mut self, now_ms: u64, desired: Vec<DesiredReplica>) {
        self.desired_known = true;
        let mut incoming: BTreeMap<ReplicaId, DesiredReplica> =
            desired.into_iter().map(|d| (d.replica, d)).collect();
        let gone: Vec<ReplicaId> = self
            .slots
            .keys()
            .filter(|r| !incoming.contains_key(r))
            .copied()
            .collect();
        for replica in gone {
            if let Some(slot) = self.slots.remove(&replica) {
                let containers = self.orphans.entry(replica).or_default();
                if let Some(t) = slot.current {
                    containers.insert(t.id.clone(), t.status);
                }
                for id in slot.stale {
                    containers
                        .entry(id.clone())
                        .or_insert_with(|| placeholder(id));
                }
                if containers.is_empty() {
                    self.orphans.remove(&replica);
                }
            }
            self.records_changed = true;
        }
        for (replica, d) in std::mem::take(&mut incoming) {
            if let Some(slot) = self.slots.get_mut(&replica) {
                slot.desired = d;
                continue;
            }
            let record = self.restored.remove(&replica).unwrap_or_default();
            self.slots.insert(replica, Slot::new(d, record));
            self.records_changed = true;
            if let Some(containers) = self.orphans.remove(&replica) {
                let list: Vec<ContainerStatus> = containers.into_values().collect();
                self.attach(replica, &list, now_ms);
            }
        }
    }

    /// The runtime's containers now (from `Runtime::list`). Containers whose names are not
    /// replica containers are ignored. Replicas with an action in flight are skipped (the
    /// listing may predate the action's effect).
    pub fn observe(&mut self, now_ms: u64, containers: &[ContainerStatus]) {
        let mut by_replica: BTreeMap<ReplicaId, Vec<ContainerStatus>> = BTreeMap::new();
        for c in containers {
            if let Some((replica, _)) = parse_container_id(&c.id) {
                by_replica.entry(replica).or_default().push(c.clone());
            }
        }
        let slot_ids: Vec<ReplicaId> = self.slots.keys().copied().collect();
        for replica in slot_ids {
            if self.busy.contains(&replica) {
                continue;
            }
            let list = by_replica.remove(&replica).unwrap_or_default();
            self.attach(replica, &list, now_ms);
        }
        self.orphans.retain(|r, _| self.busy.contains(r));
        for (replica, list) in by_replica {
            if self.busy.contains(&replica) {
                continue;
            }
            self.orphans.insert(
                replica,
                list.into_iter().map(|c| (c.id.clone(), c)).collect(),
            );
        }
    }

    /// Reconciles a desired replica's slot with the complete list of its containers.
    fn attach(&mut self, replica: ReplicaId, containers: &[ContainerStatus], now_ms: u64) {
        let cfg = self.config;
        let Some(slot) = self.slots.get_mut(&replica) else {
            return;
        };
        match slot.current.as_ref().map(|t| t.id.clone()) {
            Some(id) => match containers.iter().find(|c| c.id == id) {
                Some(c) => slot.update_current(c.clone(), now_ms, &cfg),
                None => slot.current_vanished(now_ms, &cfg),
            },
            None => {
                // Adopt: the newest running container, else the newest one.
                let keeper = containers
                    .iter()
                    .filter(|c| c.state == ContainerState::Running)
                    .max_by_key(|c| attempt_of(&c.id))
                    .or_else(|| containers.iter().max_by_key(|c| attempt_of(&c.id)));
                if let Some(k) = keeper {
                    let attempt = attempt_of(&k.id);
                    let r = &mut slot.record;
                    r.next_attempt = r.next_attempt.max(attempt.saturating_add(1));
                    r.restarts = r.restarts.max(attempt);
                    slot.restart_at = None;
                    slot.current = Some(Tracked::new(k.clone()));
                    if k.state == ContainerState::Running {
                        slot.arm_probes(now_ms, true);
                    } else {
                        slot.update_current(k.clone(), now_ms, &cfg);
                    }
                    self.records_changed = true;
                }
            }
        }
        let current = slot.current.as_ref().map(|t| t.id.clone());
        slot.stale = containers
            .iter()
            .map(|c| c.id.clone())
            .filter(|id| Some(id) != current.as_ref())
            .collect();
    }

    /// The result of a runtime action for `replica`.
    pub fn handle_outcome(&mut self, now_ms: u64, replica: ReplicaId, outcome: Outcome) {
        self.busy.remove(&replica);
        let cfg = self.config;
        if let Some(slot) = self.slots.get_mut(&replica) {
            match outcome {
                Outcome::Started(status) => {
                    slot.starting = false;
                    slot.transient_failures = 0;
                    slot.message.clear();
                    slot.current = Some(Tracked::new(status.clone()));
                    slot.update_current(status, now_ms, &cfg);
                }
                Outcome::StartFailed {
                    id,
                    reason,
                    transient,
                } => {
                    slot.starting = false;
                    let mut t = Tracked::new(placeholder(id));
                    t.exit_handled = true;
                    slot.current = Some(t);
                    slot.on_start_failed(now_ms, reason, transient, &cfg);
                }
                Outcome::Stopped(status) => {
                    if slot.current.as_ref().is_some_and(|t| t.id == status.id) {
                        slot.update_current(status, now_ms, &cfg);
                    }
                }
                Outcome::Removed(id) => {
                    slot.stale.retain(|s| *s != id);
                    if slot.current.as_ref().is_some_and(|t| t.id == id) {
                        slot.current_vanished(now_ms, &cfg);
                    }
                }
                Outcome::Failed { .. } => {
                    self.holds
                        .insert(replica, now_ms.saturating_add(OP_RETRY_MS));
                }
            }
            self.records_changed = true;
            return;
        }
        let Some(containers) = self.orphans.get_mut(&replica) else {
            return;
        };
        match outcome {
            Outcome::Stopped(status) => {
                containers.insert(status.id.clone(), status);
            }
            Outcome::Removed(id) => {
                containers.remove(&id);
            }
            Outcome::Failed { .. } => {
                self.holds
                    .insert(replica, now_ms.saturating_add(OP_RETRY_MS));
            }
            Outcome::Started(_) | Outcome::StartFailed { .. } => {}
        }
        if containers.is_empty() {
            self.orphans.remove(&replica);
        }
    }

    /// A probe's result. Results for a container that is no longer current are ignored.
    pub fn handle_probe_result(
        &mut self,
        replica: ReplicaId,
        container: &ContainerId,
        kind: ProbeKind,
        success: bool,
    ) {
        let Some(t) = self
            .slots
            .get_mut(&replica)
            .and_then(|s| s.current.as_mut())
            .filter(|t| t.id == *container)
        else {
            return;
        };
        if let Some(p) = t.probes.iter_mut().find(|p| p.kind() == kind) {
            p.record(success);
        }
    }

    /// The actions due at `now_ms`. Runtime actions are emitted at most one at a time per
    /// replica; the next waits for [`handle_outcome`](Self::handle_outcome).
    pub fn poll_actions(&mut self, now_ms: u64) -> Vec<Action> {
        let mut out = Vec::new();
        if !self.desired_known {
            return out;
        }
        self.holds.retain(|_, until| *until > now_ms);
        let grace_ms = self.config.stop_grace_ms;
        for (replica, slot) in &mut self.slots {
            let free = !self.busy.contains(replica) && !self.holds.contains_key(replica);
            if let Some(action) = free
                .then(|| next_runtime_action(slot, now_ms, grace_ms))
                .flatten()
            {
                self.busy.insert(*replica);
                self.records_changed = true;
                out.push(action);
            }
            if let Some(t) = slot.current.as_mut().filter(|t| t.is_running()) {
                for p in t.probes.iter_mut().filter(|p| p.is_due(now_ms)) {
                    p.sent(now_ms);
                    out.push(Action::Probe(ProbeRequest {
                        replica: *replica,
                        container: t.id.clone(),
                        kind: p.kind(),
                        probe: p.probe().clone(),
                        address: t.status.address.clone(),
                    }));
                }
            }
            let status = slot.status();
            if slot.reported.as_ref() != Some(&status) {
                if slot.record.ready != status.ready {
                    slot.record.ready = status.ready;
                    self.records_changed = true;
                }
                slot.reported = Some(status.clone());
                out.push(Action::Report(status));
            }
        }
        for (replica, containers) in &self.orphans {
            if self.busy.contains(replica) || self.holds.contains_key(replica) {
                continue;
            }
            let Some(c) = containers.values().next() else {
                continue;
            };
            let action = if c.state == ContainerState::Running {
                Action::Stop {
                    replica: *replica,
                    id: c.id.clone(),
                    grace_ms,
                    reason: StopReason::Unassigned,
                }
            } else {
                Action::Remove {
                    replica: *replica,
                    id: c.id.clone(),
                }
            };
            self.busy.insert(*replica);
            out.push(action);
        }
        out
    }

    /// When `poll_actions` next has something to do without new input.
    pub fn next_wakeup(&self) -> Option<u64> {
        let mut next: Option<u64> = self.holds.values().copied().min();
        let mut consider = |t: u64| next = Some(next.map_or(t, |n| n.min(t)));
        for (replica, slot) in &self.slots {
            if let Some(t) = slot.current.as_ref().filter(|t| t.is_running()) {
                t.probes
                    .iter()
                    .filter_map(|p| p.next_due())
                    .for_each(&mut consider);
            }
            if !self.busy.contains(replica) && slot.terminal.is_none() {
                slot.restart_at.into_iter().for_each(&mut consider);
            }
        }
        next
    }

    /// Per-replica counters to persist.
    pub fn records(&self) -> BTreeMap<ReplicaId, ReplicaRecord> {
        self.slots.iter().map(|(r, s)| (*r, s.record)).collect()
    }

    /// True (once) if the records changed since the last call.
    pub fn take_records_changed(&mut self) -> bool {
        std::mem::take(&mut self.records_changed)
    }

    /// True if any runtime action is in flight.
    pub fn is_busy(&self) -> bool {
        !self.busy.is_empty()
    }
}

/// The next container operation for a free desired replica, if any (and its bookkeeping).
fn next_runtime_action(slot: &mut Slot, now_ms: u64, grace_ms: u64) -> Option<Action> {
    let replica = slot.desired.replica;
    if let Some(id) = slot.stale.first() {
        return Some(Action::Remove {
            replica,
            id: id.clone(),
        });
    }
    if slot.terminal.is_some() {
        return None;
    }
    if let Some(t) = slot.current.as_mut() {
        if t.is_running() {
            let liveness_failed = t
                .probe(ProbeKind::Liveness)
                .is_some_and(|p| p.passing() == Some(false));
            if liveness_failed && t.stop_reason.is_none() {
                t.stop_reason = Some(StopReason::LivenessFailed);
                return Some(Action::Stop {
                    replica,
                    id: t.id.clone(),
                    grace_ms,
                    reason: StopReason::LivenessFailed,
                });
            }
            return None;
        }
        if !t.exit_handled || slot.restart_at.is_none_or(|at| at > now_ms) {
            return None;
        }
        let old = t.id.clone();
        let spec = begin_attempt(slot);
        return Some(Action::Restart { replica, old, spec });
    }
    if slot.restart_at.is_some_and(|at| at > now_ms) {
        return None;
    }
    let spec = begin_attempt(slot);
    Some(Action::Start { replica, spec })
}

fn begin_attempt(slot: &mut Slot) -> cloudless_core::runtime::ContainerSpec {
    let attempt = slot.record.next_attempt;
    if attempt > 0 {
        slot.record.restarts = slot.record.restarts.saturating_add(1);
    }
    slot.record.next_attempt = attempt.saturating_add(1);
    slot.restart_at = None;
    slot.starting = true;
    slot.desired.container_spec(attempt)
}

fn attempt_of(id: &ContainerId) -> u32 {
    parse_container_id(id).map_or(0, |(_, a)| a)
}

/// A status for a container known only by name (a failed start, a stale attempt).
fn placeholder(id: ContainerId) -> ContainerStatus {
    ContainerStatus {
        id,
        state: ContainerState::Created,
        address: None,
        started_at_ms: None,
        finished_at_ms: None,
        oom_killed: false,
    }
}
