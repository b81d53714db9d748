//! The applied state shared between the raft state machine and
//! [`RaftConsensus`](crate::RaftConsensus), and watch streams over a bounded history of
//! applied changes.
//!
//! The state machine (owned by openraft) writes under the lock; consensus handles read. A
//! watch stream keeps only a cursor and re-reads the history whenever the applied revision
//! moves, so a slow subscriber cannot lose changes: once the history has moved past its
//! cursor (or a snapshot replaced the state) it gets `Compacted` and ends.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use cloudless_core::consensus::{ChangeStream, ConsensusError, WatchFilter};
use cloudless_core::ids::Revision;
use cloudless_core::state::{Change, ClusterState};
use futures::StreamExt;
use tokio::sync::watch;

use crate::types::{LogId, StoredMembership};

/// What the state machine has applied.
pub(crate) struct Applied {
    /// The cluster state (copy-on-write: readers hold cheap snapshots).
    pub(crate) state: Arc<ClusterState>,
    /// The last applied log id.
    pub(crate) last_applied: Option<LogId>,
    /// The last applied membership.
    pub(crate) membership: StoredMembership,
    /// Recent changes in revision order.
    history: VecDeque<Change>,
    retained: usize,
    /// Every change with a revision ≥ this is still in `history`.
    first_available: Revision,
    shut_down: bool,
}

/// The applied state and the signal that wakes watch streams.
pub(crate) struct Hub {
    applied: Mutex<Applied>,
    revision: watch::Sender<Revision>,
}

impl Hub {
    pub(crate) fn new(
        state: ClusterState,
        last_applied: Option<LogId>,
        membership: StoredMembership,
        retained: usize,
    ) -> Arc<Self> {
        let revision = state.revision;
        Arc::new(Self {
            applied: Mutex::new(Applied {
                state: Arc::new(state),
                last_applied,
                membership,
                history: VecDeque::new(),
                retained: retained.max(1),
                first_available: Revision(revision.0.saturating_add(1)),
                shut_down: false,
            }),
            revision: watch::channel(revision).0,
        })
    }

    /// The applied state. `apply` never panics, so a poisoned lock still holds a consistent
    /// state.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Applied> {
        self.applied.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Wakes watch streams after the state moved to `revision`.
    pub(crate) fn notify(&self, revision: Revision) {
        self.revision.send_replace(revision);
    }

    /// Ends every watch stream with `Shutdown`.
    pub(crate) fn shutdown(&self) {
        self.lock().shut_down = true;
        self.revision.send_modify(|_| {});
    }

    /// Opens a watch from `from` (`0` = the oldest retained revision).
    pub(crate) fn watch(
        self: &Arc<Self>,
        filter: WatchFilter,
        from: Revision,
    ) -> Result<ChangeStream, ConsensusError> {
        let next = {
            let a = self.lock();
            if a.shut_down {
                return Err(ConsensusError::Shutdown);
            }
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

impl Applied {
    /// Records the changes of one applied command, dropping whole old revisions beyond the
    /// retention (the newest revision is always kept).
    pub(crate) fn record(&mut self, changes: &[Change]) {
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

    /// Replaces the state (an installed snapshot): the history before it is gone.
    pub(crate) fn replace(
        &mut self,
        state: ClusterState,
        last_applied: Option<LogId>,
        membership: StoredMembership,
    ) {
        self.first_available = Revision(state.revision.0.saturating_add(1));
        self.history.clear();
        self.state = Arc::new(state);
        self.last_applied = last_applied;
        self.membership = membership;
    }
}

/// Where one watch stream is.
struct Cursor {
    hub: Arc<Hub>,
    filter: WatchFilter,
    next: Revision,
    rx: watch::Receiver<Revision>,
    buffer: VecDeque<Change>,
    done: bool,
}

impl Cursor {
    /// Buffers every retained matching change from `next` on, or says why the stream ends.
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

    async fn next_item(mut self) -> Option<(Result<Change, ConsensusError>, Cursor)> {
        loop {
            if let Some(change) = self.buffer.pop_front() {
                return Some((Ok(change), self));
            }
            if self.done {
                return None;
            }
            // Mark the value seen before reading, so an apply landing after the read wakes
            // the wait below instead of being missed.
            self.rx.borrow_and_update();
            if let Some(err) = self.read_history() {
                self.done = true;
                return Some((Err(err), self));
            }
            if self.buffer.is_empty() && self.rx.changed().await.is_err() {
                return None;
            }
        }
    }
}
