//! `run`: every part of a running coordinator from its data dir (raft member, control
//! transport with the Fabric coordinator role, enrollment, revocation mirror, public API and
//! its peer table) and their shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result, anyhow, bail};
use cloudless::api::{ApiConfig, ApiServer, ApiTls};
use cloudless::coordinator::{CoordinatorConfig, mirror_revocations};
use cloudless::fabric::{Fabric, FabricHandle};
use cloudless_core::clock::{Clock, SystemClock};
use cloudless_core::consensus::Consensus;
use cloudless_core::transport::Transport;
use cloudless_net::Router;
use cloudless_net::identity::enroll::{EnrollConfig, EnrollServer, EnrollService};
use cloudless_net::identity::handover::serve_ca_handover;
use cloudless_net::identity::renewal::serve_renewal;
use cloudless_net::identity::{ClusterCa, DEFAULT_NODE_LIFETIME, NodeCredentials};
use cloudless_net::quic::QuicTransport;

use super::api_peers::spawn_api_peer_sync;
use super::data_dir::{load_ca, load_credentials};
use super::join::{become_voter, serve_add_voter};
use super::raft::{CoordinatorConsensus, RaftMember, bind, start_raft, wait_leader};
use super::{CoordinatorSettings, LEADER_WAIT, META_FILE, Meta};

/// A running coordinator.
pub struct Running {
    member: RaftMember,
    control: Arc<QuicTransport>,
    fabric: Option<FabricHandle>,
    enroll: Option<EnrollServer>,
    api: Option<Arc<ApiServer>>,
    revocation_sync: tokio::task::JoinHandle<()>,
    api_peer_sync: Option<tokio::task::JoinHandle<()>>,
    /// The bound addresses: control, raft, enrollment, API.
    pub addresses: [SocketAddr; 4],
}

impl Running {
    /// Stops the API, enrollment, the Fabric, raft and the transports, in that order.
    pub async fn shutdown(mut self) {
        self.revocation_sync.abort();
        if let Some(sync) = self.api_peer_sync.take() {
            sync.abort();
            // The task holds a reference to the API server; it is gone once the task is.
            let _ = sync.await;
        }
        if let Some(api) = self.api.take() {
            match Arc::try_unwrap(api) {
                Ok(api) => api.shutdown().await,
                Err(api) => drop(api),
            }
        }
        drop(self.enroll.take());
        if let Some(f) = self.fabric.take() {
            f.shutdown().await;
        }
        self.member.consensus.shutdown().await;
        self.control.close();
        self.member.transport.close();
    }
}

/// `run`: start every part of a coordinator from its data dir.
pub async fn run(s: &CoordinatorSettings) -> Result<Running> {
    let dir = &s.data_dir;
    let mut meta = Meta::load(dir)?;
    if let Some(c) = &s.cluster
        && *c != meta.cluster
    {
        bail!(
            "cluster: the data dir belongs to cluster {:?}, not {c:?}",
            meta.cluster
        );
    }
    let ca = Arc::new(load_ca(s)?);
    let creds = load_credentials(dir, &ca)?;
    if creds.identity().node.get() != meta.node {
        bail!(
            "{}: node {} does not match the identity {}",
            META_FILE,
            meta.node,
            creds.identity()
        );
    }
    let member = start_raft(&creds, dir, s.raft_listen).await?;
    let consensus: Arc<dyn Consensus> = Arc::new(member.consensus.clone());
    if !meta.voter {
        become_voter(&creds, s.listen.ip(), &meta.peers, &s.raft_advertise()).await?;
        meta.voter = true;
        meta.save(dir)?;
    }
    // The coordinator role starts once a leader is known (this member after a restart or a
    // restore of a single-member cluster; any member of a quorum otherwise).
    if let Err(e) = wait_leader(&member.consensus, LEADER_WAIT).await {
        member.consensus.shutdown().await;
        member.transport.close();
        return Err(e);
    }
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let control = match bind(s.listen, &creds).context("listen") {
        Ok(t) => t,
        Err(e) => {
            member.consensus.shutdown().await;
            member.transport.close();
            return Err(e);
        }
    };
    let mut running = Running {
        addresses: [
            control.local_addr()?,
            member.transport.local_addr()?,
            s.enroll_listen,
            s.api_listen,
        ],
        member,
        control: Arc::clone(&control),
        fabric: None,
        enroll: None,
        api: None,
        revocation_sync: tokio::spawn(async {}),
        api_peer_sync: None,
    };
    match start_parts(s, &mut running, &ca, &creds, consensus, clock).await {
        Ok(()) => Ok(running),
        Err(e) => {
            running.shutdown().await;
            Err(e)
        }
    }
}

async fn start_parts(
    s: &CoordinatorSettings,
    running: &mut Running,
    ca: &Arc<ClusterCa>,
    creds: &NodeCredentials,
    consensus: Arc<dyn Consensus>,
    clock: Arc<dyn Clock>,
) -> Result<()> {
    let mut router = Router::new();
    serve_ca_handover(&mut router, Arc::clone(ca));
    serve_renewal(
        &mut router,
        Arc::clone(ca),
        Arc::clone(&clock),
        DEFAULT_NODE_LIFETIME,
    );
    serve_add_voter(&mut router, Arc::clone(&consensus));
    let fabric = Fabric::builder()
        .coordinator(CoordinatorConfig::default())
        .consensus(CoordinatorConsensus(running.member.consensus.clone()))
        .transport_shared(running.control.clone())
        .router(router)
        .build()?
        .start()
        .await?;
    running.fabric = Some(fabric);

    let revoked = running.control.revocations();
    let service = EnrollService::new(
        Arc::clone(ca),
        Arc::clone(&consensus),
        Arc::clone(&clock),
        DEFAULT_NODE_LIFETIME,
    )
    .with_revoked(revoked.clone());
    let enroll_server = EnrollServer::bind(
        s.enroll_listen,
        creds,
        Arc::new(service),
        EnrollConfig::default(),
    )
    .map_err(|e| anyhow!("enroll_listen {}: {e}", s.enroll_listen))?;
    running.addresses[2] = enroll_server.local_addr()?;
    running.enroll = Some(enroll_server);

    // The transports and the API refuse revoked identities; the list follows the state. A
    // revocation also closes the node's open connections (the API and enrollment share the
    // control transport's set).
    let control = Arc::clone(&running.control);
    let raft = Arc::clone(&running.member.transport);
    running.revocation_sync = mirror_revocations(
        Arc::new(CoordinatorConsensus(running.member.consensus.clone())),
        Arc::new(move |node| {
            control.revoke(node);
            raft.revoke(node);
        }),
    );

    let api = cloudless::api::serve(
        ApiConfig::new(
            s.api_listen,
            ApiTls {
                credentials: creds.clone(),
                revoked,
            },
        )
        // Logs and exec reach the agents over the control transport they dial.
        .with_agent_streams(cloudless::protocol::AgentStreams::new(
            Arc::clone(&running.control) as Arc<dyn Transport>,
        )),
        consensus,
        clock,
    )
    .await
    .map_err(|e| anyhow!("{e}"))?;
    running.addresses[3] = api.local_addr();
    let api = Arc::new(api);
    let my_api = s.api_advertise(api.local_addr().port());
    *running
        .member
        .api_address
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = my_api.clone();
    running.api_peer_sync = Some(spawn_api_peer_sync(
        &running.member,
        Arc::clone(&api),
        creds.identity().node,
        my_api,
    ));
    running.api = Some(api);
    Ok(())
}
