//! [`RedbStateMachine`]: applies committed commands with core's pure `apply`, and keeps its
//! snapshots (the serialized `ClusterState` with its last log id and membership) in redb.
//!
//! The state itself lives in memory ([`Hub`]); durability comes from the log plus the latest
//! snapshot: on restart the state is the stored snapshot and openraft re-applies the committed
//! log after it (the committed index is persisted by the log store).

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cloudless_core::state::{ClusterState, STATE_FORMAT_VERSION, apply};
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, SnapshotMeta,
    StorageIOError,
};
use redb::{Database, ReadableDatabase};
use serde::{Deserialize, Serialize};

use crate::db::{KEY_SNAPSHOT, SNAPSHOT};
use crate::history::{Hub, RaftApplied};
use crate::types::{
    BatchResult, Entry, LogId, StorageError, StoredMembership, TypeConfig, decode, encode,
};

/// The snapshot payload format this build writes and understands.
pub const SNAPSHOT_FORMAT_VERSION: u32 = 1;

/// The bytes of a snapshot: the format version and the whole cluster state.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct SnapshotBody {
    pub(crate) format: u32,
    pub(crate) state: ClusterState,
}

/// [`SnapshotBody`] by reference, so building a snapshot does not copy the state.
#[derive(Serialize)]
struct SnapshotBodyRef<'a> {
    format: u32,
    state: &'a ClusterState,
}

/// A snapshot as stored in redb: openraft's metadata and the body bytes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSnapshot {
    pub(crate) meta: SnapshotMeta<u64, openraft::BasicNode>,
    pub(crate) data: Vec<u8>,
}

/// Why snapshot bytes were refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    /// The bytes do not decode.
    #[error("snapshot does not decode: {0}")]
    Decode(String),
    /// A newer build wrote it.
    #[error("snapshot format {found} (or state format {state}) is newer than this build's")]
    Future {
        /// Snapshot format found.
        found: u32,
        /// State format found.
        state: u32,
    },
}

/// Decodes and checks snapshot bytes.
pub(crate) fn decode_body(data: &[u8]) -> Result<ClusterState, SnapshotError> {
    let body: SnapshotBody = decode(data).map_err(|e| SnapshotError::Decode(e.to_string()))?;
    if body.format > SNAPSHOT_FORMAT_VERSION || body.state.format_version > STATE_FORMAT_VERSION {
        return Err(SnapshotError::Future {
            found: body.format,
            state: body.state.format_version,
        });
    }
    Ok(body.state)
}

/// Reads the stored snapshot, if any.
pub(crate) fn load_snapshot(db: &impl ReadableDatabase) -> Result<Option<StoredSnapshot>, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let table = txn.open_table(SNAPSHOT).map_err(|e| e.to_string())?;
    let Some(bytes) = table.get(KEY_SNAPSHOT).map_err(|e| e.to_string())? else {
        return Ok(None);
    };
    decode(bytes.value()).map(Some).map_err(|e| e.to_string())
}

fn save_snapshot(db: &Database, snapshot: &StoredSnapshot) -> Result<(), StorageError> {
    let signature = Some(snapshot.meta.signature());
    let err = |e: &dyn std::fmt::Display| -> StorageError {
        StorageIOError::write_snapshot(signature.clone(), AnyError::error(e.to_string())).into()
    };
    let bytes = encode(snapshot).map_err(|e| err(&e))?;
    let run = || -> Result<(), redb::Error> {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(SNAPSHOT)?;
            table.insert(KEY_SNAPSHOT, bytes.as_slice())?;
        }
        txn.commit()?;
        Ok(())
    };
    run().map_err(|e| err(&e))
}

/// The state machine of one coordinator. Clones share the state and the file.
#[derive(Clone)]
pub struct RedbStateMachine {
    db: Arc<Database>,
    hub: Arc<Hub>,
    snapshots_built: Arc<AtomicU64>,
    /// Log bytes appended since the last snapshot started (shared with the log store; reset
    /// here, read by the size-based snapshot trigger).
    appended: Arc<AtomicU64>,
}

impl std::fmt::Debug for RedbStateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbStateMachine").finish_non_exhaustive()
    }
}

impl RedbStateMachine {
    /// The data file (recovery rewrites it offline).
    pub(crate) fn db(&self) -> &Database {
        &self.db
    }

    pub(crate) fn new(db: Arc<Database>, hub: Arc<Hub>, appended: Arc<AtomicU64>) -> Self {
        Self {
            db,
            hub,
            snapshots_built: Arc::new(AtomicU64::new(0)),
            appended,
        }
    }
}

impl RaftSnapshotBuilder<TypeConfig> for RedbStateMachine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        // Entries appended from now on are not in this snapshot; count them afresh.
        self.appended.store(0, Ordering::Relaxed);
        let (state, last_log_id, last_membership) = {
            let a = self.hub.lock();
            (
                Arc::clone(&a.state),
                a.extra.last_applied,
                a.extra.membership.clone(),
            )
        };
        // Encoding happens outside the lock: the Arc is a frozen copy of the state.
        let body = SnapshotBodyRef {
            format: SNAPSHOT_FORMAT_VERSION,
            state: &state,
        };
        let data = encode(&body).map_err(|e| {
            StorageError::from(StorageIOError::write_snapshot(None, AnyError::new(&e)))
        })?;
        let n = self.snapshots_built.fetch_add(1, Ordering::Relaxed) + 1;
        let snapshot_id = match last_log_id {
            Some(id) => format!("{}-{}-{n}", id.leader_id, id.index),
            None => format!("none-{n}"),
        };
        let meta = SnapshotMeta {
            last_log_id,
            last_membership,
            snapshot_id,
        };
        let stored = StoredSnapshot { meta, data };
        save_snapshot(&self.db, &stored)?;
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for RedbStateMachine {
    type SnapshotBuilder = Self;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let a = self.hub.lock();
        Ok((a.extra.last_applied, a.extra.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<BatchResult>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        let revision = {
            let mut a = self.hub.lock();
            for entry in entries {
                a.extra.last_applied = Some(entry.log_id);
                // Raft-internal entries (blank, membership) carry no command: no results.
                let reply = match entry.payload {
                    EntryPayload::Blank => Vec::new(),
                    EntryPayload::Membership(m) => {
                        a.extra.membership = StoredMembership::new(Some(entry.log_id), m);
                        Vec::new()
                    }
                    EntryPayload::Normal(batch) => {
                        let mut results = Vec::with_capacity(batch.len());
                        for command in &batch {
                            let result = apply(Arc::make_mut(&mut a.state), command);
                            if let Ok(applied) = &result
                                && !applied.deduplicated
                            {
                                a.record(&applied.changes);
                            }
                            results.push(result);
                        }
                        results
                    }
                };
                replies.push(reply);
            }
            a.state.revision
        };
        self.hub.notify(revision);
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<u64, openraft::BasicNode>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let state = decode_body(&data).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                AnyError::new(&e),
            ))
        })?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        // Persist first: if this fails the in-memory state stays as it was.
        save_snapshot(&self.db, &stored)?;
        let revision = state.revision;
        {
            let mut a = self.hub.lock();
            a.replace(state);
            a.extra = RaftApplied {
                last_applied: meta.last_log_id,
                membership: meta.last_membership.clone(),
            };
        }
        self.hub.notify(revision);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored = load_snapshot(&*self.db).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(None, AnyError::error(e)))
        })?;
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}
