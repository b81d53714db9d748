//! Opening a coordinator's data directory: the log store and the state machine over one redb
//! file, with the state machine restored from the stored snapshot.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use cloudless_core::state::ClusterState;

use crate::db::{self, DATA_FILE, KEY_COMMITTED, KEY_PURGED, KEY_WAL, OpenError};
use crate::history::{Hub, new_hub};
use crate::log_store::RedbLogStore;
use crate::types::decode;
use crate::wal::{Record, Replayed, Wal};
use crate::writer::Writer;
use redb::Database;
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

/// Opens the write-ahead log of the generation recorded in redb and replays it. Entries of a
/// store written before the write-ahead file existed (in redb's `log` table) are moved into it
/// first; the purge point is the later of redb's (written by offline recovery and restore)
/// and the file's.
fn open_log(dir: &Path, db: &Database) -> Result<(Wal, Replayed), OpenError> {
    let path = dir.join(DATA_FILE);
    let corrupt = |reason: String| OpenError::Corrupt {
        path: path.clone(),
        reason,
    };
    let generation = match db::get_meta(db, KEY_WAL).map_err(|e| corrupt(e.to_string()))? {
        Some(bytes) => u64::from_be_bytes(
            bytes
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("write-ahead log generation is not 8 bytes".into()))?,
        ),
        None => 0,
    };
    let (mut wal, mut log) = Wal::open(dir, generation).map_err(|reason| OpenError::Corrupt {
        path: crate::wal::path_of(dir, generation),
        reason,
    })?;
    let legacy = db::log_table(db).map_err(|e| corrupt(e.to_string()))?;
    if !legacy.is_empty() {
        let records: Vec<Record<'_>> = legacy
            .iter()
            .map(|(index, bytes)| Record::Entry {
                index: *index,
                bytes,
            })
            .collect();
        wal.append(&records).map_err(|source| OpenError::Io {
            path: crate::wal::path_of(dir, generation),
            source,
        })?;
        db::clear_log_table(db).map_err(|e| corrupt(e.to_string()))?;
        for (index, bytes) in legacy {
            log.entries.entry(index).or_insert_with(|| bytes.into());
        }
    }
    if let Some(bytes) = db::get_meta(db, KEY_PURGED).map_err(|e| corrupt(e.to_string()))? {
        let id: LogId = decode(&bytes).map_err(|e| corrupt(format!("purge point: {e}")))?;
        if log.purged.as_ref().is_none_or(|(upto, _)| *upto < id.index) {
            log.entries.retain(|i, _| *i > id.index);
            log.purged = Some((id.index, bytes));
        }
    }
    if log.committed.is_none() {
        log.committed = db::get_meta(db, KEY_COMMITTED).map_err(|e| corrupt(e.to_string()))?;
    }
    Ok((wal, log))
}

/// Opens (or creates) the store in `dir`, keeping `retained_changes` changes of watch
/// history. A corrupted, foreign or future-version file is refused with a typed error and
/// left untouched.
pub fn open_store(dir: &Path, retained_changes: usize) -> Result<OpenedStore, OpenError> {
    let db = db::open(dir)?;
    let (state, last_applied, membership) = restored_state(&dir.join(DATA_FILE), &*db)?;
    let hub = new_hub(state, last_applied, membership, retained_changes);
    let appended = Arc::new(AtomicU64::new(0));
    let (wal, log) = open_log(dir, &db)?;
    let writer = Writer::start(&db, wal, log).map_err(|source| OpenError::Io {
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::db::LOG;
    use crate::types::{Entry, encode};
    use openraft::{CommittedLeaderId, EntryPayload, RaftLogReader};

    /// A store written before the write-ahead file kept its log in redb's `log` table: the
    /// entries move into the WAL at open, the table is emptied, and a second open (now from
    /// the WAL alone) reads the same log.
    #[tokio::test]
    async fn a_log_kept_in_redb_moves_into_the_write_ahead_file() {
        let dir = tempfile::TempDir::new().unwrap();
        let entries: Vec<Entry> = (1..=3)
            .map(|i| Entry {
                log_id: LogId::new(CommittedLeaderId::new(1, 1), i),
                payload: EntryPayload::Blank,
            })
            .collect();
        {
            let db = db::open(dir.path()).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut log = txn.open_table(LOG).unwrap();
                for e in &entries {
                    log.insert(e.log_id.index, encode(e).unwrap().as_slice())
                        .unwrap();
                }
            }
            txn.commit().unwrap();
        }
        for _ in 0..2 {
            let mut store = open_store(dir.path(), 1).unwrap();
            let read = store.log.try_get_log_entries(0..).await.unwrap();
            assert_eq!(read, entries);
            let db = store.state_machine.db();
            assert!(db::log_table(db).unwrap().is_empty());
        }
    }
}
