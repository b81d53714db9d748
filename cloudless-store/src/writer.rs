//! The log writer: every mutation of the raft log goes through one thread, in order, and each
//! batch of queued mutations becomes one append to the write-ahead file ([`crate::wal`]) with
//! one `fdatasync` (group commit); a vote in the batch is then saved in redb.
//!
//! ```text
//!  append ──▶ overlay (readable at once) ──▶ queue ──▶ writer thread
//!  truncate / purge / vote ──▶ queue, await ─┘         drain queue, append its records to
//!  save_committed ──▶ overlay + queue (no wait)        the WAL in order, fdatasync; vote →
//!                                                      durable redb commit; then apply
//!                                                      truncate/purge to the overlay and
//!                                                      answer callbacks in order
//! ```
//!
//! The overlay holds the whole live log in memory (entries since the last purge), so reads
//! never touch the disk. Nothing in the async runtime waits on a disk write: an `fdatasync`
//! (≈0.3 ms on the reference VM) covers every mutation queued while the previous one ran.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak, mpsc};

use openraft::storage::LogFlushed;
use redb::Database;
use tokio::sync::oneshot;

use crate::db::{KEY_VOTE, META};
use crate::types::TypeConfig;
use crate::wal::{Record, Replayed, Wal};

/// The live log in memory, by index: (append sequence number, CBOR bytes) — written or
/// still queued — with the purge point and the newest committed id.
#[derive(Default)]
pub(crate) struct Overlay {
    pub(crate) entries: BTreeMap<u64, (u64, Arc<[u8]>)>,
    /// The newest committed log id handed in (CBOR `Option<LogId>`).
    pub(crate) committed: Option<Vec<u8>>,
    /// The durable purge point: index and CBOR `LogId`.
    pub(crate) purged: Option<(u64, Vec<u8>)>,
    next_seq: u64,
}

/// Answer to an awaited operation.
pub(crate) type Done = oneshot::Sender<Result<(), String>>;

/// One queued mutation.
pub(crate) enum Op {
    /// Entries already in the overlay with these (index, seq); flushed → callback.
    Append {
        entries: Vec<(u64, u64, Arc<[u8]>)>,
        callback: LogFlushed<TypeConfig>,
    },
    /// Delete entries with index ≥ `from`.
    Truncate { from: u64, done: Done },
    /// Delete entries with index ≤ `upto` and record the purge point.
    Purge {
        upto: u64,
        purged: Vec<u8>,
        done: Done,
    },
    /// Save the vote.
    Vote { vote: Vec<u8>, done: Done },
    /// Write the committed log id held in the overlay (not awaited).
    Committed,
}

/// A handle to the writer thread and the overlay it drains.
#[derive(Clone)]
pub(crate) struct Writer {
    tx: mpsc::Sender<Op>,
    overlay: Arc<Mutex<Overlay>>,
}

impl Writer {
    /// Starts the writer for `db` and `wal`, whose log is `log`. It holds the database
    /// weakly, so dropping every store handle closes the file at once; the thread ends when
    /// every handle is gone.
    pub(crate) fn start(db: &Arc<Database>, wal: Wal, log: Replayed) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel();
        let overlay = Arc::new(Mutex::new(Overlay {
            entries: log.entries.into_iter().map(|(i, b)| (i, (0, b))).collect(),
            committed: log.committed.clone(),
            purged: log.purged,
            next_seq: 0,
        }));
        let (weak, shared) = (Arc::downgrade(db), Arc::clone(&overlay));
        let written_committed = log.committed;
        std::thread::Builder::new()
            .name("raft-log-writer".into())
            .spawn(move || run(&weak, &shared, &rx, wal, written_committed))?;
        Ok(Self { tx, overlay })
    }

    /// The overlay. Nothing panics while holding it, so a poisoned lock is still consistent.
    pub(crate) fn overlay(&self) -> MutexGuard<'_, Overlay> {
        lock(&self.overlay)
    }

    /// Puts encoded entries in the overlay and queues their flush.
    pub(crate) fn append(&self, encoded: Vec<(u64, Vec<u8>)>, callback: LogFlushed<TypeConfig>) {
        let entries = {
            let mut o = self.overlay();
            let mut queued = Vec::with_capacity(encoded.len());
            for (index, bytes) in encoded {
                o.next_seq += 1;
                let seq = o.next_seq;
                let bytes: Arc<[u8]> = bytes.into();
                o.entries.insert(index, (seq, Arc::clone(&bytes)));
                queued.push((index, seq, bytes));
            }
            queued
        };
        if let Err(mpsc::SendError(op)) = self.tx.send(Op::Append { entries, callback })
            && let Op::Append { callback, .. } = op
        {
            callback.log_io_completed(Err(std::io::Error::other("log writer stopped")));
        }
    }

    /// Records the committed log id and queues a write of it (batched with whatever else is
    /// queued; not awaited).
    pub(crate) fn committed(&self, bytes: Vec<u8>) {
        self.overlay().committed = Some(bytes);
        // If the writer is gone the value only stays in memory: it is optional on disk.
        drop(self.tx.send(Op::Committed));
    }

    /// Queues an operation and waits until it is durable.
    pub(crate) async fn run(&self, make: impl FnOnce(Done) -> Op) -> Result<(), String> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(make(done))
            .map_err(|_| "log writer stopped".to_string())?;
        rx.await.map_err(|_| "log writer stopped".to_string())?
    }
}

fn lock(m: &Mutex<Overlay>) -> MutexGuard<'_, Overlay> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn run(
    db: &Weak<Database>,
    overlay: &Mutex<Overlay>,
    rx: &mpsc::Receiver<Op>,
    mut wal: Wal,
    mut written_committed: Option<Vec<u8>>,
) {
    while let Ok(first) = rx.recv() {
        // The committed id is read before draining the queue: it only covers entries whose
        // appends were queued before it was set, so all of them are in this batch and the
        // id on disk never runs ahead of the durable log.
        let committed = lock(overlay).committed.clone();
        let committed = committed.filter(|c| Some(c) != written_committed.as_ref());
        let mut ops = vec![first];
        ops.extend(rx.try_iter());
        let result = match db.upgrade() {
            Some(db) => write(&db, &mut wal, &ops, committed.as_deref()),
            None => Err("the log store is closed".to_string()),
        };
        if let Ok(wrote_committed) = result {
            if wrote_committed {
                written_committed = committed;
            }
            let purged = forget_written(overlay, &ops);
            if purged {
                compact_if_mostly_dead(overlay, &mut wal, written_committed.as_ref());
            }
        }
        let result = result.map(drop);
        for op in ops {
            let answer = result.clone();
            match op {
                Op::Append { callback, .. } => {
                    callback.log_io_completed(answer.map_err(std::io::Error::other));
                }
                Op::Truncate { done, .. } | Op::Purge { done, .. } | Op::Vote { done, .. } => {
                    // The caller may have stopped waiting; nothing to do then.
                    drop(done.send(answer));
                }
                Op::Committed => {}
            }
        }
    }
}

/// Writes `ops` in order: their log records in one durable WAL append, then a vote (if any)
/// in one durable redb transaction. Returns whether `committed` was written.
fn write(
    db: &Database,
    wal: &mut Wal,
    ops: &[Op],
    committed: Option<&[u8]>,
) -> Result<bool, String> {
    let mut records = Vec::new();
    let mut vote = None;
    for op in ops {
        match op {
            Op::Append { entries, .. } => {
                for (index, _, bytes) in entries {
                    records.push(Record::Entry {
                        index: *index,
                        bytes,
                    });
                }
            }
            Op::Truncate { from, .. } => records.push(Record::Truncate { from: *from }),
            Op::Purge { upto, purged, .. } => records.push(Record::Purge {
                upto: *upto,
                log_id: purged,
            }),
            Op::Vote { vote: v, .. } => vote = Some(v),
            Op::Committed => {}
        }
    }
    // The committed id is written as soon as it changes (with whatever else is queued): it
    // bounds what offline recovery keeps, and what a restart re-applies at once.
    if let Some(bytes) = committed {
        records.push(Record::Committed(bytes));
    }
    wal.append(&records)
        .map_err(|e| format!("raft log write failed: {e}"))?;
    if let Some(vote) = vote {
        save_vote(db, vote).map_err(|e| format!("saving the vote failed: {e}"))?;
    }
    Ok(committed.is_some())
}

/// Saves the vote in one durable transaction.
fn save_vote(db: &Database, vote: &[u8]) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(KEY_VOTE, vote)?;
    }
    // redb's default durability is Immediate: commit returns after fsync.
    txn.commit()?;
    Ok(())
}

/// Applies durable truncations and purges to the in-memory log; true if a purge was among
/// them.
fn forget_written(overlay: &Mutex<Overlay>, ops: &[Op]) -> bool {
    let mut o = lock(overlay);
    let mut purged = false;
    for op in ops {
        match op {
            Op::Truncate { from, .. } => {
                o.entries.retain(|i, _| i < from);
            }
            Op::Purge {
                upto, purged: id, ..
            } => {
                o.entries.retain(|i, _| i > upto);
                o.purged = Some((*upto, id.clone()));
                purged = true;
            }
            Op::Append { .. } | Op::Vote { .. } | Op::Committed => {}
        }
    }
    purged
}

/// Rewrites the WAL as the live log when it is mostly dead. A failure leaves the old file,
/// which replays to the same log, so it is only logged.
fn compact_if_mostly_dead(overlay: &Mutex<Overlay>, wal: &mut Wal, committed: Option<&Vec<u8>>) {
    let log = {
        let o = lock(overlay);
        let live: u64 = o.entries.values().map(|(_, b)| b.len() as u64 + 32).sum();
        if !wal.should_compact(live) {
            return;
        }
        Replayed {
            entries: o
                .entries
                .iter()
                .map(|(i, (_, b))| (*i, Arc::clone(b)))
                .collect(),
            purged: o.purged.clone(),
            committed: committed.cloned(),
        }
    };
    if let Err(e) = wal.compact(&log) {
        tracing::warn!("raft log compaction failed (the old file stays valid): {e}");
    }
}
