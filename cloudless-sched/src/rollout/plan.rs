//! The planning rule.

use std::collections::BTreeSet;
use std::ops::Bound;

use cloudless_core::ids::ReplicaId;

use super::{
    RetireReason, RolloutInput, RolloutPlan, RolloutReplica, RolloutStatus, RolloutStep, Stuck,
    count_u32, usize_of,
};

/// Plans the next steps of a rollout.
///
/// Replicas that [leave](RolloutInput::leaves) are retired, unready ones first (stopping them
/// costs no availability), then ready ones while the ready count after the retirement stays
/// at or above `minAvailable`. A ready replica on a **draining** node also needs cover
/// (make-before-break): either the other ready replicas already number `replicas`, or no live
/// replica would be missing without it and a ready keeper newer than it (a higher replica id,
/// so placed after it — its replacement) is not yet matched to another drained replica. Old-generation replicas need no cover, so a rollout may
/// stop one before its successor is ready, within `minAvailable` (like a Kubernetes rolling
/// update's maxUnavailable).
///
/// Then `Surge { count }` fills keepers up to `replicas`, never taking the live count past
/// `replicas + surge_limit` ([`RolloutInput::surge_limit`]).
///
/// When nothing can be done and some replica still leaves: if every live replica is ready (or
/// `minAvailable ≥ replicas + surge_limit`, so readiness cannot help) nothing will ever change
/// and the status is [`RolloutStatus::Stuck`]; otherwise it is [`RolloutStatus::Waiting`].
///
/// ```rust
/// use cloudless_core::ids::{Generation, ReplicaId};
/// use cloudless_sched::rollout::{RetireReason, RolloutInput, RolloutReplica, RolloutStatus, RolloutStep, plan};
///
/// // Three ready replicas of generation 1; generation 2 is desired.
/// let live: Vec<RolloutReplica> = (1..=3)
///     .map(|i| RolloutReplica { id: ReplicaId(i), generation: Generation(1), ready: true, draining: false })
///     .collect();
/// let input = RolloutInput {
///     generation: Generation(2),
///     replicas: 3,
///     max_surge: 1,
///     min_available: 2,
///     paused: false,
///     live: &live,
/// };
/// let p = plan(&input);
/// assert_eq!(p.status, RolloutStatus::Progressing);
/// // Retire one old replica (2 ready remain = minAvailable) and start two new ones
/// // (live stays within replicas + maxSurge = 4).
/// let old = RetireReason::OldGeneration { generation: Generation(1), desired: Generation(2) };
/// assert_eq!(
///     p.steps,
///     [RolloutStep::Retire { replica: ReplicaId(1), reason: old }, RolloutStep::Surge { count: 2 }]
/// );
///
/// // Paused, nothing moves.
/// let paused = plan(&RolloutInput { paused: true, ..input });
/// assert!(paused.steps.is_empty());
/// assert_eq!(paused.status, RolloutStatus::Paused { old_generation: 3 });
/// ```
pub fn plan(input: &RolloutInput<'_>) -> RolloutPlan {
    let surge_limit = input.surge_limit();
    let cap = usize_of(input.replicas).saturating_add(usize_of(surge_limit));
    let min_available = usize_of(input.min_available);
    let replicas = usize_of(input.replicas);

    let (mut leavers, keepers): (Vec<&RolloutReplica>, Vec<&RolloutReplica>) =
        input.live.iter().partition(|r| input.leaves(r));
    // Unready first, old-generation before draining (no cover needed), oldest first so a
    // drained replica meets as many newer keepers as possible.
    leavers.sort_by_key(|r| (r.ready, r.draining, r.id));
    let mut covers: BTreeSet<ReplicaId> =
        keepers.iter().filter(|r| r.ready).map(|r| r.id).collect();

    let mut total = input.live.len();
    let mut ready = input.live.iter().filter(|r| r.ready).count();
    let mut steps = Vec::new();
    for r in &leavers {
        if r.ready {
            let after = ready - 1;
            if after < min_available {
                continue;
            }
            if r.draining && after < replicas {
                // A newer ready keeper only counts as this replica's replacement once nothing
                // else is missing; otherwise it may be standing in for a lost replica.
                if total - 1 < replicas {
                    continue;
                }
                let Some(cover) = covers
                    .range((Bound::Excluded(r.id), Bound::Unbounded))
                    .next()
                    .copied()
                else {
                    continue;
                };
                covers.remove(&cover);
            }
            ready = after;
        }
        total -= 1;
        steps.push(RolloutStep::Retire {
            replica: r.id,
            reason: reason(input, r),
        });
    }

    let missing = replicas.saturating_sub(keepers.len());
    let room = cap.saturating_sub(total);
    let surge = missing.min(room);
    if surge > 0 {
        steps.push(RolloutStep::Surge {
            count: count_u32(surge),
        });
    }

    let status = if !steps.is_empty() {
        RolloutStatus::Progressing
    } else if leavers.is_empty() {
        let old = keepers
            .iter()
            .filter(|r| r.generation != input.generation)
            .count();
        if old > 0 {
            RolloutStatus::Paused {
                old_generation: count_u32(old),
            }
        } else {
            RolloutStatus::Complete
        }
    } else if ready == total || min_available >= cap {
        RolloutStatus::Stuck(Stuck {
            ready: count_u32(ready),
            min_available: input.min_available,
            replicas: input.replicas,
            surge_limit,
        })
    } else {
        RolloutStatus::Waiting {
            unready: count_u32(total - ready),
        }
    };
    RolloutPlan { steps, status }
}

fn reason(input: &RolloutInput<'_>, r: &RolloutReplica) -> RetireReason {
    if r.draining {
        RetireReason::Draining
    } else {
        RetireReason::OldGeneration {
            generation: r.generation,
            desired: input.generation,
        }
    }
}
