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
///
/// Events are recorded by the state machine as it applies commands (and by
/// [`Command::RecordEvent`](crate::state::Command::RecordEvent)), kept in
/// [`ClusterState::events`](crate::state::ClusterState::events) and watched as
/// [`ObjectKind::Event`](crate::state::ObjectKind::Event) changes:
///
/// ```rust
/// use cloudless_core::event::{EventCategory, Severity};
/// use cloudless_core::state::{ClusterState, Command, CommandEnvelope, apply};
///
/// let mut state = ClusterState::new();
/// let failed = Command::RecordEvent {
///     category: EventCategory::Scheduling,
///     severity: Severity::Warning,
///     subject: "workload/shop/web".into(),
///     reason: "FailedScheduling".into(),
///     message: "0/3 nodes fit: 3 insufficient memory".into(),
/// };
/// apply(&mut state, &CommandEnvelope::new(42_000, failed))?;
///
/// let event = state.events.back().ok_or("no event")?;
/// assert_eq!(event.reason, "FailedScheduling");
/// assert_eq!((event.at_ms, event.revision.get()), (42_000, 1));
/// assert_eq!(serde_json::to_value(event)?["severity"], "warning");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
