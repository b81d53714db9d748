//! The applied cluster state plus a bounded history of applied changes, and the watch streams
//! over it. Shared by every [`Consensus`](crate::consensus::Consensus) implementation (the
//! in-memory reference and the raft one), so watch semantics are the same everywhere.
//!
//! ```text
//!  applier ──lock──▶ AppliedState { state (copy-on-write), history ring, extra } ──notify(rev)──┐
//!                                                                                              ▼
//!  watch(filter, from) ── stream: a cursor that re-reads the ring on every wake-up ◀── watch::Receiver
//! ```
//!
//! A watch stream holds only a cursor and re-reads the shared ring whenever the applied
//! revision moves, so a slow subscriber cannot lose changes silently: once the ring has moved
//! past its cursor (or a snapshot replaced the state) it gets `Compacted` and ends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use futures::StreamExt;
use tokio::sync::watch;

use crate::consensus::{ChangeStream, ConsensusError, WatchFilter};
use crate::ids::Revision;
use crate::state::{Change, ClusterState};

/// What an implementation has applied, with `extra` for its own bookkeeping (e.g. the raft
/// log id and membership).
#[derive(Debug)]
pub struct AppliedState<X> {
    /// The cluster state (copy-on-write: readers hold cheap snapshots).
    pub state: Arc<ClusterState>,
    /// Implementation-specific data kept under the same lock.
    pub extra: X,
    history: VecDeque<Change>,
    retained: usize,
    /// Every change with a revision ≥ this is still in `history`.
    first_available: Revision,
    shut_down: bool,
}

impl<X> AppliedState<X> {
    /// Records the changes of one applied command, dropping whole old revisions beyond the
    /// retention (the newest revision is always kept).
    pub fn record(&mut self, changes: &[Change]) {
        self.history.extend(changes.iter().cloned());
        let newest = self.state.revision;
        while self.history.len() > self.retained {
            let Some(oldest) = self.history.front().map(|c| c.revision) else {
                break;
            };
            if oldest >= newest {
                break;
            }
            while self.history.front().is_some_and(|c| c.revision == oldest) {
                self.history.pop_front();
            }
            self.first_available = Revision(oldest.0.saturating_add(1));
        }
    }

    /// Replaces the state (e.g. an installed snapshot): the history before it is gone.
    pub fn replace(&mut self, state: ClusterState) {
        self.first_available = Revision(state.revision.0.saturating_add(1));
        self.history.clear();
        self.state = Arc::new(state);
    }

    /// True after [`ChangeHub::shutdown`].
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// `Err(Shutdown)` after [`ChangeHub::shutdown`].
    pub fn ensure_running(&self) -> Result<(), ConsensusError> {
        if self.shut_down {
            Err(ConsensusError::Shutdown)
        } else {
            Ok(())
        }
    }
}

/// The applied state and the signal that wakes watch streams.
#[derive(Debug)]
pub struct ChangeHub<X> {
    applied: Mutex<AppliedState<X>>,
    revision: watch::Sender<Revision>,
}

impl<X: Send + 'static> ChangeHub<X> {
    /// A hub holding `state`, keeping at least the last `retained` changes (min 1).
    pub fn new(state: ClusterState, extra: X, retained: usize) -> Arc<Self> {
        let revision = state.revision;
        Arc::new(Self {
            applied: Mutex::new(AppliedState {
                state: Arc::new(state),
                extra,
                history: VecDeque::new(),
                retained: retained.max(1),
                first_available: Revision(revision.0.saturating_add(1)),
                shut_down: false,
            }),
            revision: watch::channel(revision).0,
        })
    }

    /// The applied state. Appliers never panic while holding it (`apply` is panic-free), so a
    /// poisoned lock still holds a consistent state.
    pub fn lock(&self) -> MutexGuard<'_, AppliedState<X>> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes watch streams after the state moved to `revision`. Call after releasing the lock.
    pub fn notify(&self, revision: Revision) {
        self.revision.send_replace(revision);
    }

    /// The last revision passed to [`notify`](Self::notify) (or the initial one).
    pub fn notified(&self) -> Revision {
        *self.revision.borrow()
    }

    /// Ends every watch stream with `Shutdown`; later watches fail with it.
    pub fn shutdown(&self) {
        self.lock().shut_down = true;
        self.revision.send_modify(|_| {});
    }

    /// Opens a watch from `from` (`Revision(0)` = the oldest retained revision).
    pub fn watch(
        self: &Arc<Self>,
        filter: WatchFilter,
        from: Revision,
    ) -> Result<ChangeStream, ConsensusError> {
        let next = {
            let a = self.lock();
            a.ensure_running()?;
            if from == Revision(0) {
                a.first_available
            } else if from < a.first_available {
                return Err(ConsensusError::Compacted {
                    requested: from,
                    oldest: a.first_available,
                });
            } else {
                from
            }
        };
        let cursor = Cursor {
            hub: Arc::clone(self),
            filter,
            next,
            rx: self.revision.subscribe(),
            buffer: VecDeque::new(),
            done: false,
        };
        Ok(futures::stream::unfold(cursor, Cursor::next_item).boxed())
    }
}

/// Where one watch stream is.
struct Cursor<X> {
    hub: Arc<ChangeHub<X>>,
    filter: WatchFilter,
    next: Revision,
    rx: watch::Receiver<Revision>,
    buffer: VecDeque<Change>,
    done: bool,
}

impl<X: Send + 'static> Cursor<X> {
    /// Buffers every retained matching change from `next` on and advances `next` past the
    /// applied revision; or says why the stream ends.
    fn read_history(&mut self) -> Option<ConsensusError> {
        let a = self.hub.lock();
        if a.shut_down {
            return Some(ConsensusError::Shutdown);
        }
        if self.next < a.first_available {
            return Some(ConsensusError::Compacted {
                requested: self.next,
                oldest: a.first_available,
            });
        }
        let start = a.history.partition_point(|c| c.revision < self.next);
        let filter = &self.filter;
        self.buffer.extend(
            a.history
                .range(start..)
                .filter(|c| filter.matches(c))
                .cloned(),
        );
        self.next = Revision(a.state.revision.0.saturating_add(1)).max(self.next);
        None
    }

    async fn next_item(mut self) -> Option<(Result<Change, ConsensusError>, Self)> {
        loop {
            if let Some(change) = self.buffer.pop_front() {
                return Some((Ok(change), self));
            }
            if self.done {
                return None;
            }
            // Mark the current value seen *before* reading, so an apply that lands after the
            // read wakes the wait below instead of being missed.
            self.rx.borrow_and_update();
            if let Some(err) = self.read_history() {
                self.done = true;
                return Some((Err(err), self));
            }
            if self.buffer.is_empty() && self.rx.changed().await.is_err() {
                // The sender lives in the hub this cursor holds: unreachable, but ending the
                // stream is the safe answer.
                return None;
            }
        }
    }
}
