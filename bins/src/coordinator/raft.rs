//! The coordinator's raft member on its own transport, waiting for a leader, and the
//! proposals the daemon makes itself (node record cordon, join tokens). The coordinator role
//! gets the member through [`CoordinatorConsensus`], which lets a follower stand by.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use cloudless_core::clock::{Clock, SystemClock};
use cloudless_core::consensus::{Consensus, ConsensusError};
use cloudless_core::ids::NodeId;
use cloudless_core::state::{Command, CommandEnvelope};
use cloudless_core::transport::Transport;
use cloudless_net::identity::{ClusterCa, JoinToken, NodeCredentials, TokenRole};
use cloudless_net::quic::{QuicConfig, QuicTransport};
use cloudless_net::{Router, RpcConfig, RpcEndpoint};
use cloudless_store::{RaftConsensus, RaftConsensusConfig, RaftService};

use super::RAFT_DIR;
use super::api_peers::serve_api_address;

pub(super) fn bind(addr: SocketAddr, creds: &NodeCredentials) -> Result<Arc<QuicTransport>> {
    Ok(Arc::new(
        QuicTransport::bind(addr, creds, QuicConfig::default())
            .map_err(|e| anyhow!("binding {addr}: {e}"))?,
    ))
}

/// A raft member on its own transport.
pub(super) struct RaftMember {
    pub(super) consensus: RaftConsensus,
    pub(super) endpoint: RpcEndpoint,
    pub(super) transport: Arc<QuicTransport>,
    /// What [`API_ADDRESS`](super::API_ADDRESS) answers (empty until the API is bound).
    pub(super) api_address: Arc<std::sync::Mutex<String>>,
}

pub(super) async fn start_raft(
    creds: &NodeCredentials,
    dir: &Path,
    bind_addr: SocketAddr,
) -> Result<RaftMember> {
    let id = creds.identity().clone();
    let transport = bind(bind_addr, creds).context("raft_listen")?;
    let service = RaftService::new(id.cluster.clone());
    let mut router = Router::new();
    service.register(&mut router);
    let api_address = Arc::new(std::sync::Mutex::new(String::new()));
    serve_api_address(&mut router, Arc::clone(&api_address));
    let t: Arc<dyn Transport> = transport.clone();
    let endpoint = RpcEndpoint::start(Arc::clone(&t), router, RpcConfig::default())?;
    let consensus = RaftConsensus::start(
        RaftConsensusConfig::new(id.node, id.cluster, dir.join(RAFT_DIR)),
        t,
        endpoint.client(),
        &service,
    )
    .await
    .with_context(|| format!("opening the raft data in {}", dir.join(RAFT_DIR).display()))?;
    Ok(RaftMember {
        consensus,
        endpoint,
        transport,
        api_address,
    })
}

pub(super) async fn wait_leader(c: &RaftConsensus, limit: Duration) -> Result<NodeId> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(s) = c.status().await
            && let Some(l) = s.leader
        {
            return Ok(l);
        }
        if Instant::now() > deadline {
            bail!(
                "no raft leader after {} s (is a majority of coordinators up?)",
                limit.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub(super) async fn propose(c: &dyn Consensus, command: Command) -> Result<()> {
    c.propose(CommandEnvelope::new(SystemClock.now_ms(), command))
        .await
        .map(|_| ())
        .map_err(|e| anyhow!("{e}"))
}

/// A coordinator has a node record (it reserves the coordinator's name and id, which enrollment
/// mints from the node table and `status` shows) but runs no agent: the record is cordoned so
/// it never reads as a schedulable node. It stays `Joining` (nothing heartbeats for it).
pub(super) async fn cordon_coordinator(c: &dyn Consensus, node: NodeId) -> Result<()> {
    let state = c.state().await.map_err(|e| anyhow!("{e}"))?;
    let needed = state
        .nodes
        .get(&node)
        .is_some_and(|n| !n.schedulability.cordoned);
    drop(state);
    if needed {
        propose(
            c,
            Command::Cordon {
                node,
                cordoned: true,
            },
        )
        .await
        .with_context(|| format!("cordoning the node record of coordinator {node}"))?;
    }
    Ok(())
}

/// Creates a join token for `role` in the cluster state; returns its text (`CLD1-...`).
pub(super) async fn create_token(
    c: &dyn Consensus,
    ca: &ClusterCa,
    role: TokenRole,
    ttl: Duration,
    max_uses: Option<u32>,
) -> Result<zeroize::Zeroizing<String>> {
    let token = JoinToken::generate(ca.digest())?;
    let record = token.record(role, SystemClock.now_ms(), ttl, max_uses);
    propose(c, Command::CreateJoinToken { token: record }).await?;
    Ok(token.reveal())
}

/// The consensus handed to the coordinator role: the raft member, except that `state()` on a
/// follower answers the member's applied state instead of `NotLeader`. The coordinator reads
/// the state once at start and acts only while leading (where reads stay linearizable), so a
/// follower coordinator can start and stand by; the API and enrollment get the plain member.
pub(super) struct CoordinatorConsensus(pub(super) RaftConsensus);

#[async_trait::async_trait]
impl Consensus for CoordinatorConsensus {
    async fn propose(
        &self,
        command: CommandEnvelope,
    ) -> Result<cloudless_core::state::Applied, ConsensusError> {
        self.0.propose(command).await
    }

    async fn state(&self) -> Result<Arc<cloudless_core::state::ClusterState>, ConsensusError> {
        match self.0.state().await {
            Err(ConsensusError::NotLeader { .. }) => Ok(self.0.local_state()),
            other => other,
        }
    }

    async fn watch(
        &self,
        filter: cloudless_core::consensus::WatchFilter,
        from: cloudless_core::ids::Revision,
    ) -> Result<cloudless_core::consensus::ChangeStream, ConsensusError> {
        self.0.watch(filter, from).await
    }

    async fn status(&self) -> Result<cloudless_core::consensus::ConsensusStatus, ConsensusError> {
        self.0.status().await
    }

    async fn add_voter(&self, id: NodeId, address: String) -> Result<(), ConsensusError> {
        self.0.add_voter(id, address).await
    }

    async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError> {
        self.0.remove_voter(id).await
    }
}
