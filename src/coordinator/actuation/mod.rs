//! The actuation loop on the leader: reconcile, place, stop, finish, and keep workload status
//! current.
//!
//! ```text
//!  state ─▶ reconcile ─▶ Stop / Unassign ─▶ to_commands ─▶ UpdateReplica(Stopping), UnassignReplicas
//!                    └─▶ Place ─▶ Scheduler.place(snapshot) ─▶ AssignReplicas (fit-checked at apply;
//!                                     │                          refused → next round)
//!                                     └─ unplaced ─▶ FailedScheduling event (when the reason changes)
//!  Stopping replicas whose agent was told ≥ stop_grace ago ─▶ UpdateReplica(Succeeded)
//!    (the fallback: an agent's stop report finishes them at once, in `Service::report_stopped`)
//!  join tokens expired longer than the retention ─▶ PruneJoinTokens
//!  per workload: plan_workload_status ─▶ SetWorkloadStatus (only when it differs)
//! ```
//!
//! **Duplicates.** When a node that was Down comes back, its replicas count again next to the
//! replacements made meanwhile, and the reconciler's scale-down stops the surplus. The rule
//! (implemented by `cloudless_sched::reconcile`, relied on here): keep the healthiest copy —
//! a ready copy over an unready one; among equals, a copy of the current generation, then one
//! in the zone holding fewer copies, then the **older** copy (lower replica id: the one that
//! kept running through the partition). A ready copy is stopped only while the ready count
//! stays at or above `minAvailable`. The surviving copy is never restarted.

mod status;

use std::collections::BTreeMap;

use cloudless_core::consensus::ConsensusError;
use cloudless_core::event::{EventCategory, Severity};
use cloudless_core::ids::{Revision, WorkloadId};
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::scheduler::{ClusterSnapshot, PlacementRequest};
use cloudless_core::state::{Assignment, Command};
use cloudless_sched::reconcile::{ReconcileAction, reconcile, to_commands};

pub use status::plan_workload_status;

use super::driver::Shared;

/// What the loop remembers between rounds (reset when leadership is lost).
#[derive(Debug, Default)]
pub(crate) struct Memory {
    /// The last unplaceable explanation recorded as an event, per workload.
    unplaceable: BTreeMap<WorkloadId, String>,
}

/// A seed for the scheduler: the same workload at the same revision gets the same answer.
fn seed(workload: WorkloadId, revision: Revision) -> u64 {
    let mut z = workload
        .get()
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(revision.0);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Proposes `command`; false if this coordinator lost leadership (stop the round).
async fn commit(shared: &Shared, command: Command) -> bool {
    match shared.propose(command).await {
        Ok(_) => true,
        Err(ConsensusError::NotLeader { .. }) => false,
        Err(e) => {
            // Computed from an older state, or no quorum now: the next round decides again.
            tracing::debug!(error = %e, "actuation command not applied");
            true
        }
    }
}

/// One round. Every decision is recomputed from a fresh state, so a round interrupted by a
/// failure or a lost leadership leaves nothing half-done that the next one would not redo.
pub(crate) async fn round(shared: &Shared, memory: &mut Memory) {
    let Ok(state) = shared.refresh().await else {
        return;
    };
    let rec = reconcile(&state);
    for command in to_commands(&state, &rec.actions) {
        if !commit(shared, command).await {
            return;
        }
    }
    for id in shared.stopped_by_agents(&state) {
        let Some(r) = state.replicas.get(&id) else {
            continue;
        };
        let done = Command::UpdateReplica {
            replica: id,
            phase: ReplicaPhase::Succeeded,
            ready: false,
            restarts: r.restarts,
            address: None,
            message: "stopped by its agent".into(),
        };
        if !commit(shared, done).await {
            return;
        }
    }

    let mut unplaced: BTreeMap<WorkloadId, String> = BTreeMap::new();
    let mut current = state;
    for action in &rec.actions {
        let ReconcileAction::Place {
            workload,
            generation,
            count,
            exclude,
            reason,
        } = action
        else {
            continue;
        };
        let Some(w) = current.workloads.get(workload) else {
            continue;
        };
        if w.generation != *generation {
            continue;
        }
        let snapshot = ClusterSnapshot::from_state(&current);
        let request = PlacementRequest {
            workload: w.clone(),
            count: *count,
            exclude: exclude.clone(),
            seed: seed(*workload, current.revision),
        };
        let result = shared.scheduler.place(&snapshot, &request);
        if let Some(first) = result.unplaced.first() {
            let explanation = format!(
                "{} of {} replica(s) unplaceable ({reason}): {first}",
                result.unplaced.len(),
                count
            );
            unplaced.insert(*workload, explanation);
        }
        if result.placements.is_empty() {
            continue;
        }
        let resources = w.spec.resources.requests.to_resources();
        let assign = Command::AssignReplicas {
            workload: *workload,
            generation: *generation,
            assignments: result
                .placements
                .iter()
                .map(|p| Assignment {
                    node: p.node,
                    resources,
                })
                .collect(),
        };
        if !commit(shared, assign).await {
            return;
        }
        match shared.refresh().await {
            Ok(s) => current = s,
            Err(_) => return,
        }
    }

    for (id, explanation) in &unplaced {
        if memory.unplaceable.get(id) == Some(explanation) {
            continue;
        }
        let subject = current.workloads.get(id).map_or_else(
            || format!("workload/{id}"),
            |w| format!("workload/{}/{}", w.namespace, w.name),
        );
        shared
            .event(
                EventCategory::Scheduling,
                Severity::Warning,
                subject,
                "FailedScheduling",
                explanation.clone(),
            )
            .await;
    }
    memory.unplaceable = unplaced;

    let Ok(latest) = shared.refresh().await else {
        return;
    };
    let retention =
        u64::try_from(shared.config.expired_token_retention.as_millis()).unwrap_or(u64::MAX);
    let cutoff = shared.wall_ms().saturating_sub(retention);
    if latest
        .join_tokens
        .values()
        .any(|t| t.expires_at_ms <= cutoff)
        && !commit(shared, Command::PruneJoinTokens { now_ms: cutoff }).await
    {
        return;
    }
    for w in latest.workloads.values() {
        let (observed, conditions) = plan_workload_status(
            w,
            rec.rollouts.get(&w.id),
            memory.unplaceable.get(&w.id).map(String::as_str),
        );
        if status::same(&w.status, observed, &conditions) {
            continue;
        }
        let set = Command::SetWorkloadStatus {
            workload: w.id,
            observed_generation: observed,
            conditions,
        };
        if !commit(shared, set).await {
            return;
        }
    }
}
