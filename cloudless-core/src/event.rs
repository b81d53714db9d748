//! The event stream (CLD-REQ-071): membership, scheduling, security and workload decisions.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::Revision;

/// What area an event belongs to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum EventCategory {
    /// Nodes joining, leaving, changing liveness.
    Membership,
    /// Placement decisions and failures to place.
    Scheduling,
    /// Authentication, authorization, policy decisions.
    Security,
    /// Workload lifecycle.
    Workload,
}

/// How notable an event is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum Severity {
    /// Normal operation.
    Info,
    /// Something an operator may want to look at.
    Warning,
}

/// One event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Event {
    /// Revision at which it was recorded.
    pub revision: Revision,
    /// When (ms since the Unix epoch, from the command).
    pub at_ms: u64,
    /// Area.
    pub category: EventCategory,
    /// Severity.
    pub severity: Severity,
    /// What it is about, e.g. `node/edge-1` or `workload/default/web`.
    pub subject: String,
    /// Short reason, e.g. `NodeDown`, `Scheduled`, `FailedScheduling`.
    pub reason: String,
    /// Human-readable message.
    pub message: String,
}
