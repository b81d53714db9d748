//! Cloudless errors as gRPC statuses.
//!
//! | error | code |
//! |---|---|
//! | manifest problems | InvalidArgument, field paths in `cloudless-field-paths` |
//! | `NotFound` | NotFound |
//! | `AlreadyExists` | AlreadyExists |
//! | generation conflict, node unavailable, does not fit, token refused, transition | FailedPrecondition |
//! | invalid command | InvalidArgument |
//! | not the leader, no quorum, shut down | Unavailable, leader in `cloudless-leader(-addr)` |
//! | watch revision compacted | OutOfRange |
//! | storage and other failures | Internal |

use cloudless_core::consensus::ConsensusError;
use cloudless_core::ids::NodeId;
use cloudless_core::manifest::ManifestErrors;
use cloudless_core::state::ApplyError;
use tonic::Status;
use tonic::metadata::MetadataValue;

use super::{FIELD_PATHS_KEY, LEADER_ADDR_KEY, LEADER_KEY};

/// Longest field-path list put into metadata (the message has them all).
const MAX_PATHS_BYTES: usize = 4096;

/// An invalid manifest: InvalidArgument, every problem in the message, the paths in metadata.
pub(crate) fn manifest(errors: &ManifestErrors) -> Status {
    let mut status = Status::invalid_argument(format!("invalid manifest:\n{errors}"));
    let mut paths = String::new();
    for p in errors.paths() {
        if p.is_empty() || paths.len() + p.len() + 1 > MAX_PATHS_BYTES {
            continue;
        }
        if !paths.is_empty() {
            paths.push(',');
        }
        paths.push_str(p);
    }
    if let Ok(v) = MetadataValue::try_from(paths.as_str()) {
        status.metadata_mut().insert(FIELD_PATHS_KEY, v);
    }
    status
}

/// InvalidArgument naming one request field.
pub(crate) fn invalid(field: &str, why: impl std::fmt::Display) -> Status {
    let mut status = Status::invalid_argument(format!("{field}: {why}"));
    if let Ok(v) = MetadataValue::try_from(field) {
        status.metadata_mut().insert(FIELD_PATHS_KEY, v);
    }
    status
}

/// Unavailable with the leader hint (if any) in metadata.
pub(crate) fn unavailable(
    message: impl Into<String>,
    leader: Option<(NodeId, Option<String>)>,
) -> Status {
    let mut status = Status::unavailable(message);
    if let Some((id, addr)) = leader {
        if let Ok(v) = MetadataValue::try_from(id.get().to_string()) {
            status.metadata_mut().insert(LEADER_KEY, v);
        }
        if let Some(Ok(v)) = addr.map(|a| MetadataValue::try_from(a.as_str())) {
            status.metadata_mut().insert(LEADER_ADDR_KEY, v);
        }
    }
    status
}

/// A rejected command.
pub(crate) fn apply(e: &ApplyError) -> Status {
    match e {
        ApplyError::NotFound { .. } => Status::not_found(e.to_string()),
        ApplyError::AlreadyExists { .. } => Status::already_exists(e.to_string()),
        ApplyError::Invalid(_) => Status::invalid_argument(e.to_string()),
        ApplyError::GenerationConflict { .. }
        | ApplyError::DoesNotFit { .. }
        | ApplyError::NodeUnavailable { .. }
        | ApplyError::InvalidTransition { .. }
        | ApplyError::TokenRefused { .. }
        | ApplyError::UnsupportedVersion { .. } => Status::failed_precondition(e.to_string()),
    }
}

/// A consensus failure; `leader_addr` resolves a leader id to its API address.
pub(crate) fn consensus(
    e: &ConsensusError,
    leader_addr: impl Fn(NodeId) -> Option<String>,
) -> Status {
    match e {
        ConsensusError::Rejected(a) => apply(a),
        ConsensusError::NotLeader { leader } => unavailable(
            "this coordinator is not the leader; retry at the leader",
            leader.map(|l| (l, leader_addr(l))),
        ),
        ConsensusError::Unavailable(_) | ConsensusError::Shutdown => {
            unavailable(e.to_string(), None)
        }
        ConsensusError::Compacted { .. } => Status::out_of_range(e.to_string()),
        ConsensusError::Membership(_) => Status::failed_precondition(e.to_string()),
        ConsensusError::Storage(_) | ConsensusError::Other(_) => Status::internal(e.to_string()),
    }
}
