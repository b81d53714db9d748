//! Workload status: the conditions the leader keeps current.

use cloudless_core::ids::Generation;
use cloudless_core::workload::{Condition, ConditionKind, Workload, WorkloadStatus};
use cloudless_sched::rollout::RolloutStatus;

fn condition(kind: ConditionKind, status: bool, reason: &str, message: String) -> Condition {
    Condition {
        kind,
        status,
        reason: reason.to_owned(),
        message,
        since_ms: 0,
    }
}

/// The observed generation and conditions `w` should carry, from its ledger counters, where
/// its rollout stands and why replicas could not be placed (if any could not).
///
/// - `Available`: at least `minAvailable` ready replicas of the current generation.
/// - `Progressing`: the rollout is emitting steps or waiting for readiness.
/// - `Unschedulable`: some replica could not be placed, with the scheduler's explanation.
///
/// `since_ms` is left 0: the state machine stamps it when a condition's status flips.
pub fn plan_workload_status(
    w: &Workload,
    rollout: Option<&RolloutStatus>,
    unplaceable: Option<&str>,
) -> (Generation, Vec<Condition>) {
    let min = w.spec.effective_min_available();
    let available = w.status.available;
    let mut conditions = vec![condition(
        ConditionKind::Available,
        available >= min,
        if available >= min {
            "MinimumReplicasAvailable"
        } else {
            "MinimumReplicasUnavailable"
        },
        format!(
            "{available} of {} replicas available (minAvailable {min})",
            w.spec.replicas
        ),
    )];
    if let Some(r) = rollout {
        let (status, reason, message) = match r {
            RolloutStatus::Complete => (false, "RolloutComplete", "rollout complete".to_owned()),
            RolloutStatus::Progressing => {
                (true, "RolloutProgressing", "rollout in progress".to_owned())
            }
            RolloutStatus::Waiting { unready } => (
                true,
                "WaitingForReadiness",
                format!("waiting for {unready} replica(s) to become ready"),
            ),
            RolloutStatus::Paused { old_generation } => (
                false,
                "RolloutPaused",
                format!("paused with {old_generation} replica(s) of an old generation"),
            ),
            RolloutStatus::Stuck(s) => (false, "RolloutStuck", s.to_string()),
        };
        conditions.push(condition(
            ConditionKind::Progressing,
            status,
            reason,
            message,
        ));
    }
    conditions.push(match unplaceable {
        Some(why) => condition(
            ConditionKind::Unschedulable,
            true,
            "FailedScheduling",
            truncate(why, 4096),
        ),
        None => condition(
            ConditionKind::Unschedulable,
            false,
            "Scheduled",
            "every replica placed".to_owned(),
        ),
    });
    (w.generation, conditions)
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// True if `status` already says this (ignoring `since_ms`, which the state machine keeps).
pub(crate) fn same(
    status: &WorkloadStatus,
    observed: Generation,
    conditions: &[Condition],
) -> bool {
    let key = |c: &Condition| (c.kind, c.status, c.reason.clone(), c.message.clone());
    let mut want: Vec<_> = conditions.iter().map(key).collect();
    want.sort();
    let have: Vec<_> = status.conditions.iter().map(key).collect();
    status.observed_generation == observed && have == want
}
