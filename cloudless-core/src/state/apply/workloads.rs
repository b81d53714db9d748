//! Workload commands: create, update, scale, pause, delete.

use std::collections::BTreeMap;

use super::replicas::{self, status_from_ledger, workload_subject};
use super::{
    ApplyError, ClusterState, CommandResult, Ctx, ObjectKind, Touched, check_label,
    workload_not_found,
};
use crate::event::{EventCategory, Severity};
use crate::ids::{Generation, WorkloadId};
use crate::replica::ReplicaPhase;
use crate::workload::{Workload, WorkloadSpec, WorkloadStatus};

/// Creates a workload at generation 1. `(namespace, name)` must be free.
pub(super) fn create(
    state: &mut ClusterState,
    cx: &mut Ctx,
    namespace: &str,
    name: &str,
    labels: &BTreeMap<String, String>,
    spec: &WorkloadSpec,
) -> Result<CommandResult, ApplyError> {
    check_label("namespace", namespace)?;
    check_label("name", name)?;
    if state.workload_by_name(namespace, name).is_some() {
        return Err(ApplyError::AlreadyExists {
            kind: ObjectKind::Workload,
            key: format!("{namespace}/{name}"),
        });
    }
    let id = WorkloadId(state.next_workload_id);
    state.next_workload_id = state
        .next_workload_id
        .checked_add(1)
        .ok_or_else(|| ApplyError::Invalid("workload id space exhausted".into()))?;
    let workload = Workload {
        id,
        namespace: namespace.to_owned(),
        name: name.to_owned(),
        labels: labels.clone(),
        spec: spec.clone(),
        generation: Generation(1),
        created_at_ms: cx.at_ms,
        status: WorkloadStatus::default(),
        paused: false,
    };
    cx.event(
        EventCategory::Workload,
        Severity::Info,
        workload_subject(&workload),
        "WorkloadCreated",
        format!("workload {namespace}/{name} created as {id}"),
    );
    state.workloads.insert(id, workload);
    cx.touch(Touched::Workload(id));
    Ok(CommandResult::WorkloadCreated { workload: id })
}

/// Replaces the spec. The generation moves only when the spec actually differs, so a client
/// re-applying the same manifest triggers no rollout.
pub(super) fn update(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: WorkloadId,
    expected: Option<Generation>,
    spec: &WorkloadSpec,
) -> Result<CommandResult, ApplyError> {
    let w = state
        .workloads
        .get(&id)
        .ok_or_else(|| workload_not_found(id))?;
    if let Some(expected) = expected
        && expected != w.generation
    {
        return Err(ApplyError::GenerationConflict {
            expected,
            current: w.generation,
        });
    }
    if &w.spec == spec {
        return Ok(CommandResult::WorkloadUpdated {
            generation: w.generation,
        });
    }
    let generation = w
        .generation
        .0
        .checked_add(1)
        .map(Generation)
        .ok_or_else(|| ApplyError::Invalid("generation space exhausted".into()))?;
    let mut updated = w.clone();
    updated.spec = spec.clone();
    updated.generation = generation;
    // Replicas of the old generation stop counting as available.
    updated.status = status_from_ledger(state, &updated);
    cx.event(
        EventCategory::Workload,
        Severity::Info,
        workload_subject(&updated),
        "WorkloadUpdated",
        format!("spec updated to generation {}", generation.0),
    );
    state.workloads.insert(id, updated);
    cx.touch(Touched::Workload(id));
    Ok(CommandResult::WorkloadUpdated { generation })
}

/// Changes the replica count only; the generation stays (scaling is not a rollout).
pub(super) fn scale(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: WorkloadId,
    replicas: u32,
) -> Result<CommandResult, ApplyError> {
    let w = state
        .workloads
        .get_mut(&id)
        .ok_or_else(|| workload_not_found(id))?;
    if w.spec.replicas != replicas {
        let from = w.spec.replicas;
        w.spec.replicas = replicas;
        let subject = workload_subject(w);
        cx.touch(Touched::Workload(id));
        cx.event(
            EventCategory::Workload,
            Severity::Info,
            subject,
            "WorkloadScaled",
            format!("scaled from {from} to {replicas} replicas"),
        );
    }
    Ok(CommandResult::Done)
}

/// Pauses or resumes rollouts.
pub(super) fn pause(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: WorkloadId,
    paused: bool,
) -> Result<CommandResult, ApplyError> {
    let w = state
        .workloads
        .get_mut(&id)
        .ok_or_else(|| workload_not_found(id))?;
    if w.paused != paused {
        w.paused = paused;
        let subject = workload_subject(w);
        let (reason, message) = if paused {
            ("RolloutPaused", "rollouts paused")
        } else {
            ("RolloutResumed", "rollouts resumed")
        };
        cx.touch(Touched::Workload(id));
        cx.event(
            EventCategory::Workload,
            Severity::Info,
            subject,
            reason,
            message.to_owned(),
        );
    }
    Ok(CommandResult::Done)
}

/// Deletes a workload.
///
/// Replicas that still hold a reservation become Stopping and *keep* it until their agent
/// reports them finished (or their node is removed): the container is still running until
/// then, and handing its resources to a new replica early would over-commit the device. The
/// reconciler unassigns them once terminal. Replicas already terminal are removed at once.
pub(super) fn delete(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: WorkloadId,
) -> Result<CommandResult, ApplyError> {
    let w = state
        .workloads
        .get(&id)
        .ok_or_else(|| workload_not_found(id))?;
    let subject = workload_subject(w);
    let label = format!("{}/{}", w.namespace, w.name);
    let owned: Vec<_> = state.replicas_of(id).cloned().collect();
    let (mut stopping, mut removed) = (0usize, 0usize);
    for mut r in owned {
        if r.phase.is_terminal() {
            replicas::remove(state, cx, r.id);
            removed += 1;
        } else {
            if r.phase != ReplicaPhase::Stopping {
                r.phase = ReplicaPhase::Stopping;
                r.ready = false;
                r.message = "workload deleted".into();
                replicas::replace(state, cx, r);
            }
            stopping += 1;
        }
    }
    state.workloads.remove(&id);
    cx.touch(Touched::Workload(id));
    cx.event(
        EventCategory::Workload,
        Severity::Info,
        subject,
        "WorkloadDeleted",
        format!("workload {label} deleted; {stopping} replica(s) stopping, {removed} removed"),
    );
    Ok(CommandResult::Done)
}

/// Longest condition reason accepted, in bytes.
const MAX_CONDITION_REASON_LEN: usize = 128;
/// Longest condition message accepted, in bytes.
const MAX_CONDITION_MESSAGE_LEN: usize = 4096;

/// Sets the observed generation and the conditions. A condition whose status did not change
/// keeps its `since_ms`; a new or flipped one gets the command's time.
pub(super) fn set_status(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: WorkloadId,
    observed_generation: Generation,
    conditions: &[crate::workload::Condition],
) -> Result<CommandResult, ApplyError> {
    let w = state
        .workloads
        .get_mut(&id)
        .ok_or_else(|| workload_not_found(id))?;
    if observed_generation > w.generation {
        return Err(ApplyError::Invalid(format!(
            "observed generation {observed_generation} is ahead of the workload's {}",
            w.generation
        )));
    }
    let mut kinds = std::collections::BTreeSet::new();
    for c in conditions {
        if !kinds.insert(c.kind) {
            return Err(ApplyError::Invalid(format!(
                "condition {:?} appears twice",
                c.kind
            )));
        }
        if c.reason.is_empty() || c.reason.len() > MAX_CONDITION_REASON_LEN {
            return Err(ApplyError::Invalid(format!(
                "condition reason must be 1..={MAX_CONDITION_REASON_LEN} bytes"
            )));
        }
        if c.message.len() > MAX_CONDITION_MESSAGE_LEN {
            return Err(ApplyError::Invalid(format!(
                "condition message must be at most {MAX_CONDITION_MESSAGE_LEN} bytes"
            )));
        }
    }
    let mut next: Vec<crate::workload::Condition> = conditions
        .iter()
        .map(|c| {
            let since_ms = w
                .status
                .conditions
                .iter()
                .find(|old| old.kind == c.kind && old.status == c.status)
                .map_or(cx.at_ms, |old| old.since_ms);
            crate::workload::Condition {
                since_ms,
                ..c.clone()
            }
        })
        .collect();
    next.sort_by_key(|c| c.kind);
    if w.status.observed_generation != observed_generation || w.status.conditions != next {
        w.status.observed_generation = observed_generation;
        w.status.conditions = next;
        cx.touch(Touched::Workload(id));
    }
    Ok(CommandResult::Done)
}
