//! Opening a coordinator's data directory: the log store and the state machine over one redb
//! file, with the state machine restored from the stored snapshot.

use std::path::Path;
use std::sync::Arc;

use cloudless_core::state::ClusterState;

use crate::db::{self, DATA_FILE, OpenError};
use crate::history::Hub;
use crate::log_store::RedbLogStore;
use crate::state_machine::{RedbStateMachine, decode_body, load_snapshot};
use crate::types::StoredMembership;

/// How many applied changes the watch history keeps by default.
pub const DEFAULT_RETAINED_CHANGES: usize = 10_000;

/// The storage of one coordinator, ready to hand to openraft.
pub struct OpenedStore {
    /// The raft log, vote and committed index.
    pub log: RedbLogStore,
    /// The state machine and its snapshots.
    pub state_machine: RedbStateMachine,
    pub(crate) hub: Arc<Hub>,
}

impl std::fmt::Debug for OpenedStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenedStore").finish_non_exhaustive()
    }
}

/// Opens (or creates) the store in `dir`, keeping `retained_changes` changes of watch
/// history. A corrupted, foreign or future-version file is refused with a typed error and
/// left untouched.
pub fn open_store(dir: &Path, retained_changes: usize) -> Result<OpenedStore, OpenError> {
    let db = db::open(dir)?;
    let path = dir.join(DATA_FILE);
    let corrupt = |reason: String| OpenError::Corrupt {
        path: path.clone(),
        reason,
    };
    let (state, last_applied, membership) = match load_snapshot(&db).map_err(corrupt)? {
        Some(stored) => {
            let state = match decode_body(&stored.data) {
                Ok(state) => state,
                Err(crate::state_machine::SnapshotError::Future { found, state }) => {
                    return Err(OpenError::FutureVersion {
                        path,
                        found: found.max(state),
                        supported: crate::state_machine::SNAPSHOT_FORMAT_VERSION,
                    });
                }
                Err(e) => return Err(corrupt(e.to_string())),
            };
            (state, stored.meta.last_log_id, stored.meta.last_membership)
        }
        None => (ClusterState::new(), None, StoredMembership::default()),
    };
    let hub = Hub::new(state, last_applied, membership, retained_changes);
    Ok(OpenedStore {
        log: RedbLogStore::new(Arc::clone(&db)),
        state_machine: RedbStateMachine::new(db, Arc::clone(&hub)),
        hub,
    })
}
