//! Operator snapshots: [`save`] a consistent copy of a coordinator's cluster state to a file,
//! and [`restore`] it as the data directory of a new single-member cluster.
//!
//! File layout (all integers big-endian):
//!
//! ```text
//!  0  magic      8 bytes  "CLDSNAP\n"
//!  8  version    u32      SNAPSHOT_FILE_VERSION (1)
//! 12  length     u64      payload bytes
//! 20  sha256    32 bytes  SHA-256 of the payload
//! 52  payload             CBOR {format: 1, state: ClusterState} (the raft snapshot body)
//! ```
//!
//! The file is written with mode 0600 to a temporary name, flushed, and renamed into place,
//! so a crash never leaves a half-written snapshot under the final name. Reading checks the
//! magic, the version (a newer one is refused, never misread), the length and the checksum
//! before decoding anything.
//!
//! ```rust
//! use cloudless_core::ids::NodeId;
//! use cloudless_core::state::{ClusterState, Command, CommandEnvelope, apply};
//! use cloudless_store::snapshot::{self, SnapshotFileError};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let mut state = ClusterState::new();
//! let token = Command::PruneJoinTokens { now_ms: 1_000 };
//! apply(&mut state, &CommandEnvelope::new(1_000, token))?;
//!
//! let file = dir.path().join("state.cldsnap");
//! let info = snapshot::save(&state, &file)?;
//! assert_eq!(info.revision, state.revision);
//! assert_eq!(snapshot::read(&file)?, state);
//! // Never overwritten, and verified before use.
//! assert!(matches!(snapshot::save(&state, &file), Err(SnapshotFileError::Exists { .. })));
//! std::fs::write(dir.path().join("junk"), b"not a snapshot")?;
//! assert!(snapshot::read(&dir.path().join("junk")).is_err());
//!
//! // The data directory of a new single-member cluster, started with `RaftConsensus::start`.
//! let restored = snapshot::restore(&file, &dir.path().join("n1"), NodeId(1), "mem://1".into())?;
//! assert_eq!(restored.revision, state.revision);
//! # Ok(())
//! # }
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use cloudless_core::consensus::{Consensus, ConsensusError};
use cloudless_core::ids::{NodeId, Revision};
use cloudless_core::state::ClusterState;
use openraft::{BasicNode, CommittedLeaderId, Membership, SnapshotMeta, Vote};
use redb::ReadableTable;
use sha2::{Digest, Sha256};

use crate::consensus::RaftConsensus;
use crate::db::{
    KEY_COMMITTED, KEY_PURGED, KEY_SNAPSHOT, KEY_VOTE, KEY_WAL, LOG, META, OpenError, SNAPSHOT,
};
use crate::state_machine::{
    SNAPSHOT_FORMAT_VERSION, SnapshotBody, SnapshotError, StoredSnapshot, decode_body,
};
use crate::store::{OpenedStore, open_store};
use crate::types::{LogId, StoredMembership, encode};

/// The first bytes of every snapshot file.
pub const SNAPSHOT_MAGIC: &[u8; 8] = b"CLDSNAP\n";

/// The snapshot file format this build writes and reads.
pub const SNAPSHOT_FILE_VERSION: u32 = 1;

const HEADER_LEN: usize = 8 + 4 + 8 + 32;

/// What a saved or restored snapshot holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotInfo {
    /// The revision of the saved state.
    pub revision: Revision,
    /// Bytes of the file.
    pub bytes: u64,
}

/// Why a snapshot could not be saved or restored. Each names the file or directory at fault.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotFileError {
    /// Reading or writing `path` failed.
    #[error("snapshot I/O on {path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// `save` refuses to replace an existing file.
    #[error("{path} already exists; choose another file name")]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file does not start with the snapshot magic.
    #[error("{path} is not a Cloudless snapshot file")]
    NotASnapshot {
        /// The file.
        path: PathBuf,
    },
    /// The file was written by a newer build.
    #[error("{path} has snapshot format {found}; this build supports up to {supported}")]
    FutureVersion {
        /// The file.
        path: PathBuf,
        /// Version in the file (file format, or the state format inside it).
        found: u32,
        /// Newest version this build reads.
        supported: u32,
    },
    /// The file is shorter or longer than its header says.
    #[error("{path} is truncated or padded: {found} payload bytes, header says {expected}")]
    Length {
        /// The file.
        path: PathBuf,
        /// Payload length from the header.
        expected: u64,
        /// Payload bytes present.
        found: u64,
    },
    /// The payload does not match its checksum.
    #[error("{path} is corrupted: checksum mismatch")]
    Checksum {
        /// The file.
        path: PathBuf,
    },
    /// The payload passed the checksum but does not decode.
    #[error("{path} does not decode: {reason}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `restore` refuses a data directory that already has files.
    #[error("data directory {path} is not empty; restore needs a new, empty directory")]
    NotEmpty {
        /// The directory.
        path: PathBuf,
    },
    /// The new data directory could not be created.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// Writing the new data directory failed.
    #[error("writing the restored data in {path} failed: {reason}")]
    Storage {
        /// The directory.
        path: PathBuf,
        /// The cause.
        reason: String,
    },
    /// The member could not serve a linearizable read to save.
    #[error("cannot read the cluster state to save: {0}")]
    Consensus(#[from] ConsensusError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> SnapshotFileError + '_ {
    move |source| SnapshotFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Saves the state of the cluster `member` belongs to, read linearizably (the member must be
/// the leader or answers `NotLeader`), to a new file at `path` (mode 0600).
pub async fn save_from(
    member: &RaftConsensus,
    path: &Path,
) -> Result<SnapshotInfo, SnapshotFileError> {
    let state = member.state().await?;
    save(&state, path)
}

/// Saves `state` to a new file at `path` with mode 0600. Refuses to replace an existing file.
pub fn save(state: &ClusterState, path: &Path) -> Result<SnapshotInfo, SnapshotFileError> {
    if std::fs::symlink_metadata(path).is_ok() {
        return Err(SnapshotFileError::Exists {
            path: path.to_path_buf(),
        });
    }
    let payload = encode(&SnapshotBody {
        format: SNAPSHOT_FORMAT_VERSION,
        state: state.clone(),
    })
    .map_err(|e| SnapshotFileError::Decode {
        path: path.to_path_buf(),
        reason: format!("cannot encode the state: {e}"),
    })?;
    let mut bytes = Vec::with_capacity(HEADER_LEN + payload.len());
    bytes.extend_from_slice(SNAPSHOT_MAGIC);
    bytes.extend_from_slice(&SNAPSHOT_FILE_VERSION.to_be_bytes());
    bytes.extend_from_slice(&(payload.len() as u64).to_be_bytes());
    bytes.extend_from_slice(&Sha256::digest(&payload));
    bytes.extend_from_slice(&payload);

    let mut tmp_name = path.as_os_str().to_owned();
    tmp_name.push(".tmp");
    let tmp = PathBuf::from(tmp_name);
    write_private(&tmp, &bytes).map_err(io(&tmp))?;
    if let Err(e) = std::fs::rename(&tmp, path) {
        drop(std::fs::remove_file(&tmp));
        return Err(io(path)(e));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Make the rename durable; a directory that cannot be opened for sync is not an error
        // worth failing a finished save on some filesystems, so only report real I/O errors.
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(SnapshotInfo {
        revision: state.revision,
        bytes: bytes.len() as u64,
    })
}

/// Writes `bytes` to `path` (created or truncated) with mode 0600 and flushes it to disk.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    // A leftover temporary file keeps its old mode: set it explicitly.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.write_all(bytes)?;
    file.sync_all()
}

/// Reads and verifies the snapshot file at `path`: magic, version, length, checksum, then
/// the state inside.
pub fn read(path: &Path) -> Result<ClusterState, SnapshotFileError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let p = || path.to_path_buf();
    if bytes.len() < HEADER_LEN || &bytes[..8] != SNAPSHOT_MAGIC {
        return Err(SnapshotFileError::NotASnapshot { path: p() });
    }
    let (version, rest) = bytes[8..].split_at(4);
    let version = u32::from_be_bytes(version.try_into().unwrap_or([0xff; 4]));
    if version > SNAPSHOT_FILE_VERSION {
        return Err(SnapshotFileError::FutureVersion {
            path: p(),
            found: version,
            supported: SNAPSHOT_FILE_VERSION,
        });
    }
    if version == 0 {
        return Err(SnapshotFileError::NotASnapshot { path: p() });
    }
    let (length, rest) = rest.split_at(8);
    let expected = u64::from_be_bytes(length.try_into().unwrap_or([0xff; 8]));
    let (digest, payload) = rest.split_at(32);
    if payload.len() as u64 != expected {
        return Err(SnapshotFileError::Length {
            path: p(),
            expected,
            found: payload.len() as u64,
        });
    }
    if Sha256::digest(payload).as_slice() != digest {
        return Err(SnapshotFileError::Checksum { path: p() });
    }
    decode_body(payload).map_err(|e| match e {
        SnapshotError::Future { found, state } => SnapshotFileError::FutureVersion {
            path: p(),
            found: found.max(state),
            supported: SNAPSHOT_FORMAT_VERSION,
        },
        other => SnapshotFileError::Decode {
            path: p(),
            reason: other.to_string(),
        },
    })
}

/// Creates, in the new or empty directory `dir`, the data of a single-member cluster whose
/// only voter is `id` at `address` and whose state is the snapshot in `file`. Started with
/// [`RaftConsensus::start`], the member elects itself; add members with `add_voter`.
pub fn restore(
    file: &Path,
    dir: &Path,
    id: NodeId,
    address: String,
) -> Result<SnapshotInfo, SnapshotFileError> {
    let state = read(file)?;
    let bytes = std::fs::metadata(file).map_err(io(file))?.len();
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(SnapshotFileError::NotEmpty {
                    path: dir.to_path_buf(),
                });
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(dir)(e)),
    }
    let revision = state.revision;
    let store = open_store(dir, 1)?;
    // A fresh cluster's first term; the index only has to be past everything (nothing).
    let last = LogId::new(CommittedLeaderId::new(1, id.0), revision.0.max(1));
    write_single_member(&store, state, last, id, address).map_err(|reason| {
        SnapshotFileError::Storage {
            path: dir.to_path_buf(),
            reason,
        }
    })?;
    Ok(SnapshotInfo { revision, bytes })
}

/// Replaces the data of `store` (which must not be running) with a snapshot of `state` at
/// `last` whose membership is `id` alone, an empty log purged up to `last`, and a vote for
/// `id` in `last`'s term — in one durable transaction.
pub(crate) fn write_single_member(
    store: &OpenedStore,
    state: ClusterState,
    last: LogId,
    id: NodeId,
    address: String,
) -> Result<(), String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    let membership = Membership::new(
        vec![BTreeSet::from([id.0])],
        BTreeMap::from([(id.0, BasicNode::new(address))]),
    );
    let data = encode(&SnapshotBody {
        format: SNAPSHOT_FORMAT_VERSION,
        state,
    })
    .map_err(|e| s(&e))?;
    let snapshot = StoredSnapshot {
        meta: SnapshotMeta {
            last_log_id: Some(last),
            last_membership: StoredMembership::new(Some(last), membership),
            snapshot_id: format!("single-{}-{}", last.leader_id, last.index),
        },
        data,
    };
    let snapshot = encode(&snapshot).map_err(|e| s(&e))?;
    let purged = encode(&last).map_err(|e| s(&e))?;
    let committed = encode(&Some(last)).map_err(|e| s(&e))?;
    let vote = encode(&Vote::new(last.leader_id.term, id.0)).map_err(|e| s(&e))?;
    let db = store.state_machine.db();
    let txn = db.begin_write().map_err(|e| s(&e))?;
    {
        let mut log = txn.open_table(LOG).map_err(|e| s(&e))?;
        log.retain_in(0u64.., |_, _| false).map_err(|e| s(&e))?;
        let mut meta = txn.open_table(META).map_err(|e| s(&e))?;
        meta.insert(KEY_PURGED, purged.as_slice())
            .map_err(|e| s(&e))?;
        meta.insert(KEY_COMMITTED, committed.as_slice())
            .map_err(|e| s(&e))?;
        meta.insert(KEY_VOTE, vote.as_slice()).map_err(|e| s(&e))?;
        // A new write-ahead log generation: the old file (the old log) becomes stale at once,
        // atomically with the new snapshot, and is removed at the next open.
        let generation = match meta.get(KEY_WAL).map_err(|e| s(&e))? {
            Some(v) => u64::from_be_bytes(v.value().try_into().unwrap_or([0; 8])),
            None => 0,
        };
        meta.insert(KEY_WAL, (generation + 1).to_be_bytes().as_slice())
            .map_err(|e| s(&e))?;
        let mut snap = txn.open_table(SNAPSHOT).map_err(|e| s(&e))?;
        snap.insert(KEY_SNAPSHOT, snapshot.as_slice())
            .map_err(|e| s(&e))?;
    }
    txn.commit().map_err(|e| s(&e))?;
    Ok(())
}
