//! [`RedbLogStore`]: the raft log (in the write-ahead file, [`crate::wal`]), the vote (in
//! redb) and the committed index (in the write-ahead file).
//!
//! Mutations go through the [`Writer`] (group commit, one fdatasync per batch): `append` puts
//! the entries in the in-memory log (readable at once) and reports them flushed only after the
//! writer's durable write covered them; vote, truncate and purge wait for their durable
//! write; the committed index rides along with the next batch (a stale one on disk only
//! means fewer entries are re-applied at startup).

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, OptionalSend, RaftLogReader, StorageIOError, Vote};
use redb::Database;

use crate::db::{self, KEY_VOTE};
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

    /// Raw entries in `range`, from the in-memory live log (an empty or inverted range has
    /// none).
    fn raw_range(&self, range: impl RangeBounds<u64>) -> Vec<Arc<[u8]>> {
        use std::ops::Bound;
        let lo = match range.start_bound() {
            Bound::Included(&a) => a,
            Bound::Excluded(&a) => match a.checked_add(1) {
                Some(a) => a,
                None => return Vec::new(),
            },
            Bound::Unbounded => 0,
        };
        let hi = match range.end_bound() {
            Bound::Included(&b) => b,
            Bound::Excluded(&b) => match b.checked_sub(1) {
                Some(b) => b,
                None => return Vec::new(),
            },
            Bound::Unbounded => u64::MAX,
        };
        if lo > hi {
            return Vec::new();
        }
        self.writer
            .overlay()
            .entries
            .range(lo..=hi)
            .map(|(_, (_, b))| Arc::clone(b))
            .collect()
    }
}

impl RaftLogReader<TypeConfig> for RedbLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        self.raw_range(range)
            .iter()
            .map(|bytes| decode(bytes).map_err(read_err))
            .collect()
    }
}

impl RaftLogStorage<TypeConfig> for RedbLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let (purged, last_bytes) = {
            let o = self.writer.overlay();
            (
                o.purged.as_ref().map(|(_, id)| id.clone()),
                o.entries.last_key_value().map(|(_, (_, b))| Arc::clone(b)),
            )
        };
        let last_purged_log_id: Option<LogId> = match purged {
            Some(bytes) => Some(decode(&bytes).map_err(read_err)?),
            None => None,
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
        let committed = self.writer.overlay().committed.clone();
        match committed {
            Some(bytes) => decode(&bytes).map_err(read_err),
            None => Ok(None),
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
