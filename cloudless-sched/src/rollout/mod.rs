//! The rollout planner (CLD-REQ-023): from a workload's live replicas, their generations and
//! readiness, `replicas`, `maxSurge` and `minAvailable`, the next steps of a rolling update.
//!
//! ```text
//!  live replicas (generation, ready, draining) ─▶ keepers | leavers
//!                                                   │         │ retire: unready first; a ready one
//!                                                   │         │ only if ready-after ≥ minAvailable
//!                                                   ▼         ▼
//!                   Surge { count } up to replicas + maxSurge live  ·  Retire { replica, reason }
//! ```
//!
//! The planner is pure: it sees one instant and answers for it; the reconciler calls it again
//! when anything changes. Replicas on draining nodes leave the same way as replicas of an old
//! generation, but make-before-break: see [`plan`].

mod plan;

use std::fmt;

use cloudless_core::ids::{Generation, ReplicaId};
use cloudless_core::workload::Workload;
use serde::{Deserialize, Serialize};

pub use plan::plan;

/// One live replica as the planner sees it.
///
/// "Live" is the caller's judgement: the reconciler passes replicas that are neither terminal
/// nor Stopping and whose node is Ready or Suspect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutReplica {
    /// The replica.
    pub id: ReplicaId,
    /// The generation it runs.
    pub generation: Generation,
    /// Passing readiness.
    pub ready: bool,
    /// Its node is draining: it must move elsewhere.
    pub draining: bool,
}

/// Everything the planner decides from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutInput<'a> {
    /// The desired spec generation.
    pub generation: Generation,
    /// Desired replica count.
    pub replicas: u32,
    /// `rollout.maxSurge`.
    pub max_surge: u32,
    /// The effective `minAvailable` ([`cloudless_core::workload::WorkloadSpec::effective_min_available`]).
    pub min_available: u32,
    /// Rollouts paused by the operator.
    pub paused: bool,
    /// The live replicas.
    pub live: &'a [RolloutReplica],
}

impl<'a> RolloutInput<'a> {
    /// The input for `workload` with these live replicas.
    pub fn for_workload(workload: &Workload, live: &'a [RolloutReplica]) -> Self {
        Self {
            generation: workload.generation,
            replicas: workload.spec.replicas,
            max_surge: workload.spec.rollout.max_surge,
            min_available: workload.spec.effective_min_available(),
            paused: workload.paused,
            live,
        }
    }

    /// True if `r` must be replaced: its node is draining, or (unless rollouts are paused) it
    /// runs an old generation. The others are keepers.
    pub fn leaves(&self, r: &RolloutReplica) -> bool {
        r.draining || (!self.paused && r.generation != self.generation)
    }

    /// The surge allowance actually used: `maxSurge`, but at least 1 while a replica must leave
    /// a draining node, because a drain moves replicas make-before-break and needs a slot for
    /// the replacement (with `maxSurge = 0` and `minAvailable = replicas` it could never start).
    pub fn surge_limit(&self) -> u32 {
        if self.live.iter().any(|r| r.draining) {
            self.max_surge.max(1)
        } else {
            self.max_surge
        }
    }
}

/// Why a replica is retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum RetireReason {
    /// It runs an old generation.
    OldGeneration {
        /// Its generation.
        generation: Generation,
        /// The desired one.
        desired: Generation,
    },
    /// Its node is draining.
    Draining,
}

impl fmt::Display for RetireReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetireReason::OldGeneration {
                generation,
                desired,
            } => write!(f, "old generation {generation}, rolling out {desired}"),
            RetireReason::Draining => f.write_str("node is draining, replacement ready"),
        }
    }
}

/// One step of a rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum RolloutStep {
    /// Place `count` new replicas of the desired generation.
    Surge {
        /// How many.
        count: u32,
    },
    /// Stop this replica.
    Retire {
        /// The replica.
        replica: ReplicaId,
        /// Why.
        reason: RetireReason,
    },
}

/// A rollout that can never finish as configured: no replica may be retired without dropping
/// below `minAvailable`, and the surge limit leaves no room for a new one.
///
/// Manifest validation refuses `maxSurge = 0` with `minAvailable ≥ replicas`, but a later
/// `ScaleWorkload` can still get here (scaling `replicas` down to `minAvailable` or below).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stuck {
    /// Ready live replicas.
    pub ready: u32,
    /// The effective `minAvailable`.
    pub min_available: u32,
    /// Desired replicas.
    pub replicas: u32,
    /// The surge limit in force ([`RolloutInput::surge_limit`]).
    pub surge_limit: u32,
}

impl fmt::Display for Stuck {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rollout stuck: {} ready replicas, retiring one would go below minAvailable {}, \
             and replicas {} + maxSurge {} leaves no room for a new one; \
             raise maxSurge or lower minAvailable",
            self.ready, self.min_available, self.replicas, self.surge_limit
        )
    }
}

/// Where the rollout stands after this plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", tag = "type")]
pub enum RolloutStatus {
    /// Nothing leaves and nothing is missing.
    Complete,
    /// Steps were emitted.
    Progressing,
    /// Paused with replicas of an old generation still running.
    Paused {
        /// Live replicas of old generations.
        old_generation: u32,
    },
    /// No step is possible until replicas become ready.
    Waiting {
        /// Live replicas not ready.
        unready: u32,
    },
    /// No step will ever be possible as configured.
    Stuck(Stuck),
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RolloutPlan {
    /// Steps, retirements first (in the order chosen), then at most one surge.
    pub steps: Vec<RolloutStep>,
    /// Where the rollout stands.
    pub status: RolloutStatus,
}

/// A count as `u32`, saturating (live sets never come near it).
pub(crate) fn count_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// A `u32` setting as `usize`, saturating.
pub(crate) fn usize_of(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}
