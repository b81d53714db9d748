//! The coordinators' consensus in a simulation: one `MemConsensus` for a single coordinator, or
//! a raft group (`RaftConsensus` on `MemTransport`, redb files in the simulation's temp dir).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudless_core::consensus::{
    ChangeStream, Consensus, ConsensusError, ConsensusStatus, WatchFilter,
};
use cloudless_core::ids::{NodeId, Revision};
use cloudless_core::state::{Applied, ClusterState, CommandEnvelope};
use cloudless_core::testing::consensus::MemConsensus;
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::mem::MemNetwork;
use cloudless_net::{Router, RpcConfig, RpcEndpoint};
use cloudless_store::{
    OpenError, RaftConsensus, RaftConsensusConfig, RaftService, StartError, Timeouts,
};

use super::SimError;

/// Cluster name of the simulated raft group.
pub const SIM_CLUSTER: &str = "sim";

/// Raft timings for simulations: the `lan` heartbeat with an election timeout of 8–16
/// heartbeats, so a busy single-threaded runtime does not depose a healthy leader.
pub fn sim_timeouts() -> Timeouts {
    Timeouts {
        heartbeat: Duration::from_millis(100),
        election_min: Duration::from_millis(800),
        election_max: Duration::from_millis(1600),
        snapshot_chunk: Duration::from_secs(2),
    }
}

/// One running raft member and the RPC endpoint that serves its peers.
pub(crate) struct RaftMember {
    pub(crate) consensus: RaftConsensus,
    _endpoint: RpcEndpoint,
}

/// Where and how a raft member starts (cheap to clone, `'static`, so the start can run as its
/// own task while the simulator drives time).
#[derive(Clone)]
pub(crate) struct RaftStart {
    net: MemNetwork,
    dir: PathBuf,
    timeouts: Timeouts,
}

impl RaftStart {
    /// Starts (or restarts from its files) member `id`.
    pub(crate) async fn start(self, id: NodeId) -> Result<RaftMember, SimError> {
        let identity = PeerIdentity {
            cluster: SIM_CLUSTER.into(),
            role: Role::Coordinator,
            node: id,
        };
        let transport = Arc::new(self.net.endpoint(identity));
        let service = RaftService::new(SIM_CLUSTER);
        let mut router = Router::new();
        service.register(&mut router);
        let endpoint = RpcEndpoint::start(transport.clone(), router, RpcConfig::default())
            .map_err(|e| SimError::Setup(format!("raft endpoint of {id}: {e}")))?;
        let config =
            RaftConsensusConfig::new(id, SIM_CLUSTER, self.dir.join(format!("raft-{}", id.get())))
                .with_timeouts(self.timeouts)
                .with_propose_timeout(Duration::from_secs(5));
        // A crashed member's file may still be held by its stopping tasks for a moment.
        let mut tries = 0u32;
        let consensus = loop {
            match RaftConsensus::start(
                config.clone(),
                transport.clone(),
                endpoint.client(),
                &service,
            )
            .await
            {
                Ok(c) => break c,
                Err(StartError::Open(OpenError::InUse { .. })) if tries < 500 => {
                    tries += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => return Err(SimError::Setup(format!("raft member {id}: {e}"))),
            }
        };
        Ok(RaftMember {
            consensus,
            _endpoint: endpoint,
        })
    }
}

/// The raft members of a simulation.
pub(crate) struct RaftGroup {
    start: RaftStart,
    members: BTreeMap<NodeId, RaftMember>,
}

impl RaftGroup {
    /// A group with no running member; raft files go under `dir`.
    pub(crate) fn new(dir: PathBuf, seed: u64, timeouts: Timeouts) -> Self {
        Self {
            start: RaftStart {
                net: MemNetwork::new(seed),
                dir,
                timeouts,
            },
            members: BTreeMap::new(),
        }
    }

    /// The transport network of the raft traffic (for partitions).
    pub(crate) fn net(&self) -> &MemNetwork {
        &self.start.net
    }

    /// How to start a member.
    pub(crate) fn starter(&self) -> RaftStart {
        self.start.clone()
    }

    /// Adds a started member.
    pub(crate) fn insert(&mut self, id: NodeId, member: RaftMember) {
        self.members.insert(id, member);
    }

    /// The running member `id`.
    pub(crate) fn member(&self, id: NodeId) -> Option<&RaftConsensus> {
        self.members.get(&id).map(|m| &m.consensus)
    }

    /// Removes member `id` from the running set (the caller shuts it down).
    pub(crate) fn take(&mut self, id: NodeId) -> Option<RaftMember> {
        self.members.remove(&id)
    }

    /// Every running member's applied state.
    pub(crate) fn states(&self) -> Vec<Arc<ClusterState>> {
        self.members
            .values()
            .map(|m| m.consensus.local_state())
            .collect()
    }

    /// Ids of the running members.
    pub(crate) fn running(&self) -> Vec<NodeId> {
        self.members.keys().copied().collect()
    }
}

/// A raft member as the simulator hands it to its coordinator: every call goes to the member,
/// except that `state()` on a follower or without a quorum — which `RaftConsensus` answers with
/// `NotLeader` or `Unavailable` — falls back to the member's applied state (a serializable
/// read). A coordinator reads state
/// when it starts and after every watched change, including on followers; without this a
/// follower coordinator could not start (reported in the simulator's design record).
#[derive(Clone)]
pub(crate) struct FollowerReads(pub(crate) RaftConsensus);

#[async_trait]
impl Consensus for FollowerReads {
    async fn propose(&self, command: CommandEnvelope) -> Result<Applied, ConsensusError> {
        self.0.propose(command).await
    }

    async fn state(&self) -> Result<Arc<ClusterState>, ConsensusError> {
        match self.0.state().await {
            Err(ConsensusError::NotLeader { .. } | ConsensusError::Unavailable(_)) => {
                Ok(self.0.local_state())
            }
            other => other,
        }
    }

    async fn watch(
        &self,
        filter: WatchFilter,
        from: Revision,
    ) -> Result<ChangeStream, ConsensusError> {
        self.0.watch(filter, from).await
    }

    async fn status(&self) -> Result<ConsensusStatus, ConsensusError> {
        self.0.status().await
    }

    async fn add_voter(&self, id: NodeId, address: String) -> Result<(), ConsensusError> {
        self.0.add_voter(id, address).await
    }

    async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError> {
        self.0.remove_voter(id).await
    }
}

/// Which consensus the coordinators of a simulation share.
pub(crate) enum Members {
    /// One coordinator on an in-memory store that survives its restarts.
    Mem(MemConsensus),
    /// Raft members, one per coordinator.
    Raft(RaftGroup),
}

impl Members {
    /// The running consensus of coordinator `id` (`Mem`: the shared store).
    pub(crate) fn open_running(&self, id: NodeId) -> Option<Arc<dyn Consensus>> {
        match self {
            Members::Mem(m) => Some(Arc::new(m.clone())),
            Members::Raft(g) => g
                .member(id)
                .map(|c| Arc::new(FollowerReads(c.clone())) as Arc<dyn Consensus>),
        }
    }

    /// The running raft member `id`.
    pub(crate) fn raft_member(&self, id: NodeId) -> Option<RaftConsensus> {
        match self {
            Members::Mem(_) => None,
            Members::Raft(g) => g.member(id).cloned(),
        }
    }

    /// True if a raft member may be waiting on its log writer: an entry appended but not yet
    /// applied, members at different log positions, or no known leader (an election, whose
    /// votes are persisted).
    pub(crate) fn raft_busy(&self) -> bool {
        let Members::Raft(g) = self else {
            return false;
        };
        let mut last = None;
        for m in g.members.values() {
            let metrics = m.consensus.raft().metrics().borrow().clone();
            let applied = metrics.last_applied.map(|l| l.index);
            if metrics.current_leader.is_none() || metrics.last_log_index != applied {
                return true;
            }
            if last.is_some_and(|l| l != metrics.last_log_index) {
                return true;
            }
            last = Some(metrics.last_log_index);
        }
        false
    }

    /// One line per running raft member: term, leader, log and applied index.
    pub(crate) fn describe(&self) -> Vec<String> {
        let Members::Raft(g) = self else {
            return vec!["mem consensus".into()];
        };
        g.members
            .iter()
            .map(|(id, m)| {
                let x = m.consensus.raft().metrics().borrow().clone();
                format!(
                    "raft {id}: term {} leader {:?} log {:?} applied {:?} {:?}",
                    x.current_term,
                    x.current_leader,
                    x.last_log_index,
                    x.last_applied.map(|l| l.index),
                    x.state
                )
            })
            .collect()
    }

    /// True if any raft member runs (the paused clock must then be governed).
    pub(crate) fn raft_running(&self) -> bool {
        matches!(self, Members::Raft(g) if !g.members.is_empty())
    }

    /// The freshest state any running member has applied, without a quorum round (the
    /// simulator's observer view; `None` when no member runs).
    pub(crate) async fn observe(&self) -> Option<Arc<ClusterState>> {
        match self {
            Members::Mem(m) => m.state().await.ok(),
            Members::Raft(g) => g
                .members
                .values()
                .map(|m| m.consensus.local_state())
                .max_by_key(|s| s.revision),
        }
    }

    /// The raft member that believes it leads, in the highest term (`Mem`: always `only`).
    pub(crate) fn leader(&self, only: NodeId) -> Option<NodeId> {
        match self {
            Members::Mem(_) => Some(only),
            Members::Raft(g) => g
                .members
                .iter()
                .filter_map(|(id, m)| {
                    let metrics = m.consensus.raft().metrics().borrow().clone();
                    (metrics.current_leader == Some(id.0)).then_some((metrics.current_term, *id))
                })
                .max()
                .map(|(_, id)| id),
        }
    }
}
