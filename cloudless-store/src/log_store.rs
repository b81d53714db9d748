//! [`RedbLogStore`]: the raft log, vote and committed index in redb.
//!
//! Mutations go through the [`Writer`] (group commit, one fsync per batch): `append` puts the
//! entries in an in-memory overlay (readable at once) and reports them flushed only after the
//! writer's durable commit covered them; vote, truncate and purge wait for their durable
//! commit; the committed index rides along with the next batch (a stale one on disk only
//! means fewer entries are re-applied at startup).

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, OptionalSend, RaftLogReader, StorageIOError, Vote};
use redb::{Database, ReadableDatabase};

use crate::db::{self, KEY_COMMITTED, KEY_PURGED, KEY_VOTE, LOG};
use crate::types::{Entry, LogId, StorageError, TypeConfig, decode, encode};
use crate::writer::{Op, Writer};

/// The raft log of one coordinator, in its redb data file. Clones share the file.
#[derive(Clone)]
pub struct RedbLogStore {
    db: Arc<Database>,
    writer: Writer,
    /// Bytes of log entries appended since the state machine last started a snapshot.
    appended: Arc<AtomicU64>,
}

impl Debug for RedbLogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedbLogStore").finish_non_exhaustive()
    }
}

fn read_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

fn write_err(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

fn write_msg(e: String) -> StorageError {
    StorageIOError::write_logs(AnyError::error(e)).into()
}

impl RedbLogStore {
    pub(crate) fn new(db: Arc<Database>, writer: Writer, appended: Arc<AtomicU64>) -> Self {
        Self {
            db,
            writer,
            appended,
        }
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        match db::get_meta(&self.db, key).map_err(read_err)? {
            Some(bytes) => Ok(Some(decode(&bytes).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    /// Raw entries in `range`: the overlay (read first, so an entry moving to redb meanwhile
    /// is still seen there) over redb.
    fn raw_range(
        &self,
        range: impl RangeBounds<u64> + Clone,
    ) -> Result<BTreeMap<u64, Arc<[u8]>>, redb::Error> {
        let pending: Vec<(u64, Arc<[u8]>)> = self
            .writer
            .overlay()
            .entries
            .range(range.clone())
            .map(|(i, (_, b))| (*i, Arc::clone(b)))
            .collect();
        let txn = self.db.begin_read()?;
        let log = txn.open_table(LOG)?;
        let mut out = BTreeMap::new();
        for item in log.range(range)? {
            let (k, v) = item?;
            out.insert(k.value(), Arc::from(v.value()));
        }
        out.extend(pending);
        Ok(out)
    }
}

impl RaftLogReader<TypeConfig> for RedbLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let raw = self.raw_range(range).map_err(read_err)?;
        raw.values()
            .map(|bytes| decode(bytes).map_err(read_err))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for RedbLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.meta(KEY_PURGED)?;
        let pending = self
            .writer
            .overlay()
            .entries
            .last_key_value()
            .map(|(_, (_, b))| Arc::clone(b));
        let last_bytes = match pending {
            Some(b) => Some(b),
            None => db::last_log(&self.db)
                .map_err(read_err)?
                .map(|(_, b)| Arc::from(b)),
        };
        let last = match last_bytes {
            Some(bytes) => Some(decode::<Entry>(&bytes).map_err(read_err)?.log_id),
            None => None,
        };
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<u64>) -> Result<(), StorageError> {
        let vote = encode(vote).map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        self.writer
            .run(|done| Op::Vote { vote, done })
            .await
            .map_err(|e| StorageIOError::write_vote(AnyError::error(e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.writer
            .committed(encode(&committed).map_err(write_err)?);
        Ok(())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        let pending = self.writer.overlay().committed.clone();
        match pending {
            Some(bytes) => decode(&bytes).map_err(read_err),
            None => Ok(self.meta::<Option<LogId>>(KEY_COMMITTED)?.flatten()),
        }
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut encoded = Vec::new();
        let mut bytes = 0;
        for entry in entries {
            let e = encode(&entry).map_err(write_err)?;
            bytes += e.len() as u64;
            encoded.push((entry.log_id.index, e));
        }
        self.appended.fetch_add(bytes, Ordering::Relaxed);
        self.writer.append(encoded, callback);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let from = log_id.index;
        self.writer
            .run(|done| Op::Truncate { from, done })
            .await
            .map_err(write_msg)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let purged = encode(&log_id).map_err(write_err)?;
        let upto = log_id.index;
        self.writer
            .run(|done| Op::Purge { upto, purged, done })
            .await
            .map_err(write_msg)
    }
}
