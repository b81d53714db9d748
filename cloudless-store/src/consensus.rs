//! [`RaftConsensus`]: the [`Consensus`] trait on openraft.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use async_trait::async_trait;
use cloudless_core::consensus::{
    ChangeStream, Consensus, ConsensusError, ConsensusStatus, WatchFilter,
};
use cloudless_core::ids::{NodeId, Revision};
use cloudless_core::state::{Applied, ClusterState, CommandEnvelope};
use cloudless_core::transport::Transport;
use cloudless_net::RpcClient;
use openraft::BasicNode;
use openraft::error::{CheckIsLeaderError, ClientWriteError, Fatal, RaftError};

use crate::batcher::Batcher;
use crate::config::RaftConsensusConfig;
use crate::db::OpenError;
use crate::history::Hub;
use crate::network::RpcNetworkFactory;
use crate::profile::openraft_config;
use crate::server::RaftService;
use crate::store::open_store;
use crate::types::Raft;

/// Why a member could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be opened.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// The timing or compaction settings are invalid.
    #[error("invalid raft settings: {0}")]
    Config(#[from] openraft::ConfigError),
    /// The raft service was already attached to another member.
    #[error("the raft service already serves another member")]
    ServiceInUse,
    /// openraft failed to start (storage failure while loading state).
    #[error("raft failed to start: {0}")]
    Raft(String),
}

/// A raft member serving the [`Consensus`] contract.
///
/// Proposals go through `client_write` on the leader (followers answer `NotLeader` with the
/// leader hint); `state()` is linearizable through a read-index (`ensure_linearizable`);
/// watches read the local applied history.
#[derive(Clone)]
pub struct RaftConsensus {
    id: NodeId,
    raft: Raft,
    batcher: Batcher,
    hub: Arc<Hub>,
    config: RaftConsensusConfig,
    /// Held by every handle; background tasks stop when the last handle is dropped.
    _alive: Arc<()>,
    /// The term and last log index when this member started (see `read_index`).
    startup: (u64, u64),
    /// Test-only: serve `state()` from the local applied state without a read-index.
    #[cfg(feature = "fault-injection")]
    stale_reads: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for RaftConsensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftConsensus")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl RaftConsensus {
    /// Opens the data directory, starts raft with the network over `client`/`transport` and
    /// attaches it to `service` (whose routes the member's RPC endpoint serves).
    pub async fn start(
        config: RaftConsensusConfig,
        transport: Arc<dyn Transport>,
        client: RpcClient,
        service: &RaftService,
    ) -> Result<Self, StartError> {
        let raft_config = openraft_config(
            &config.cluster,
            config.timeouts,
            config.compaction,
            config.election_seed.map(|seed| (seed, config.id.0)),
        )?;
        let store = open_store(&config.data_dir, config.retained_changes)?;
        let network = RpcNetworkFactory::new(transport, client);
        let raft = Raft::new(
            config.id.0,
            Arc::new(raft_config),
            network,
            store.log,
            store.state_machine,
        )
        .await
        .map_err(|e| StartError::Raft(e.to_string()))?;
        if !service.attach(raft.clone()) {
            drop(raft.shutdown().await);
            return Err(StartError::ServiceInUse);
        }
        let startup = {
            let m = raft.metrics();
            let m = m.borrow();
            (m.current_term, m.last_log_index.unwrap_or(0))
        };
        let alive = Arc::new(());
        if let Some(limit) = config.compaction.snapshot_log_bytes {
            tokio::spawn(snapshot_by_size(
                raft.clone(),
                store.appended,
                limit,
                config.timeouts.heartbeat,
                Arc::downgrade(&alive),
            ));
        }
        Ok(Self {
            id: config.id,
            batcher: Batcher::start(raft.clone(), write_error),
            raft,
            hub: store.hub,
            config,
            _alive: alive,
            startup,
            #[cfg(feature = "fault-injection")]
            stale_reads: Arc::default(),
        })
    }

    /// Creates a new cluster with `members` (id → raft address) as its voters. Call once, on
    /// one member of a fresh cluster.
    pub async fn initialize(
        &self,
        members: BTreeMap<NodeId, String>,
    ) -> Result<(), ConsensusError> {
        let nodes: BTreeMap<u64, BasicNode> = members
            .into_iter()
            .map(|(id, addr)| (id.0, BasicNode::new(addr)))
            .collect();
        self.raft.initialize(nodes).await.map_err(|e| match e {
            RaftError::APIError(e) => ConsensusError::Membership(e.to_string()),
            RaftError::Fatal(f) => fatal(f),
        })
    }

    /// The openraft handle (metrics, triggers), for tests and diagnostics.
    pub fn raft(&self) -> &Raft {
        &self.raft
    }

    /// This member's applied state without a read-index round: possibly stale on a follower
    /// or a deposed leader (a serializable read, like etcd's `--consistency=s`).
    pub fn local_state(&self) -> Arc<ClusterState> {
        Arc::clone(&self.hub.lock().state)
    }

    /// **Test-only fault injection** (feature `fault-injection`, off by default): when `on`,
    /// `state()` skips the read-index and answers this member's local applied state, which
    /// may be stale on a follower or a deposed leader. It exists to show that the
    /// linearizability checker catches such a bug (`tests/linearizability.rs`).
    #[cfg(feature = "fault-injection")]
    pub fn inject_stale_reads(&self, on: bool) {
        self.stale_reads
            .store(on, std::sync::atomic::Ordering::SeqCst);
    }

    /// This member's id.
    pub fn id(&self) -> NodeId {
        self.id
    }

    /// Stops raft and ends every watch stream with `Shutdown`.
    pub async fn shutdown(&self) {
        // A join error means the core task is already gone; either way it is stopped.
        drop(self.raft.shutdown().await);
        self.hub.shutdown();
    }

    async fn within<T>(&self, what: &str, f: impl Future<Output = T>) -> Result<T, ConsensusError> {
        tokio::time::timeout(self.config.propose_timeout, f)
            .await
            .map_err(|_| {
                ConsensusError::Unavailable(format!(
                    "{what} did not complete within {:?} (no quorum?)",
                    self.config.propose_timeout
                ))
            })
    }

    fn voters(&self) -> BTreeSet<u64> {
        self.raft
            .metrics()
            .borrow()
            .membership_config
            .membership()
            .voter_ids()
            .collect()
    }

    /// Confirms leadership with a quorum and waits until this member applied everything
    /// committed before the read started (read-index).
    ///
    /// openraft's read index is `max(committed, leader's first entry)`; right after an
    /// election, before the leader's first entry is known, it can be a stale committed index
    /// (loaded from disk), which would miss entries the previous leader committed (Raft §8).
    /// So the read index must be from the current term; otherwise we wait for the leader's
    /// first entry to apply and ask again.
    ///
    /// A leader restarted with its committed vote resumes leadership in the *same* term
    /// without an election or a new entry (openraft 0.9), and its committed index comes from
    /// disk, where it may lag; a read index from that term can then be stale too. Every entry
    /// such a leader may have had committed is in its own log (it was the term's only
    /// leader; earlier terms by leader completeness), so reads in the start-up term also wait
    /// until everything in the log at start-up is applied. (Not in later terms: there the
    /// leader's first entry covers it, and a follower's start-up log may have had an
    /// uncommitted tail that was since replaced.)
    async fn read_index(&self) -> Result<(), ConsensusError> {
        loop {
            let read = self.raft.ensure_linearizable().await.map_err(read_error)?;
            let (term, applied) = {
                let m = self.raft.metrics();
                let m = m.borrow();
                (m.current_term, m.last_applied.map_or(0, |a| a.index))
            };
            if read.is_some_and(|id| id.leader_id.term >= term) {
                let (startup_term, floor) = self.startup;
                if term != startup_term || applied >= floor {
                    return Ok(());
                }
                self.raft
                    .wait(None)
                    .metrics(
                        |m| {
                            m.current_term != term
                                || m.last_applied.is_some_and(|a| a.index >= floor)
                        },
                        "the log at start-up is applied",
                    )
                    .await
                    .map_err(|e| ConsensusError::Unavailable(e.to_string()))?;
                continue;
            }
            self.raft
                .wait(None)
                .metrics(
                    |m| {
                        m.current_term != term
                            || m.last_applied.is_some_and(|id| id.leader_id.term >= term)
                    },
                    "the leader's first entry is applied",
                )
                .await
                .map_err(|e| ConsensusError::Unavailable(e.to_string()))?;
        }
    }

    /// `NotLeader` unless this member leads: membership changes are decided by the leader,
    /// and a follower may otherwise report an in-progress change instead of the redirect.
    fn leading(&self) -> Result<(), ConsensusError> {
        let leader = self.raft.metrics().borrow().current_leader;
        if leader == Some(self.id.0) {
            Ok(())
        } else {
            Err(ConsensusError::NotLeader {
                leader: leader.map(NodeId),
            })
        }
    }

    async fn change_voters(&self, voters: BTreeSet<u64>) -> Result<(), ConsensusError> {
        let changed = self
            .within(
                "membership change",
                self.raft.change_membership(voters, false),
            )
            .await?;
        changed.map(drop).map_err(write_error)
    }
}

/// Size-based log compaction: every `every`, if more than `limit` bytes of log were appended
/// since the last snapshot started, asks openraft for a snapshot (after which it purges the
/// log behind it as for count-based snapshots). Ends when raft stops or every handle is gone.
async fn snapshot_by_size(
    raft: Raft,
    appended: Arc<std::sync::atomic::AtomicU64>,
    limit: u64,
    every: std::time::Duration,
    alive: std::sync::Weak<()>,
) {
    let mut metrics = raft.metrics();
    loop {
        tokio::time::sleep(every).await;
        if alive.strong_count() == 0 || metrics.has_changed().is_err() {
            return;
        }
        metrics.mark_unchanged();
        if appended.load(std::sync::atomic::Ordering::Relaxed) > limit {
            // The builder resets the count when it starts, so this fires once per crossing;
            // a trigger while a snapshot is being built is ignored by openraft.
            if raft.trigger().snapshot().await.is_err() {
                return;
            }
        }
    }
}

fn fatal(f: Fatal<u64>) -> ConsensusError {
    match f {
        Fatal::Stopped => ConsensusError::Shutdown,
        other => ConsensusError::Storage(other.to_string()),
    }
}

fn write_error(e: RaftError<u64, ClientWriteError<u64, BasicNode>>) -> ConsensusError {
    match e {
        RaftError::APIError(ClientWriteError::ForwardToLeader(f)) => ConsensusError::NotLeader {
            leader: f.leader_id.map(NodeId),
        },
        RaftError::APIError(ClientWriteError::ChangeMembershipError(e)) => {
            ConsensusError::Membership(e.to_string())
        }
        RaftError::Fatal(f) => fatal(f),
    }
}

fn read_error(e: RaftError<u64, CheckIsLeaderError<u64, BasicNode>>) -> ConsensusError {
    match e {
        RaftError::APIError(CheckIsLeaderError::ForwardToLeader(f)) => ConsensusError::NotLeader {
            leader: f.leader_id.map(NodeId),
        },
        RaftError::APIError(CheckIsLeaderError::QuorumNotEnough(q)) => {
            ConsensusError::Unavailable(q.to_string())
        }
        RaftError::Fatal(f) => fatal(f),
    }
}

#[async_trait]
impl Consensus for RaftConsensus {
    async fn propose(&self, command: CommandEnvelope) -> Result<Applied, ConsensusError> {
        Ok(self
            .within("proposal", self.batcher.submit(command))
            .await???)
    }

    async fn state(&self) -> Result<Arc<ClusterState>, ConsensusError> {
        #[cfg(feature = "fault-injection")]
        if self.stale_reads.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(self.local_state());
        }
        self.within("read index", self.read_index()).await??;
        Ok(Arc::clone(&self.hub.lock().state))
    }

    async fn watch(
        &self,
        filter: WatchFilter,
        from: Revision,
    ) -> Result<ChangeStream, ConsensusError> {
        self.hub.watch(filter, from)
    }

    async fn status(&self) -> Result<ConsensusStatus, ConsensusError> {
        let (leader, term, voters) = {
            let m = self.raft.metrics().borrow().clone();
            if let Err(f) = m.running_state {
                return Err(fatal(f));
            }
            let voters = m
                .membership_config
                .membership()
                .voter_ids()
                .map(NodeId)
                .collect();
            (m.current_leader.map(NodeId), m.current_term, voters)
        };
        Ok(ConsensusStatus {
            id: self.id,
            leader,
            term,
            voters,
            applied: self.hub.lock().state.revision,
        })
    }

    async fn add_voter(&self, id: NodeId, address: String) -> Result<(), ConsensusError> {
        self.leading()?;
        let added = self
            .within(
                "adding a learner",
                self.raft.add_learner(id.0, BasicNode::new(address), true),
            )
            .await?;
        added.map_err(write_error)?;
        let mut voters = self.voters();
        voters.insert(id.0);
        self.change_voters(voters).await
    }

    async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError> {
        self.leading()?;
        let mut voters = self.voters();
        if !voters.remove(&id.0) {
            return Err(ConsensusError::Membership(format!("{id} is not a voter")));
        }
        self.change_voters(voters).await
    }
}
