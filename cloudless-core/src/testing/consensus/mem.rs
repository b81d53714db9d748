//! [`MemConsensus`]: the single-member in-memory [`Consensus`](crate::consensus::Consensus).

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;

use crate::change_hub::ChangeHub;
use crate::consensus::{ChangeStream, Consensus, ConsensusError, ConsensusStatus, WatchFilter};
use crate::ids::{NodeId, Revision};
use crate::state::{Applied, ClusterState, CommandEnvelope, apply};

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
/// refused. Commands are applied with [`crate::state::apply`] under the hub's lock, so they
/// have one total order; the state is shared copy-on-write (`Arc::make_mut`), so `state()` is
/// cheap and a snapshot never changes under its reader. Watches come from the shared
/// [`ChangeHub`]. Cloning the handle shares the member.
#[derive(Clone)]
pub struct MemConsensus {
    id: NodeId,
    hub: Arc<ChangeHub<()>>,
}

impl std::fmt::Debug for MemConsensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemConsensus")
            .field("id", &self.id)
            .field("applied", &self.hub.notified())
            .finish_non_exhaustive()
    }
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
        Self {
            id: config.id,
            hub: ChangeHub::new(state, (), config.retained_changes),
        }
    }

    /// Stops serving: later calls fail with `Shutdown` and open watch streams end with it.
    pub fn shutdown(&self) {
        self.hub.shutdown();
    }
}

#[async_trait]
impl Consensus for MemConsensus {
    async fn propose(&self, command: CommandEnvelope) -> Result<Applied, ConsensusError> {
        let applied = {
            let mut a = self.hub.lock();
            a.ensure_running()?;
            let applied = apply(Arc::make_mut(&mut a.state), &command)?;
            if !applied.deduplicated {
                a.record(&applied.changes);
            }
            applied
        };
        if !applied.deduplicated {
            self.hub.notify(applied.revision);
        }
        Ok(applied)
    }

    async fn state(&self) -> Result<Arc<ClusterState>, ConsensusError> {
        let a = self.hub.lock();
        a.ensure_running()?;
        Ok(Arc::clone(&a.state))
    }

    async fn watch(
        &self,
        filter: WatchFilter,
        from: Revision,
    ) -> Result<ChangeStream, ConsensusError> {
        self.hub.watch(filter, from)
    }

    async fn status(&self) -> Result<ConsensusStatus, ConsensusError> {
        let a = self.hub.lock();
        a.ensure_running()?;
        Ok(ConsensusStatus {
            id: self.id,
            leader: Some(self.id),
            term: 1,
            voters: BTreeSet::from([self.id]),
            applied: a.state.revision,
        })
    }

    async fn add_voter(&self, id: NodeId, _address: String) -> Result<(), ConsensusError> {
        Err(ConsensusError::Membership(format!(
            "MemConsensus has exactly one member ({}); cannot add {id}",
            self.id
        )))
    }

    async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError> {
        Err(ConsensusError::Membership(format!(
            "MemConsensus has exactly one member ({}); cannot remove {id}",
            self.id
        )))
    }
}
