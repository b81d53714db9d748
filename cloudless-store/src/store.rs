//! Opening a coordinator's data directory: the log store and the state machine over one redb
//! file, with the state machine restored from the stored snapshot.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use cloudless_core::state::ClusterState;

use crate::db::{self, DATA_FILE, OpenError};
use crate::history::{Hub, new_hub};
use crate::log_store::RedbLogStore;
use crate::writer::Writer;
use redb::ReadableDatabase;

use crate::state_machine::{
    RedbStateMachine, SNAPSHOT_FORMAT_VERSION, SnapshotError, decode_body, load_snapshot,
};
use crate::types::{LogId, StoredMembership};

/// How many applied changes the watch history keeps by default.
pub const DEFAULT_RETAINED_CHANGES: usize = 10_000;

/// The storage of one coordinator, ready to hand to openraft.
pub struct OpenedStore {
    /// The raft log, vote and committed index.
    pub log: RedbLogStore,
    /// The state machine and its snapshots.
    pub state_machine: RedbStateMachine,
    pub(crate) hub: Arc<Hub>,
    /// Log bytes appended since the last snapshot started.
    pub(crate) appended: Arc<AtomicU64>,
}

impl std::fmt::Debug for OpenedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedStore").finish_non_exhaustive()
    }
}

/// The state the stored snapshot holds (empty without one): state, last log id, membership.
pub(crate) fn restored_state(
    path: &Path,
    db: &impl ReadableDatabase,
) -> Result<(ClusterState, Option<LogId>, StoredMembership), OpenError> {
    let corrupt = |reason: String| OpenError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let Some(stored) = load_snapshot(db).map_err(corrupt)? else {
        return Ok((ClusterState::new(), None, StoredMembership::default()));
    };
    match decode_body(&stored.data) {
        Ok(state) => Ok((state, stored.meta.last_log_id, stored.meta.last_membership)),
        Err(SnapshotError::Future { found, state }) => Err(OpenError::FutureVersion {
            path: path.to_path_buf(),
            found: found.max(state),
            supported: SNAPSHOT_FORMAT_VERSION,
        }),
        Err(e) => Err(corrupt(e.to_string())),
    }
}

/// Opens (or creates) the store in `dir`, keeping `retained_changes` changes of watch
/// history. A corrupted, foreign or future-version file is refused with a typed error and
/// left untouched.
pub fn open_store(dir: &Path, retained_changes: usize) -> Result<OpenedStore, OpenError> {
    let db = db::open(dir)?;
    let (state, last_applied, membership) = restored_state(&dir.join(DATA_FILE), &*db)?;
    let hub = new_hub(state, last_applied, membership, retained_changes);
    let appended = Arc::new(AtomicU64::new(0));
    let writer = Writer::start(&db).map_err(|source| OpenError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    Ok(OpenedStore {
        log: RedbLogStore::new(Arc::clone(&db), writer, Arc::clone(&appended)),
        state_machine: RedbStateMachine::new(db, Arc::clone(&hub), Arc::clone(&appended)),
        hub,
        appended,
    })
}
