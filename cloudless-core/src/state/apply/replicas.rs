//! The replica ledger: assignment with the apply-time fit check, status reports, removal, and
//! the bookkeeping that keeps `state.reserved` and the workload counters equal to the ledger.

use std::collections::{BTreeMap, BTreeSet};

use super::{ApplyError, ClusterState, CommandResult, Ctx, Touched, workload_not_found};
use crate::event::{EventCategory, Severity};
use crate::ids::{Generation, NodeId, ReplicaId, WorkloadId};
use crate::node::Liveness;
use crate::replica::{Replica, ReplicaPhase};
use crate::resources::Resources;
use crate::state::{Assignment, HOST_PORT_CHECK_SINCE, ObjectKind};
use crate::workload::{Workload, WorkloadStatus};

/// Longest replica status message kept; longer ones are cut (an agent's report is never
/// refused for being chatty).
const MAX_MESSAGE_LEN: usize = 1024;
/// Longest container address accepted.
const MAX_ADDRESS_LEN: usize = 256;

/// `workload/<namespace>/<name>`, the subject of workload events.
pub(super) fn workload_subject(w: &Workload) -> String {
    format!("workload/{}/{}", w.namespace, w.name)
}

/// Assigns new replicas, all or nothing, fit-checked against free capacity.
pub(super) fn assign(
    state: &mut ClusterState,
    cx: &mut Ctx,
    workload: WorkloadId,
    generation: Generation,
    assignments: &[Assignment],
) -> Result<CommandResult, ApplyError> {
    let w = state
        .workloads
        .get(&workload)
        .ok_or_else(|| workload_not_found(workload))?;
    // A decision computed against an older spec is stale: refuse it rather than start
    // replicas of a generation nobody wants any more.
    if generation != w.generation {
        return Err(ApplyError::GenerationConflict {
            expected: generation,
            current: w.generation,
        });
    }
    if assignments.is_empty() {
        return Err(ApplyError::Invalid("no assignments".into()));
    }
    // Reservations as they will be after the command, per node touched; earlier assignments
    // in this command count against later ones.
    let mut reserved: BTreeMap<NodeId, Resources> = BTreeMap::new();
    for a in assignments {
        let node = state
            .nodes
            .get(&a.node)
            .ok_or_else(|| ApplyError::NodeUnavailable {
                node: a.node,
                reason: "unknown node".into(),
            })?;
        let unavailable = |reason: String| ApplyError::NodeUnavailable {
            node: a.node,
            reason,
        };
        if node.liveness != Liveness::Ready {
            return Err(unavailable(format!("liveness is {:?}", node.liveness)));
        }
        if node.schedulability.draining {
            return Err(unavailable("draining".into()));
        }
        if node.schedulability.cordoned {
            return Err(unavailable("cordoned".into()));
        }
        let current = reserved
            .get(&a.node)
            .or_else(|| state.reserved.get(&a.node))
            .copied()
            .unwrap_or(Resources::ZERO);
        let free = node.report.allocatable.saturating_sub(&current);
        let dimensions = free.shortfalls(&a.resources);
        if !dimensions.is_empty() {
            return Err(ApplyError::DoesNotFit {
                node: a.node,
                dimensions,
            });
        }
        let after = current
            .checked_add(&a.resources)
            .map_err(|e| ApplyError::Invalid(format!("reservation on {}: {e}", a.node)))?;
        reserved.insert(a.node, after);
    }
    if cx.version >= HOST_PORT_CHECK_SINCE {
        super::host_ports::check(state, w, assignments)?;
    }
    let count = u64::try_from(assignments.len())
        .map_err(|_| ApplyError::Invalid("too many assignments".into()))?;
    let first = state.next_replica_id;
    let next = first
        .checked_add(count)
        .ok_or_else(|| ApplyError::Invalid("replica id space exhausted".into()))?;

    // Validated; mutate.
    let subject = workload_subject(w);
    // Recorded on each replica, so the ports stay held as long as it does.
    let host_ports = (cx.version >= HOST_PORT_CHECK_SINCE).then(|| w.spec.distinct_host_ports());
    for (node, r) in reserved {
        set_reserved(state, node, r);
    }
    state.next_replica_id = next;
    let mut ids = Vec::with_capacity(assignments.len());
    let mut summary = Vec::with_capacity(assignments.len());
    for (id, a) in (first..next).map(ReplicaId).zip(assignments) {
        let replica = Replica {
            id,
            workload,
            generation,
            node: a.node,
            resources: a.resources,
            phase: ReplicaPhase::Pending,
            ready: false,
            restarts: 0,
            address: None,
            assigned_at_ms: cx.at_ms,
            message: String::new(),
            host_ports: host_ports.clone(),
        };
        recount(state, cx, None, Some(&replica));
        state.replicas.insert(id, replica);
        cx.touch(Touched::Replica(id));
        ids.push(id);
        summary.push(format!("{id} -> {}", a.node));
    }
    cx.event(
        EventCategory::Scheduling,
        Severity::Info,
        subject,
        "ReplicasAssigned",
        format!("assigned {}", summary.join(", ")),
    );
    Ok(CommandResult::ReplicasAssigned { replicas: ids })
}

/// An agent's status report for one replica (the fields of `Command::UpdateReplica`).
pub(super) struct ReplicaReport<'a> {
    pub(super) id: ReplicaId,
    pub(super) phase: ReplicaPhase,
    pub(super) ready: bool,
    pub(super) restarts: u32,
    pub(super) address: Option<&'a str>,
    pub(super) message: &'a str,
}

/// Records a status report. Entering a terminal phase releases the reservation.
///
/// Readiness is stored only for Running replicas: a replica that is starting, stopping or
/// finished never receives traffic, whatever its last probe said.
pub(super) fn update(
    state: &mut ClusterState,
    cx: &mut Ctx,
    report: ReplicaReport<'_>,
) -> Result<CommandResult, ApplyError> {
    let old = state
        .replicas
        .get(&report.id)
        .ok_or_else(|| ApplyError::NotFound {
            kind: ObjectKind::Replica,
            key: report.id.to_string(),
        })?;
    if !old.phase.can_become(report.phase) {
        return Err(ApplyError::InvalidTransition {
            replica: report.id,
            from: old.phase,
            to: report.phase,
        });
    }
    if report.address.is_some_and(|a| a.len() > MAX_ADDRESS_LEN) {
        return Err(ApplyError::Invalid(format!(
            "address longer than {MAX_ADDRESS_LEN} bytes"
        )));
    }
    let mut new = old.clone();
    new.phase = report.phase;
    new.ready = report.ready && report.phase == ReplicaPhase::Running;
    new.restarts = report.restarts;
    if let Some(address) = report.address {
        new.address = Some(address.to_owned());
    }
    new.message = truncate(report.message, MAX_MESSAGE_LEN).to_owned();
    if &new != old {
        replace(state, cx, new);
    }
    Ok(CommandResult::Done)
}

/// Removes replicas from the ledger, releasing what they still hold. Repeated ids count once.
pub(super) fn unassign(
    state: &mut ClusterState,
    cx: &mut Ctx,
    ids: &[ReplicaId],
) -> Result<CommandResult, ApplyError> {
    if ids.is_empty() {
        return Err(ApplyError::Invalid("no replicas to unassign".into()));
    }
    let ids: BTreeSet<ReplicaId> = ids.iter().copied().collect();
    if let Some(missing) = ids.iter().find(|id| !state.replicas.contains_key(id)) {
        return Err(ApplyError::NotFound {
            kind: ObjectKind::Replica,
            key: missing.to_string(),
        });
    }
    let mut by_workload: BTreeMap<WorkloadId, Vec<String>> = BTreeMap::new();
    for id in ids {
        if let Some(r) = remove(state, cx, id) {
            by_workload
                .entry(r.workload)
                .or_default()
                .push(id.to_string());
        }
    }
    for (workload, replicas) in by_workload {
        let subject = state
            .workloads
            .get(&workload)
            .map(workload_subject)
            .unwrap_or_else(|| format!("workload/{workload}"));
        cx.event(
            EventCategory::Scheduling,
            Severity::Info,
            subject,
            "ReplicasUnassigned",
            format!("unassigned {}", replicas.join(", ")),
        );
    }
    Ok(CommandResult::Done)
}

/// Stores `new` over the existing replica with its id, releasing the reservation if it stops
/// holding one and keeping the workload counters current. Never re-acquires a reservation:
/// only [`assign`] reserves, after its fit check (no phase leads out of a terminal one).
pub(super) fn replace(state: &mut ClusterState, cx: &mut Ctx, new: Replica) {
    let old = state.replicas.insert(new.id, new.clone());
    if let Some(old) = &old
        && old.holds_reservation()
        && !new.holds_reservation()
    {
        release(state, old.node, &old.resources);
    }
    recount(state, cx, old.as_ref(), Some(&new));
    cx.touch(Touched::Replica(new.id));
}

/// Deletes a replica from the ledger, releasing what it holds. Returns it if it existed.
pub(super) fn remove(state: &mut ClusterState, cx: &mut Ctx, id: ReplicaId) -> Option<Replica> {
    let old = state.replicas.remove(&id)?;
    if old.holds_reservation() {
        release(state, old.node, &old.resources);
    }
    recount(state, cx, Some(&old), None);
    cx.touch(Touched::Replica(id));
    Some(old)
}

/// Returns `r` to the node's free capacity.
///
/// Saturating on purpose: `reserved` is kept equal to the ledger, so this never clamps; if a
/// bug ever broke that, refusing the release would wedge the cluster (no node or workload
/// could be cleaned up), which is worse than a clamped counter.
fn release(state: &mut ClusterState, node: NodeId, r: &Resources) {
    if let Some(current) = state.reserved.get(&node).copied() {
        set_reserved(state, node, current.saturating_sub(r));
    }
}

/// Stores a node's reservation, dropping the entry when it is zero so equal ledgers give
/// equal maps.
fn set_reserved(state: &mut ClusterState, node: NodeId, r: Resources) {
    if is_zero(&r) {
        state.reserved.remove(&node);
    } else {
        state.reserved.insert(node, r);
    }
}

/// True if every additive dimension is zero (the IOPS class is not a quantity).
pub(super) fn is_zero(r: &Resources) -> bool {
    r.cpu_millis == 0
        && r.memory_mib == 0
        && r.storage_gib == 0
        && r.egress_mbps == 0
        && r.gpus == 0
}

/// What one replica contributes to its workload's counters.
#[derive(Default, Clone, Copy)]
struct Counts {
    assigned: u32,
    ready: u32,
    available: u32,
}

/// True if replicas on `node` may count as ready: the node exists and is Ready or Suspect.
///
/// A Suspect node has only missed heartbeats for a moment; it may well still be serving, and
/// dropping its replicas from `ready` at the first missed beat would make every short blip
/// look like an outage to the rollout planner. A Down node is presumed dead (its replicas are
/// being replaced), a Joining node has not yet proven its new incarnation is alive, a Left,
/// removed or revoked node is gone: none of their replicas counts, whatever their last report
/// said. `assigned` is unaffected: the reservation is held until the replica is released.
fn node_counts(state: &ClusterState, node: NodeId) -> bool {
    state
        .nodes
        .get(&node)
        .is_some_and(|n| matches!(n.liveness, Liveness::Ready | Liveness::Suspect))
}

/// What `r` contributes to its workload's counters at generation `current`, given whether its
/// node counts (see [`node_counts`]).
fn counts(r: Option<&Replica>, current: Generation, node_live: bool) -> Counts {
    let Some(r) = r else {
        return Counts::default();
    };
    let assigned = r.holds_reservation();
    let ready = assigned && r.ready && node_live;
    let available = ready && r.generation == current;
    Counts {
        assigned: u32::from(assigned),
        ready: u32::from(ready),
        available: u32::from(available),
    }
}

/// Moves the owning workload's counters from `old`'s contribution to `new`'s.
///
/// Both are read against the node's current liveness: the stored counters always reflect it,
/// because [`refresh_counters`] recomputes them whenever a node's liveness or presence changes.
fn recount(state: &mut ClusterState, cx: &mut Ctx, old: Option<&Replica>, new: Option<&Replica>) {
    let Some(r) = new.or(old) else {
        return;
    };
    let (id, node_live) = (r.workload, node_counts(state, r.node));
    // The workload may be gone: replicas of a deleted workload linger until they stop.
    let Some(w) = state.workloads.get_mut(&id) else {
        return;
    };
    let (minus, plus) = (
        counts(old, w.generation, node_live),
        counts(new, w.generation, node_live),
    );
    let s = &mut w.status;
    let before = (s.assigned, s.ready, s.available);
    s.assigned = s
        .assigned
        .saturating_sub(minus.assigned)
        .saturating_add(plus.assigned);
    s.ready = s
        .ready
        .saturating_sub(minus.ready)
        .saturating_add(plus.ready);
    s.available = s
        .available
        .saturating_sub(minus.available)
        .saturating_add(plus.available);
    if before != (s.assigned, s.ready, s.available) {
        cx.touch(Touched::Workload(id));
    }
}

/// The counters of `workload` recomputed from the ledger and the current node liveness
/// (after its generation changed, or a node's liveness did).
pub(super) fn status_from_ledger(state: &ClusterState, workload: &Workload) -> WorkloadStatus {
    let mut status = workload.status.clone();
    let mut total = Counts::default();
    for r in state.replicas_of(workload.id) {
        let c = counts(Some(r), workload.generation, node_counts(state, r.node));
        total.assigned = total.assigned.saturating_add(c.assigned);
        total.ready = total.ready.saturating_add(c.ready);
        total.available = total.available.saturating_add(c.available);
    }
    status.assigned = total.assigned;
    status.ready = total.ready;
    status.available = total.available;
    status
}

/// Recomputes the counters of every workload with a replica on one of `nodes`, after their
/// liveness or presence changed (a replica's contribution depends on its node, see
/// [`node_counts`]). Touches only workloads whose counters moved.
pub(super) fn refresh_counters(state: &mut ClusterState, cx: &mut Ctx, nodes: &BTreeSet<NodeId>) {
    if nodes.is_empty() {
        return;
    }
    let affected: BTreeSet<WorkloadId> = state
        .replicas
        .values()
        .filter(|r| nodes.contains(&r.node))
        .map(|r| r.workload)
        .collect();
    if affected.is_empty() {
        return;
    }
    // One pass over the ledger for all affected workloads (a mass Down batch may touch many).
    let mut totals: BTreeMap<WorkloadId, Counts> = BTreeMap::new();
    for r in state.replicas.values() {
        if !affected.contains(&r.workload) {
            continue;
        }
        let Some(w) = state.workloads.get(&r.workload) else {
            continue;
        };
        let c = counts(Some(r), w.generation, node_counts(state, r.node));
        let t = totals.entry(r.workload).or_default();
        t.assigned = t.assigned.saturating_add(c.assigned);
        t.ready = t.ready.saturating_add(c.ready);
        t.available = t.available.saturating_add(c.available);
    }
    for (id, t) in totals {
        let Some(w) = state.workloads.get_mut(&id) else {
            continue;
        };
        let s = &mut w.status;
        if (s.assigned, s.ready, s.available) != (t.assigned, t.ready, t.available) {
            (s.assigned, s.ready, s.available) = (t.assigned, t.ready, t.available);
            cx.touch(Touched::Workload(id));
        }
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
