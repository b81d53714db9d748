//! [`MemConsensus`]: the single-member in-memory [`Consensus`](crate::consensus::Consensus).

use std::collections::{BTreeSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::watch;

use crate::consensus::{ChangeStream, Consensus, ConsensusError, ConsensusStatus, WatchFilter};
use crate::ids::{NodeId, Revision};
use crate::state::{Applied, Change, ClusterState, CommandEnvelope, apply};
/// Settings of a [`MemConsensus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemConsensusConfig {
    /// The member's id, reported by `status()`.
    pub id: NodeId,
    /// How many changes the watch history keeps. Whole revisions are dropped, oldest first,
    /// but the newest revision is always kept even if it alone is larger.
    pub retained_changes: usize,
}

impl Default for MemConsensusConfig {
    fn default() -> Self {
        Self {
            id: NodeId(1),
            retained_changes: 10_000,
        }
    }
}

/// A [`MemConsensusConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemConsensusConfigError {
    /// `retained_changes` is zero: no watch could ever resume.
    #[error("retained_changes must be at least 1")]
    NoRetention,
}

impl MemConsensusConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), MemConsensusConfigError> {
        if self.retained_changes == 0 {
            return Err(MemConsensusConfigError::NoRetention);
        }
        Ok(())
    }

    /// Sets the member id.
    pub fn with_id(mut self, id: NodeId) -> Self {
        self.id = id;
        self
    }

    /// Sets the watch history size.
    pub fn with_retained_changes(mut self, n: usize) -> Self {
        self.retained_changes = n;
        self
    }
}

/// A single-member, in-memory [`Consensus`] for tests and simulations.
///
/// It is its own leader at term 1 with itself as the only voter; membership changes are
/// refused. Commands are applied with [`crate::state::apply`] under a lock, so they have one
/// total order; the state is shared copy-on-write (`Arc::make_mut`), so `state()` is cheap
/// and a snapshot never changes under its reader. Cloning the handle shares the member.
#[derive(Clone)]
pub struct MemConsensus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemConsensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemConsensus")
            .field("id", &self.inner.id)
            .field("applied", &*self.inner.applied.borrow())
            .finish_non_exhaustive()
    }
}

struct Inner {
    id: NodeId,
    shared: Mutex<Shared>,
    /// The last applied revision; every watch stream waits on it.
    applied: watch::Sender<Revision>,
}

struct Shared {
    state: Arc<ClusterState>,
    /// Applied changes in revision order.
    history: VecDeque<Change>,
    retained: usize,
    /// Every change with a revision ≥ this is still in `history`.
    first_available: Revision,
    shut_down: bool,
}

impl Default for MemConsensus {
    fn default() -> Self {
        Self::new()
    }
}

impl MemConsensus {
    /// An empty cluster state with the default settings.
    pub fn new() -> Self {
        Self::from_parts(MemConsensusConfig::default(), ClusterState::new())
    }

    /// Starts from `state` (e.g. a snapshot) with `config`; watches can resume from the
    /// revision after the snapshot's.
    pub fn with_state(
        config: MemConsensusConfig,
        state: ClusterState,
    ) -> Result<Self, MemConsensusConfigError> {
        config.validate()?;
        Ok(Self::from_parts(config, state))
    }

    /// An empty cluster state with `config`.
    pub fn with_config(config: MemConsensusConfig) -> Result<Self, MemConsensusConfigError> {
        Self::with_state(config, ClusterState::new())
    }

    fn from_parts(config: MemConsensusConfig, state: ClusterState) -> Self {
        let revision = state.revision;
        let (applied, _) = watch::channel(revision);
        Self {
            inner: Arc::new(Inner {
                id: config.id,
                shared: Mutex::new(Shared {
                    state: Arc::new(state),
                    history: VecDeque::new(),
                    retained: config.retained_changes.max(1),
                    first_available: Revision(revision.0.saturating_add(1)),
                    shut_down: false,
                }),
                applied,
            }),
        }
    }

    /// Stops serving: later calls fail with `Shutdown` and open watch streams end with it.
    pub fn shutdown(&self) {
        self.inner.lock().shut_down = true;
        // Wake every stream so it notices.
        self.inner.applied.send_modify(|_| {});
    }
}

impl Inner {
    /// The shared part. `apply` never panics, so a poisoned lock still holds a consistent state.
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shared {
    fn record(&mut self, changes: &[Change]) {
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
}

/// Where one watch stream is.
struct Cursor {
    inner: Arc<Inner>,
    filter: WatchFilter,
    next: Revision,
    rx: watch::Receiver<Revision>,
    buffer: VecDeque<Change>,
    done: bool,
}

impl Cursor {
    /// Moves every retained change from `next` on that passes the filter into the buffer and
    /// advances `next` past the applied revision; or says why the stream must end.
    fn read_history(&mut self) -> Option<ConsensusError> {
        let shared = self.inner.lock();
        if shared.shut_down {
            return Some(ConsensusError::Shutdown);
        }
        if self.next < shared.first_available {
            return Some(ConsensusError::Compacted {
                requested: self.next,
                oldest: shared.first_available,
            });
        }
        let start = shared.history.partition_point(|c| c.revision < self.next);
        let filter = &self.filter;
        self.buffer.extend(
            shared
                .history
                .range(start..)
                .filter(|c| filter.matches(c))
                .cloned(),
        );
        self.next = Revision(shared.state.revision.0.saturating_add(1)).max(self.next);
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
            // Mark the current value seen *before* reading, so an apply that lands after the
            // read wakes the wait below instead of being missed.
            self.rx.borrow_and_update();
            if let Some(err) = self.read_history() {
                self.done = true;
                return Some((Err(err), self));
            }
            if self.buffer.is_empty() && self.rx.changed().await.is_err() {
                // The sender lives in `inner`, which this cursor holds: unreachable, but
                // ending the stream is the safe answer.
                return None;
            }
        }
    }
}

#[async_trait]
impl Consensus for MemConsensus {
    async fn propose(&self, command: CommandEnvelope) -> Result<Applied, ConsensusError> {
        let applied = {
            let mut shared = self.inner.lock();
            if shared.shut_down {
                return Err(ConsensusError::Shutdown);
            }
            let applied = apply(Arc::make_mut(&mut shared.state), &command)?;
            if !applied.deduplicated {
                shared.record(&applied.changes);
            }
            applied
        };
        if !applied.deduplicated {
            self.inner.applied.send_replace(applied.revision);
        }
        Ok(applied)
    }

    async fn state(&self) -> Result<Arc<ClusterState>, ConsensusError> {
        let shared = self.inner.lock();
        if shared.shut_down {
            return Err(ConsensusError::Shutdown);
        }
        Ok(Arc::clone(&shared.state))
    }

    async fn watch(
        &self,
        filter: WatchFilter,
        from: Revision,
    ) -> Result<ChangeStream, ConsensusError> {
        let next = {
            let shared = self.inner.lock();
            if shared.shut_down {
                return Err(ConsensusError::Shutdown);
            }
            if from == Revision(0) {
                shared.first_available
            } else if from < shared.first_available {
                return Err(ConsensusError::Compacted {
                    requested: from,
                    oldest: shared.first_available,
                });
            } else {
                from
            }
        };
        let cursor = Cursor {
            inner: Arc::clone(&self.inner),
            filter,
            next,
            rx: self.inner.applied.subscribe(),
            buffer: VecDeque::new(),
            done: false,
        };
        Ok(futures::stream::unfold(cursor, Cursor::next_item).boxed())
    }

    async fn status(&self) -> Result<ConsensusStatus, ConsensusError> {
        let shared = self.inner.lock();
        if shared.shut_down {
            return Err(ConsensusError::Shutdown);
        }
        Ok(ConsensusStatus {
            id: self.inner.id,
            leader: Some(self.inner.id),
            term: 1,
            voters: BTreeSet::from([self.inner.id]),
            applied: shared.state.revision,
        })
    }

    async fn add_voter(&self, id: NodeId, _address: String) -> Result<(), ConsensusError> {
        Err(ConsensusError::Membership(format!(
            "MemConsensus has exactly one member ({}); cannot add {id}",
            self.inner.id
        )))
    }

    async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError> {
        Err(ConsensusError::Membership(format!(
            "MemConsensus has exactly one member ({}); cannot remove {id}",
            self.inner.id
        )))
    }
}
