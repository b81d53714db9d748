//! [`RedbLogStore`]: the raft log, vote and committed index in redb.
//!
//! The vote, truncation and purge are redb transactions committed with `Durability::Immediate`
//! (fsync before `commit` returns). `append` commits non-durably (readable at once) and
//! reports the entries flushed only after the [`Flusher`]'s next durable commit covered them;
//! the committed index is written non-durably too (a stale one on disk only means fewer
//! entries are re-applied at startup).

use std::fmt::Debug;
use std::ops::RangeBounds;
use std::sync::Arc;

use openraft::storage::{LogFlushed, RaftLogStorage};
use openraft::{AnyError, LogState, OptionalSend, RaftLogReader, StorageIOError, Vote};
use redb::{Database, ReadableDatabase};

use crate::db::{self, KEY_COMMITTED, KEY_PURGED, KEY_VOTE, LOG, META};
use crate::flusher::Flusher;
use crate::types::{Entry, LogId, StorageError, TypeConfig, decode, encode};

/// The raft log of one coordinator, in its redb data file. Clones share the file.
#[derive(Clone)]
pub struct RedbLogStore {
    db: Arc<Database>,
    flusher: Flusher,
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

impl RedbLogStore {
    pub(crate) fn new(db: Arc<Database>, flusher: Flusher) -> Self {
        Self { db, flusher }
    }

    fn meta<T: serde::de::DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StorageError> {
        match db::get_meta(&self.db, key).map_err(read_err)? {
            Some(bytes) => Ok(Some(decode(&bytes).map_err(read_err)?)),
            None => Ok(None),
        }
    }

    fn put<T: serde::Serialize>(
        &self,
        key: &str,
        value: &T,
        durable: bool,
    ) -> Result<(), StorageError> {
        let bytes = encode(value).map_err(write_err)?;
        db::put_meta(&self.db, key, &bytes, durable).map_err(write_err)
    }

    /// Removes the log entries with index in `range`, in one durable transaction, and
    /// optionally records the purge point in the same transaction.
    fn remove(
        &self,
        range: impl RangeBounds<u64>,
        purged: Option<&LogId>,
    ) -> Result<(), StorageError> {
        let purged = purged.map(encode).transpose().map_err(write_err)?;
        let run = || -> Result<(), redb::Error> {
            // redb's default durability is `Immediate`: commit returns after fsync.
            let txn = self.db.begin_write()?;
            {
                let mut log = txn.open_table(LOG)?;
                log.retain_in(range, |_, _| false)?;
                if let Some(bytes) = &purged {
                    let mut meta = txn.open_table(META)?;
                    meta.insert(KEY_PURGED, bytes.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        };
        run().map_err(write_err)
    }
}

impl RaftLogReader<TypeConfig> for RedbLogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let txn = self.db.begin_read().map_err(read_err)?;
        let log = txn.open_table(LOG).map_err(read_err)?;
        let mut out = Vec::new();
        for item in log.range(range).map_err(read_err)? {
            let (_, value) = item.map_err(read_err)?;
            out.push(decode(value.value()).map_err(read_err)?);
        }
        Ok(out)
    }
}

impl RaftLogStorage<TypeConfig> for RedbLogStore {
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.meta(KEY_PURGED)?;
        let last = match db::last_log(&self.db).map_err(read_err)? {
            Some((_, bytes)) => Some(decode::<Entry>(&bytes).map_err(read_err)?.log_id),
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
        self.put(KEY_VOTE, vote, true)
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<u64>>, StorageError> {
        self.meta(KEY_VOTE)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        self.put(KEY_COMMITTED, &committed, false)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.meta::<Option<LogId>>(KEY_COMMITTED)?.flatten())
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
        for entry in entries {
            encoded.push((entry.log_id.index, encode(&entry).map_err(write_err)?));
        }
        let run = || -> Result<(), redb::Error> {
            // Non-durable: readable at once; the flusher's next commit makes it durable.
            let mut txn = self.db.begin_write()?;
            db::set_lazy(&mut txn)?;
            {
                let mut log = txn.open_table(LOG)?;
                for (index, bytes) in &encoded {
                    log.insert(*index, bytes.as_slice())?;
                }
            }
            txn.commit()?;
            Ok(())
        };
        match run() {
            Ok(()) => {
                self.flusher.flush(callback);
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.remove(log_id.index.., None)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.remove(..=log_id.index, Some(&log_id))
    }
}
