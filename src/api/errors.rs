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
        | ApplyError::HostPortInUse { .. }
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

#[cfg(test)]
mod tests {
    use super::*;
    use cloudless_core::ids::Generation;
    use cloudless_core::manifest::ManifestError;
    use cloudless_core::state::ObjectKind;
    use tonic::Code;

    #[test]
    fn apply_errors_map_to_codes() {
        let nf = ApplyError::NotFound {
            kind: ObjectKind::Workload,
            key: "w1".into(),
        };
        assert_eq!(apply(&nf).code(), Code::NotFound);
        let ae = ApplyError::AlreadyExists {
            kind: ObjectKind::Workload,
            key: "default/web".into(),
        };
        assert_eq!(apply(&ae).code(), Code::AlreadyExists);
        let gc = ApplyError::GenerationConflict {
            expected: Generation(1),
            current: Generation(2),
        };
        assert_eq!(apply(&gc).code(), Code::FailedPrecondition);
        assert_eq!(
            apply(&ApplyError::Invalid("x".into())).code(),
            Code::InvalidArgument
        );
    }

    #[test]
    fn not_leader_carries_the_hint() {
        let s = consensus(
            &ConsensusError::NotLeader {
                leader: Some(NodeId(3)),
            },
            |id| (id == NodeId(3)).then(|| "10.0.0.3:7443".to_owned()),
        );
        assert_eq!(s.code(), tonic::Code::Unavailable);
        let get = |k| s.metadata().get(k).and_then(|v| v.to_str().ok());
        assert_eq!(get(LEADER_KEY), Some("3"));
        assert_eq!(get(LEADER_ADDR_KEY), Some("10.0.0.3:7443"));
        let s = consensus(&ConsensusError::NotLeader { leader: None }, |_| None);
        assert!(s.metadata().get(LEADER_KEY).is_none());
        let c = ConsensusError::Compacted {
            requested: cloudless_core::ids::Revision(1),
            oldest: cloudless_core::ids::Revision(5),
        };
        assert_eq!(consensus(&c, |_| None).code(), tonic::Code::OutOfRange);
    }

    #[test]
    fn manifest_errors_list_their_paths() {
        let e = |path: &str| ManifestError {
            document: 0,
            path: path.into(),
            line: Some(3),
            column: None,
            message: "bad".into(),
        };
        let s = manifest(&ManifestErrors::new(vec![
            e("spec.replicas"),
            e(""),
            e("metadata.name"),
        ]));
        assert_eq!(s.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            s.metadata()
                .get(FIELD_PATHS_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("spec.replicas,metadata.name")
        );
        assert!(
            s.message().contains("spec.replicas: bad"),
            "{}",
            s.message()
        );
    }
}
