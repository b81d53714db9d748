//! Leader-side batching of proposals: concurrent `propose` calls are committed together as one
//! log entry ([`CommandBatch`]), so one append and one fsync per member carry many commands.
//!
//! ```text
//!  propose ─┐                     ┌─ one client_write(batch) in flight at a time; while it
//!  propose ─┼─▶ queue ─▶ batcher ─┤  commits, new proposals queue and form the next batch
//!  propose ─┘                     └─ results[i] ─▶ proposer i
//! ```
//!
//! A lone proposal is sent at once (no waiting to fill a batch), so a single client pays no
//! latency for batching.

use cloudless_core::consensus::ConsensusError;
use cloudless_core::state::CommandEnvelope;
use openraft::BasicNode;
use openraft::error::{ClientWriteError, RaftError};
use tokio::sync::{mpsc, oneshot};

use crate::types::{ApplyResult, Raft};

/// Most commands in one log entry (bounds the entry size and the apply time of one entry).
pub(crate) const MAX_BATCH: usize = 256;

type Reply = oneshot::Sender<Result<ApplyResult, ConsensusError>>;
type WriteError = RaftError<u64, ClientWriteError<u64, BasicNode>>;

/// The queue into the batcher task.
#[derive(Clone)]
pub(crate) struct Batcher {
    tx: mpsc::Sender<(CommandEnvelope, Reply)>,
}

impl Batcher {
    /// Starts the batcher task for `raft`; `error` maps a failed write to each proposer's
    /// error. The task ends when every handle is dropped.
    pub(crate) fn start(raft: Raft, error: fn(WriteError) -> ConsensusError) -> Self {
        let (tx, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(raft, rx, error));
        Self { tx }
    }

    /// Proposes `command` in the next batch and waits for its result.
    pub(crate) async fn submit(
        &self,
        command: CommandEnvelope,
    ) -> Result<ApplyResult, ConsensusError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((command, reply))
            .await
            .map_err(|_| ConsensusError::Shutdown)?;
        rx.await.map_err(|_| ConsensusError::Shutdown)?
    }
}

async fn run(
    raft: Raft,
    mut rx: mpsc::Receiver<(CommandEnvelope, Reply)>,
    error: fn(WriteError) -> ConsensusError,
) {
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let (commands, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
        match raft.client_write(commands).await {
            Ok(written) => {
                let mut results = written.data.into_iter();
                for reply in replies {
                    let result = results.next().ok_or_else(|| {
                        ConsensusError::Storage("a committed batch returned too few results".into())
                    });
                    // A proposer that stopped waiting (timeout) just misses its answer.
                    drop(reply.send(result));
                }
            }
            Err(e) => {
                for reply in replies {
                    drop(reply.send(Err(error(e.clone()))));
                }
            }
        }
    }
}
