//! The agent's state file: the assignment set it last fetched and its per-replica counters, so a
//! restarted agent supervises the same replicas without the coordinators (NFR-A1).
//!
//! Format: one JSON document `{"format":"cloudless-agent-state","version":1,"node":..,
//! "savedAtMs":..,"assignments":..,"records":..}` at
//! `<data_dir>/agent-state.json`, written atomically (temp file, fsync, rename, fsync of the
//! directory), mode 0600, in a 0700 directory. The version is checked before the body is
//! decoded, so a newer agent's file is refused with a clear error instead of misread.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cloudless_core::ids::{NodeId, ReplicaId, Revision};
use cloudless_core::replica::Replica;
use cloudless_core::workload::WorkloadSpec;
use cloudless_runtime::supervisor::ReplicaRecord;
use serde::{Deserialize, Serialize};

use crate::control::{AssignedReplica, AssignmentSet};

/// Name of the state file inside the data dir.
pub(crate) const STATE_FILE: &str = "agent-state.json";
const FORMAT: &str = "cloudless-agent-state";
/// The format version this agent writes and reads.
pub(crate) const VERSION: u32 = 1;

/// Why the state could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Reading or writing failed.
    #[error("agent state {path}: {op}: {reason}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done.
        op: &'static str,
        /// The OS error.
        reason: String,
    },
    /// The file is not a valid state file.
    #[error("agent state {path} is corrupt: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file was written by a newer (or unknown) agent version.
    #[error("agent state {path} has format version {found}; this agent reads version {supported}")]
    UnsupportedVersion {
        /// The file.
        path: PathBuf,
        /// The version in the file.
        found: u64,
        /// The version this agent reads.
        supported: u32,
    },
    /// The data dir belongs to another node.
    #[error("agent state {path} belongs to node {found}, not {expected}")]
    WrongNode {
        /// The file.
        path: PathBuf,
        /// The node in the file.
        found: NodeId,
        /// This agent's node.
        expected: NodeId,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoredReplica {
    replica: Replica,
    namespace: String,
    workload_name: String,
    spec: WorkloadSpec,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StoredAssignments {
    revision: Revision,
    replicas: Vec<StoredReplica>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct StateFile {
    format: String,
    version: u32,
    node: NodeId,
    /// Wall-clock time of the write (ms since the Unix epoch), for operators.
    #[serde(default)]
    saved_at_ms: u64,
    #[serde(default)]
    assignments: Option<StoredAssignments>,
    #[serde(default)]
    records: BTreeMap<ReplicaId, ReplicaRecord>,
}

/// What the agent persists.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct AgentState {
    /// The assignment set last fetched, if any.
    pub(crate) assignments: Option<AssignmentSet>,
    /// Per-replica counters.
    pub(crate) records: BTreeMap<ReplicaId, ReplicaRecord>,
}

fn io_err(path: &Path, op: &'static str, e: std::io::Error) -> StateError {
    StateError::Io {
        path: path.to_owned(),
        op,
        reason: e.to_string(),
    }
}

/// Creates the data dir (0700) if missing. An existing directory keeps its mode (it may be
/// shared on purpose), but one open to other users is logged.
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), StateError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_err(dir, "create directory", e))?;
    let mode = fs::metadata(dir)
        .map_err(|e| io_err(dir, "stat directory", e))?
        .permissions()
        .mode();
    if mode & 0o077 != 0 {
        tracing::warn!(dir = %dir.display(), mode = format!("{:o}", mode & 0o777), "agent data dir is accessible to other users; 0700 is recommended");
    }
    Ok(())
}

/// Loads the state of `node` from `dir`; no file means an empty state.
pub(crate) fn load(dir: &Path, node: NodeId) -> Result<AgentState, StateError> {
    let path = dir.join(STATE_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AgentState::default()),
        Err(e) => return Err(io_err(&path, "read", e)),
    };
    decode(&path, &bytes, node)
}

fn decode(path: &Path, bytes: &[u8], node: NodeId) -> Result<AgentState, StateError> {
    let corrupt = |reason: String| StateError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| corrupt(format!("not JSON: {e}")))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(corrupt(format!("field `format` is not \"{FORMAT}\"")));
    }
    let version = value
        .get("version")
        .and_then(serde_json::Value::as_u64)
        .ok_or_else(|| corrupt("field `version` is missing or not a number".into()))?;
    if version != u64::from(VERSION) {
        return Err(StateError::UnsupportedVersion {
            path: path.to_owned(),
            found: version,
            supported: VERSION,
        });
    }
    let file: StateFile = serde_json::from_value(value).map_err(|e| corrupt(e.to_string()))?;
    if file.node != node {
        return Err(StateError::WrongNode {
            path: path.to_owned(),
            found: file.node,
            expected: node,
        });
    }
    Ok(AgentState {
        assignments: file.assignments.map(|a| AssignmentSet {
            revision: a.revision,
            replicas: a
                .replicas
                .into_iter()
                .map(|r| AssignedReplica {
                    replica: r.replica,
                    namespace: r.namespace,
                    workload_name: r.workload_name,
                    spec: r.spec,
                })
                .collect(),
        }),
        records: file.records,
    })
}

/// The bytes of `state` for `node`, stamped with `now_ms`.
pub(crate) fn encode(
    state: &AgentState,
    node: NodeId,
    now_ms: u64,
) -> Result<Vec<u8>, serde_json::Error> {
    let file = StateFile {
        format: FORMAT.to_owned(),
        version: VERSION,
        node,
        saved_at_ms: now_ms,
        assignments: state.assignments.as_ref().map(|a| StoredAssignments {
            revision: a.revision,
            replicas: a
                .replicas
                .iter()
                .map(|r| StoredReplica {
                    replica: r.replica.clone(),
                    namespace: r.namespace.clone(),
                    workload_name: r.workload_name.clone(),
                    spec: r.spec.clone(),
                })
                .collect(),
        }),
        records: state.records.clone(),
    };
    serde_json::to_vec_pretty(&file)
}

/// Writes `bytes` as the state file in `dir`, atomically.
pub(crate) fn write_atomic(dir: &Path, bytes: &[u8]) -> Result<(), StateError> {
    let path = dir.join(STATE_FILE);
    let tmp = dir.join(format!("{STATE_FILE}.tmp"));
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|e| io_err(&tmp, "create", e))?;
    f.write_all(bytes).map_err(|e| io_err(&tmp, "write", e))?;
    f.sync_all().map_err(|e| io_err(&tmp, "fsync", e))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(|e| io_err(&path, "rename", e))?;
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_err(dir, "fsync directory", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudless_core::ids::{Generation, WorkloadId};
    use cloudless_core::replica::ReplicaPhase;
    use cloudless_core::resources::Resources;

    fn state() -> AgentState {
        let replica = Replica {
            id: ReplicaId(4),
            workload: WorkloadId(2),
            generation: Generation(1),
            node: NodeId(9),
            resources: Resources::default(),
            phase: ReplicaPhase::Pending,
            ready: false,
            restarts: 0,
            address: None,
            assigned_at_ms: 5,
            message: String::new(),
            host_ports: None,
        };
        let mut records = BTreeMap::new();
        records.insert(
            ReplicaId(4),
            ReplicaRecord {
                next_attempt: 3,
                restarts: 2,
                consecutive: 1,
                ready: true,
            },
        );
        AgentState {
            assignments: Some(AssignmentSet {
                revision: Revision(17),
                replicas: vec![AssignedReplica {
                    replica,
                    namespace: "default".into(),
                    workload_name: "web".into(),
                    spec: WorkloadSpec::new("img"),
                }],
            }),
            records,
        }
    }

    #[test]
    fn round_trip_mode_and_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("agent");
        ensure_dir(&d).expect("dir");
        assert_eq!(load(&d, NodeId(9)).expect("empty"), AgentState::default());
        let s = state();
        write_atomic(
            &d,
            &encode(&s, NodeId(9), 1_700_000_000_000).expect("encode"),
        )
        .expect("write");
        assert_eq!(load(&d, NodeId(9)).expect("load"), s);
        let mode = fs::metadata(d.join(STATE_FILE))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let dmode = fs::metadata(&d).expect("meta").permissions().mode();
        assert_eq!(dmode & 0o777, 0o700);
        assert!(matches!(
            load(&d, NodeId(8)),
            Err(StateError::WrongNode { .. })
        ));

        fs::write(d.join(STATE_FILE), b"{not json").expect("write");
        let e = load(&d, NodeId(9)).expect_err("corrupt");
        assert!(matches!(e, StateError::Corrupt { .. }), "{e}");
        assert!(e.to_string().contains(STATE_FILE), "{e}");

        let future = br#"{"format":"cloudless-agent-state","version":7,"node":9}"#;
        fs::write(d.join(STATE_FILE), future).expect("write");
        let e = load(&d, NodeId(9)).expect_err("future");
        assert!(
            matches!(e, StateError::UnsupportedVersion { found: 7, .. }),
            "{e}"
        );

        let wrong_field = br#"{"format":"cloudless-agent-state","version":1,"node":9,"x":1}"#;
        fs::write(d.join(STATE_FILE), wrong_field).expect("write");
        assert!(matches!(
            load(&d, NodeId(9)),
            Err(StateError::Corrupt { .. })
        ));
    }
}
