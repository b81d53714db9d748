//! An in-process raft cluster on MemTransport with real redb files in a temp dir.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

pub mod commands;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cloudless_core::consensus::{
    ChangeStream, Consensus, ConsensusError, ConsensusStatus, WatchFilter,
};
use cloudless_core::ids::{NodeId, Revision};
use cloudless_core::state::{Applied, ClusterState, CommandEnvelope};
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::mem::{MemNetwork, MemTransport, addr_of};
use cloudless_net::{Router, RpcConfig, RpcEndpoint};
use cloudless_store::{RaftConsensus, RaftConsensusConfig, RaftService, Timeouts};
use tempfile::TempDir;
use tokio::time::Instant;

pub const CLUSTER: &str = "test";

/// Timings for tests on a busy 2-core machine: heartbeats frequent enough for quick commits,
/// an election timeout long enough (≥ 8 heartbeats) that CPU starvation under a loaded CI run
/// does not depose a healthy leader in the middle of a test.
pub fn test_timeouts() -> Timeouts {
    Timeouts {
        heartbeat: Duration::from_millis(100),
        election_min: Duration::from_millis(800),
        election_max: Duration::from_millis(1600),
        snapshot_chunk: Duration::from_secs(2),
    }
}

pub fn identity(n: u64, role: Role) -> PeerIdentity {
    PeerIdentity {
        cluster: CLUSTER.into(),
        role,
        node: NodeId(n),
    }
}

/// One running member.
pub struct Member {
    pub consensus: RaftConsensus,
    pub transport: Arc<MemTransport>,
    _endpoint: RpcEndpoint,
}

pub type Tweak = Arc<dyn Fn(RaftConsensusConfig) -> RaftConsensusConfig + Send + Sync>;

pub struct Cluster {
    pub net: MemNetwork,
    pub dir: TempDir,
    pub members: BTreeMap<u64, Member>,
    tweak: Tweak,
    /// The run's seed: network faults and every member's election timeout follow it.
    seed: u64,
}

impl Cluster {
    /// Starts `n` members (ids 1..=n), initializes them as voters and waits for a leader.
    pub async fn start(n: u64, seed: u64) -> Self {
        Self::start_with(n, seed, Arc::new(|c| c)).await
    }

    pub async fn start_with(n: u64, seed: u64, tweak: Tweak) -> Self {
        Self::start_in(n, seed, tweak, TempDir::new().unwrap()).await
    }

    /// Like [`Self::start_with`], with the members' data under `dir`.
    pub async fn start_in(n: u64, seed: u64, tweak: Tweak, dir: TempDir) -> Self {
        let mut cluster = Self {
            net: MemNetwork::new(seed),
            dir,
            members: BTreeMap::new(),
            tweak,
            seed,
        };
        for id in 1..=n {
            cluster.start_member(id).await;
        }
        let voters = (1..=n)
            .map(|id| (NodeId(id), addr_of(NodeId(id))))
            .collect();
        cluster.member(1).initialize(voters).await.unwrap();
        cluster.wait_leader(&[]).await;
        cluster
    }

    /// A cluster with no members yet (start them with [`Self::start_member`]), its data
    /// under `dir`.
    pub fn empty(seed: u64, dir: TempDir) -> Self {
        Self {
            net: MemNetwork::new(seed),
            dir,
            members: BTreeMap::new(),
            tweak: Arc::new(|c| c),
            seed,
        }
    }

    /// Starts (or restarts, from its files) member `id`.
    pub async fn start_member(&mut self, id: u64) {
        let transport = Arc::new(self.net.endpoint(identity(id, Role::Coordinator)));
        let service = RaftService::new(CLUSTER);
        let mut router = Router::new();
        service.register(&mut router);
        let endpoint = RpcEndpoint::start(transport.clone(), router, RpcConfig::default()).unwrap();
        let config =
            RaftConsensusConfig::new(NodeId(id), CLUSTER, self.dir.path().join(format!("n{id}")))
                .with_timeouts(test_timeouts())
                .with_propose_timeout(Duration::from_secs(3))
                .with_election_seed(self.seed);
        let config = (self.tweak)(config);
        // A crashed member's file may still be held by its stopping tasks for a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
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
                Err(cloudless_store::StartError::Open(cloudless_store::OpenError::InUse {
                    ..
                })) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => panic!("member {id} failed to start: {e}"),
            }
        };
        self.members.insert(
            id,
            Member {
                consensus,
                transport,
                _endpoint: endpoint,
            },
        );
    }

    /// Stops member `id` as a crash would: raft stops, its endpoint goes away.
    pub async fn crash(&mut self, id: u64) {
        if let Some(m) = self.members.remove(&id) {
            m.consensus.shutdown().await;
        }
    }

    pub fn member(&self, id: u64) -> &RaftConsensus {
        &self.members[&id].consensus
    }

    /// Waits until every running member not in `except` agrees on one leader among the
    /// running members; returns it.
    pub async fn wait_leader(&self, except: &[u64]) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let leaders: Vec<Option<u64>> = self
                .members
                .iter()
                .filter(|(id, _)| !except.contains(id))
                .map(|(_, m)| m.consensus.raft().metrics().borrow().current_leader)
                .collect();
            if let Some(Some(l)) = leaders.first()
                && leaders.iter().all(|x| *x == Some(*l))
                && self.members.contains_key(l)
                && !except.contains(l)
                && self.members[l].consensus.raft().metrics().borrow().state
                    == openraft::ServerState::Leader
            {
                return *l;
            }
            assert!(Instant::now() < deadline, "no agreed leader: {leaders:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until member `id` has applied revision `rev`.
    pub async fn wait_applied(&self, id: u64, rev: Revision) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let status = self.member(id).status().await.unwrap();
            if status.applied >= rev {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "member {id} stuck at {:?}, want {rev:?}",
                status.applied
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// `add_voter` of member `id` (at its `cloudless_net::mem` address) through member
    /// `leader`, retried on Unavailable as a client would: catching a new member up (a snapshot,
    /// or the whole log) can outlast one call's timeout on a loaded machine. A retry is safe:
    /// openraft re-adds a node that is already a learner or voter.
    pub async fn add_voter(&self, leader: u64, id: u64) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match self
                .member(leader)
                .add_voter(NodeId(id), addr_of(NodeId(id)))
                .await
            {
                Ok(()) => return,
                Err(ConsensusError::Unavailable(e)) if Instant::now() < deadline => {
                    eprintln!("add_voter {id}: {e}; retrying");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(e) => panic!("add_voter {id} through {leader}: {e}"),
            }
        }
    }

    pub async fn shutdown(&mut self) {
        let ids: Vec<u64> = self.members.keys().copied().collect();
        for id in ids {
            self.crash(id).await;
        }
    }
}

/// A whole cluster behind its leader's handle, for the conformance suite.
pub struct OnLeader {
    pub cluster: Cluster,
    pub leader: RaftConsensus,
}

impl OnLeader {
    pub async fn start(n: u64, seed: u64) -> Self {
        Self::start_with(n, seed, Arc::new(|c| c)).await
    }

    pub async fn start_with(n: u64, seed: u64, tweak: Tweak) -> Self {
        let cluster = Cluster::start_with(n, seed, tweak).await;
        let leader = cluster.member(cluster.wait_leader(&[]).await).clone();
        Self { cluster, leader }
    }
}

impl Drop for OnLeader {
    fn drop(&mut self) {
        // Stop every member's raft task with the handle.
        for m in self.cluster.members.values() {
            let c = m.consensus.clone();
            tokio::spawn(async move { c.shutdown().await });
        }
    }
}

#[async_trait]
impl Consensus for OnLeader {
    async fn propose(&self, command: CommandEnvelope) -> Result<Applied, ConsensusError> {
        self.leader.propose(command).await
    }
    async fn state(&self) -> Result<Arc<ClusterState>, ConsensusError> {
        self.leader.state().await
    }
    async fn watch(
        &self,
        filter: WatchFilter,
        from: Revision,
    ) -> Result<ChangeStream, ConsensusError> {
        self.leader.watch(filter, from).await
    }
    async fn status(&self) -> Result<ConsensusStatus, ConsensusError> {
        self.leader.status().await
    }
    async fn add_voter(&self, id: NodeId, address: String) -> Result<(), ConsensusError> {
        self.leader.add_voter(id, address).await
    }
    async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError> {
        self.leader.remove_voter(id).await
    }
}
