//! Conversions for replicas.

use cloudless_core::ids::{Generation, ReplicaId, WorkloadId};
use cloudless_core::replica::{Replica, ReplicaPhase};

use super::error::{WireError, required};
use super::pb;
use super::resources::enum_field;

impl From<ReplicaPhase> for pb::ReplicaPhase {
    fn from(p: ReplicaPhase) -> Self {
        match p {
            ReplicaPhase::Pending => pb::ReplicaPhase::Pending,
            ReplicaPhase::Starting => pb::ReplicaPhase::Starting,
            ReplicaPhase::Running => pb::ReplicaPhase::Running,
            ReplicaPhase::Stopping => pb::ReplicaPhase::Stopping,
            ReplicaPhase::Succeeded => pb::ReplicaPhase::Succeeded,
            ReplicaPhase::Failed => pb::ReplicaPhase::Failed,
        }
    }
}

impl TryFrom<pb::ReplicaPhase> for ReplicaPhase {
    type Error = WireError;
    fn try_from(p: pb::ReplicaPhase) -> Result<Self, WireError> {
        Ok(match p {
            pb::ReplicaPhase::Unspecified => return Err(WireError::missing("phase")),
            pb::ReplicaPhase::Pending => ReplicaPhase::Pending,
            pb::ReplicaPhase::Starting => ReplicaPhase::Starting,
            pb::ReplicaPhase::Running => ReplicaPhase::Running,
            pb::ReplicaPhase::Stopping => ReplicaPhase::Stopping,
            pb::ReplicaPhase::Succeeded => ReplicaPhase::Succeeded,
            pb::ReplicaPhase::Failed => ReplicaPhase::Failed,
        })
    }
}

/// The recorded host ports stay in the replicated state; agents and API clients get the
/// ports from the workload spec.
impl From<Replica> for pb::Replica {
    fn from(r: Replica) -> Self {
        pb::Replica {
            id: r.id.get(),
            workload: r.workload.get(),
            generation: r.generation.get(),
            node: Some(r.node.into()),
            resources: Some(r.resources.into()),
            phase: pb::ReplicaPhase::from(r.phase) as i32,
            ready: r.ready,
            restarts: r.restarts,
            address: r.address,
            assigned_at_ms: r.assigned_at_ms,
            message: r.message,
        }
    }
}

impl TryFrom<pb::Replica> for Replica {
    type Error = WireError;
    fn try_from(r: pb::Replica) -> Result<Self, WireError> {
        let phase: pb::ReplicaPhase = enum_field(r.phase, "phase")?;
        Ok(Replica {
            id: ReplicaId(r.id),
            workload: WorkloadId(r.workload),
            generation: Generation(r.generation),
            node: r.node.ok_or_else(|| WireError::missing("node"))?.into(),
            resources: required(r.resources, "resources")?,
            phase: ReplicaPhase::try_from(phase)?,
            ready: r.ready,
            restarts: r.restarts,
            address: r.address,
            assigned_at_ms: r.assigned_at_ms,
            message: r.message,
            // Not on the wire: only the state machine and the scheduler read it.
            host_ports: None,
        })
    }
}
