//! Group commit of the raft log: `append` writes entries in a non-durable redb transaction
//! (readable at once) and queues its flush callback here; one thread makes everything
//! queued durable with a single `Durability::Immediate` commit (redb then fsyncs every earlier
//! non-durable commit too) and only after that reports the entries flushed, in order.
//!
//! ```text
//!  append ─▶ redb commit (Durability::None) ─▶ queue callback ─▶ flusher thread
//!                                                    drain queue ─▶ one Immediate commit (fsync)
//!                                                                ─▶ callbacks Ok, in order
//! ```
//!
//! One fsync (≈2.6 ms with redb on the reference VM) then covers every entry appended while
//! the previous one ran, so throughput grows with concurrency instead of being capped at one
//! entry per fsync.

use std::sync::mpsc;
use std::sync::{Arc, Weak};

use openraft::storage::LogFlushed;
use redb::Database;

use crate::db::{KEY_FLUSHED, META};
use crate::types::TypeConfig;

/// The queue of callbacks waiting for durability.
#[derive(Clone)]
pub(crate) struct Flusher {
    tx: mpsc::Sender<LogFlushed<TypeConfig>>,
}

impl Flusher {
    /// Starts the flusher thread for `db`. The thread ends when every handle is dropped; it
    /// holds the database only weakly, so dropping the store closes the file at once.
    pub(crate) fn start(db: &Arc<Database>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<LogFlushed<TypeConfig>>();
        let db = Arc::downgrade(db);
        std::thread::Builder::new()
            .name("raft-log-flush".into())
            .spawn(move || run(&db, &rx))?;
        Ok(Self { tx })
    }

    /// Queues `callback` to be called once everything committed so far is durable. If the
    /// thread is gone the callback is answered with an error at once.
    pub(crate) fn flush(&self, callback: LogFlushed<TypeConfig>) {
        if let Err(mpsc::SendError(callback)) = self.tx.send(callback) {
            callback.log_io_completed(Err(std::io::Error::other("log flusher stopped")));
        }
    }
}

fn run(db: &Weak<Database>, rx: &mpsc::Receiver<LogFlushed<TypeConfig>>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        batch.extend(rx.try_iter());
        let result = match db.upgrade() {
            Some(db) => durable_commit(&db, batch.len()),
            None => Err(redb::Error::Corrupted("the log store is closed".into())),
        };
        for callback in batch {
            let outcome = match &result {
                Ok(()) => Ok(()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            };
            callback.log_io_completed(outcome);
        }
    }
}

/// An Immediate commit: persists it and every earlier non-durable commit.
fn durable_commit(db: &Database, batch: usize) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        // A real write, so the commit is never skipped as empty.
        let mut meta = txn.open_table(META)?;
        let size = u64::try_from(batch).unwrap_or(u64::MAX);
        meta.insert(KEY_FLUSHED, size.to_be_bytes().as_slice())?;
    }
    txn.commit()?;
    Ok(())
}
