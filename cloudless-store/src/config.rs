//! Settings of a [`RaftConsensus`](crate::RaftConsensus) member.

use std::path::PathBuf;
use std::time::Duration;

use cloudless_core::ids::NodeId;

use crate::profile::{Compaction, Timeouts};
use crate::store::DEFAULT_RETAINED_CHANGES;

/// Settings of one raft member.
///
/// ```rust
/// use std::time::Duration;
///
/// use cloudless_core::ids::NodeId;
/// use cloudless_store::{RaftConsensusConfig, Timeouts};
///
/// // A coordinator across a WAN: slower heartbeats and elections than on a LAN.
/// let config = RaftConsensusConfig::new(NodeId(2), "home", "/var/lib/cloudless/raft")
///     .with_timeouts(Timeouts::wan())
///     .with_propose_timeout(Duration::from_secs(10));
/// assert_eq!(config.timeouts, Timeouts::wan());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftConsensusConfig {
    /// This member's node id (also its raft id).
    pub id: NodeId,
    /// The cluster name: raft traffic is accepted only from coordinators of this cluster.
    pub cluster: String,
    /// Directory of the redb data file.
    pub data_dir: PathBuf,
    /// Heartbeat and election timing.
    pub timeouts: Timeouts,
    /// Snapshot and log purge thresholds.
    pub compaction: Compaction,
    /// How many applied changes the watch history keeps.
    pub retained_changes: usize,
    /// Longest wait for a proposal (or membership change) to commit before `Unavailable`.
    pub propose_timeout: Duration,
    /// Seed of this member's election timeout (`None`: openraft's OS-seeded draw). Tests set
    /// it so elections follow the test's seed; see `docs/determinism.md`.
    pub election_seed: Option<u64>,
}

impl RaftConsensusConfig {
    /// Member `id` of `cluster`, storing in `data_dir`, with the `lan` profile and default
    /// compaction and history.
    pub fn new(id: NodeId, cluster: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            id,
            cluster: cluster.into(),
            data_dir: data_dir.into(),
            timeouts: Timeouts::lan(),
            compaction: Compaction::default(),
            retained_changes: DEFAULT_RETAINED_CHANGES,
            propose_timeout: Duration::from_secs(5),
            election_seed: None,
        }
    }

    /// Sets the timing profile.
    pub fn with_timeouts(mut self, timeouts: Timeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Sets the compaction thresholds.
    pub fn with_compaction(mut self, compaction: Compaction) -> Self {
        self.compaction = compaction;
        self
    }

    /// Sets the watch history size.
    pub fn with_retained_changes(mut self, n: usize) -> Self {
        self.retained_changes = n;
        self
    }

    /// Draws this member's election timeout from `seed` (and its id) instead of the OS RNG.
    pub fn with_election_seed(mut self, seed: u64) -> Self {
        self.election_seed = Some(seed);
        self
    }

    /// Sets the proposal timeout.
    pub fn with_propose_timeout(mut self, timeout: Duration) -> Self {
        self.propose_timeout = timeout;
        self
    }
}
