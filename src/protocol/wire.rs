//! Conversions between the control contract's types ([`crate::control`]) and the
//! `control.proto` messages. Encoding is infallible; decoding returns a typed
//! [`MessageError`] naming the field and never panics.

use cloudless_core::ids::{Generation, ReplicaId, Revision, WorkloadId};
use cloudless_core::replica::Replica;
use cloudless_core::workload::WorkloadSpec;
use cloudless_net::WireError;
use cloudless_net::wire::control::{
    SPEC_FORMAT_JSON, interval_field, interval_to_wire, liveness_field, liveness_to_wire,
    phase_field, phase_to_wire,
};
use cloudless_net::wire::pb;

use crate::control::{AssignedReplica, AssignmentSet, HeartbeatAck, ReplicaReport, StoppedReplica};

/// A control message that does not convert to the contract's types.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    /// A field of the protobuf message is missing or invalid.
    #[error(transparent)]
    Wire(#[from] WireError),
    /// A workload spec is in an encoding this version does not know.
    #[error("{field}: unknown workload spec format {format}")]
    UnknownSpecFormat {
        /// Path of the field.
        field: String,
        /// The format number received.
        format: u32,
    },
    /// A workload spec does not decode.
    #[error("{field}: invalid workload spec: {reason}")]
    Spec {
        /// Path of the field.
        field: String,
        /// Why it was rejected.
        reason: String,
    },
}

impl MessageError {
    fn within(self, parent: &str) -> Self {
        match self {
            MessageError::Wire(e) => MessageError::Wire(e.within(parent)),
            MessageError::UnknownSpecFormat { field, format } => MessageError::UnknownSpecFormat {
                field: format!("{parent}.{field}"),
                format,
            },
            MessageError::Spec { field, reason } => MessageError::Spec {
                field: format!("{parent}.{field}"),
                reason,
            },
        }
    }
}

/// Encodes a heartbeat ack.
pub fn ack_to_wire(a: &HeartbeatAck) -> pb::ControlHeartbeatAck {
    pb::ControlHeartbeatAck {
        liveness: liveness_to_wire(a.liveness),
        assignments_revision: a.assignments_revision.get(),
        interval_ms: interval_to_wire(a.interval),
        leader: a.leader.map(Into::into),
    }
}

/// Decodes a heartbeat ack.
pub fn ack_from_wire(a: pb::ControlHeartbeatAck) -> Result<HeartbeatAck, MessageError> {
    Ok(HeartbeatAck {
        liveness: liveness_field(a.liveness, "liveness")?,
        assignments_revision: Revision(a.assignments_revision),
        interval: interval_field(a.interval_ms, "interval_ms")?,
        leader: a.leader.map(Into::into),
    })
}

/// The JSON encoding of a spec. Serializing a `WorkloadSpec` (plain data, string map keys)
/// cannot fail; should it ever, the body is empty and the receiver refuses it by name.
fn spec_to_wire(spec: &WorkloadSpec) -> pb::EncodedWorkloadSpec {
    let body = serde_json::to_vec(spec).unwrap_or_default();
    pb::EncodedWorkloadSpec {
        format: SPEC_FORMAT_JSON,
        body: body.into(),
    }
}

fn spec_from_wire(s: Option<pb::EncodedWorkloadSpec>) -> Result<WorkloadSpec, MessageError> {
    let s = s.ok_or_else(|| WireError::missing("spec"))?;
    if s.format != SPEC_FORMAT_JSON {
        return Err(MessageError::UnknownSpecFormat {
            field: "spec.format".to_owned(),
            format: s.format,
        });
    }
    serde_json::from_slice(&s.body).map_err(|e| MessageError::Spec {
        field: "spec.body".to_owned(),
        reason: e.to_string(),
    })
}

/// Encodes one assigned replica (its spec as JSON).
pub fn assigned_to_wire(a: &AssignedReplica) -> pb::ControlAssignedReplica {
    pb::ControlAssignedReplica {
        replica: Some(a.replica.clone().into()),
        namespace: a.namespace.clone(),
        workload_name: a.workload_name.clone(),
        spec: Some(spec_to_wire(&a.spec)),
    }
}

/// Decodes one assigned replica.
pub fn assigned_from_wire(a: pb::ControlAssignedReplica) -> Result<AssignedReplica, MessageError> {
    let replica = a.replica.ok_or_else(|| WireError::missing("replica"))?;
    Ok(AssignedReplica {
        replica: Replica::try_from(replica).map_err(|e| e.within("replica"))?,
        namespace: a.namespace,
        workload_name: a.workload_name,
        spec: spec_from_wire(a.spec)?,
    })
}

/// Encodes an assignment set.
pub fn set_to_wire(s: &AssignmentSet) -> pb::ControlAssignmentSet {
    pb::ControlAssignmentSet {
        revision: s.revision.get(),
        replicas: s.replicas.iter().map(assigned_to_wire).collect(),
    }
}

/// Decodes an assignment set.
pub fn set_from_wire(s: pb::ControlAssignmentSet) -> Result<AssignmentSet, MessageError> {
    let replicas = s
        .replicas
        .into_iter()
        .enumerate()
        .map(|(i, r)| assigned_from_wire(r).map_err(|e| e.within(&format!("replicas[{i}]"))))
        .collect::<Result<_, _>>()?;
    Ok(AssignmentSet {
        revision: Revision(s.revision),
        replicas,
    })
}

/// Encodes one replica report.
pub fn report_to_wire(r: &ReplicaReport) -> pb::ControlReplicaReport {
    pb::ControlReplicaReport {
        replica: r.replica.get(),
        workload: r.workload.get(),
        generation: r.generation.get(),
        phase: phase_to_wire(r.phase),
        ready: r.ready,
        restarts: r.restarts,
        address: r.address.clone(),
        message: r.message.clone(),
    }
}

/// Decodes one replica report.
pub fn report_from_wire(r: pb::ControlReplicaReport) -> Result<ReplicaReport, MessageError> {
    Ok(ReplicaReport {
        replica: ReplicaId(r.replica),
        workload: WorkloadId(r.workload),
        generation: Generation(r.generation),
        phase: phase_field(r.phase, "phase")?,
        ready: r.ready,
        restarts: r.restarts,
        address: r.address,
        message: r.message,
    })
}

/// Decodes a list of replica reports (errors name the index).
pub fn reports_from_wire(
    reports: Vec<pb::ControlReplicaReport>,
) -> Result<Vec<ReplicaReport>, MessageError> {
    reports
        .into_iter()
        .enumerate()
        .map(|(i, r)| report_from_wire(r).map_err(|e| e.within(&format!("reports[{i}]"))))
        .collect()
}

/// Encodes one stop report.
pub fn stopped_to_wire(s: &StoppedReplica) -> pb::ControlStoppedReplica {
    pb::ControlStoppedReplica {
        replica: s.replica.get(),
        set_revision: s.set_revision.get(),
    }
}

/// Decodes a list of stop reports (every field is a plain integer: nothing can be invalid).
pub fn stopped_from_wire(stopped: Vec<pb::ControlStoppedReplica>) -> Vec<StoppedReplica> {
    stopped
        .into_iter()
        .map(|s| StoppedReplica {
            replica: ReplicaId(s.replica),
            set_revision: Revision(s.set_revision),
        })
        .collect()
}
