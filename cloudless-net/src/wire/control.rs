//! Conversions for the agent ↔ coordinator control protocol (`proto/cloudless/v1/control.proto`).
//!
//! The protocol's Rust types (acks, assignment sets, replica reports) belong to the `cloudless`
//! facade, which converts whole messages; this module holds the pieces made only of core
//! values, so every decoder of control messages validates them the same way:
//!
//! - [`Heartbeat`] ↔ `ControlHeartbeat` (node + report);
//! - the leader hint of `NotLeader` ↔ `Option<NodeId>`;
//! - required node ids, enum fields and the heartbeat interval, each with a typed
//!   [`WireError`] naming the field;
//! - the encoding tags of [`pb::EncodedWorkloadSpec`].

use std::time::Duration;

use cloudless_core::ids::NodeId;
use cloudless_core::node::Liveness;
use cloudless_core::replica::ReplicaPhase;

use super::error::{WireError, required};
use super::node::Heartbeat;
use super::pb;
use super::resources::enum_field;

/// `EncodedWorkloadSpec.format`: JSON of the core `WorkloadSpec` (camelCase, unknown fields
/// refused).
pub const SPEC_FORMAT_JSON: u32 = 1;

/// The largest heartbeat interval a decoder accepts (one day), so a corrupt value cannot
/// silence an agent for years.
pub const MAX_INTERVAL: Duration = Duration::from_secs(24 * 60 * 60);

impl From<Heartbeat> for pb::ControlHeartbeat {
    fn from(h: Heartbeat) -> Self {
        pb::ControlHeartbeat {
            node: Some(h.node.into()),
            report: Some(h.report.into()),
        }
    }
}

impl TryFrom<pb::ControlHeartbeat> for Heartbeat {
    type Error = WireError;
    fn try_from(h: pb::ControlHeartbeat) -> Result<Self, WireError> {
        Ok(Heartbeat {
            node: node_field(h.node, "node")?,
            report: required(h.report, "report")?,
        })
    }
}

/// The `NotLeader` answer for a leader hint.
pub fn not_leader(leader: Option<NodeId>) -> pb::NotLeader {
    pb::NotLeader {
        leader: leader.map(Into::into),
    }
}

/// The leader hint of a `NotLeader` answer (`None`: the callee does not know the leader).
pub fn leader_hint(n: &pb::NotLeader) -> Option<NodeId> {
    n.leader.map(Into::into)
}

/// A required node id.
pub fn node_field(value: Option<pb::NodeId>, field: &str) -> Result<NodeId, WireError> {
    value
        .map(NodeId::from)
        .ok_or_else(|| WireError::missing(field))
}

/// A required replica phase (UNSPECIFIED is missing, unknown numbers are rejected).
pub fn phase_field(value: i32, field: &str) -> Result<ReplicaPhase, WireError> {
    let p: pb::ReplicaPhase = enum_field(value, field)?;
    ReplicaPhase::try_from(p).map_err(|_| WireError::missing(field))
}

/// The wire number of a replica phase.
pub fn phase_to_wire(p: ReplicaPhase) -> i32 {
    pb::ReplicaPhase::from(p) as i32
}

/// A required liveness (UNSPECIFIED is missing, unknown numbers are rejected).
pub fn liveness_field(value: i32, field: &str) -> Result<Liveness, WireError> {
    let l: pb::Liveness = enum_field(value, field)?;
    Liveness::try_from(l).map_err(|_| WireError::missing(field))
}

/// The wire number of a liveness.
pub fn liveness_to_wire(l: Liveness) -> i32 {
    pb::Liveness::from(l) as i32
}

/// A heartbeat interval in whole milliseconds (sub-millisecond parts are dropped; durations
/// beyond `u64::MAX` ms saturate).
pub fn interval_to_wire(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A heartbeat interval of at most [`MAX_INTERVAL`].
pub fn interval_field(ms: u64, field: &str) -> Result<Duration, WireError> {
    let d = Duration::from_millis(ms);
    if d > MAX_INTERVAL {
        return Err(WireError::OutOfRange {
            field: field.to_owned(),
            value: ms,
            allowed: "0..=86400000 ms",
        });
    }
    Ok(d)
}
