//! Configuration, start-up and the state every service shares.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use cloudless_core::clock::Clock;
use cloudless_core::consensus::{Consensus, ConsensusError};
use cloudless_core::ids::NodeId;
use cloudless_core::state::{Applied, ClusterState, Command, CommandEnvelope};
use cloudless_net::identity::{NodeCredentials, RevokedNodes};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::auth::Caller;
use super::pb;
use super::{ALPN, DEFAULT_MAX_REQUEST_BYTES, FORWARDED_FOR_KEY, errors, tls};
use crate::protocol::replica_stream::AgentStreams;

/// TLS material of the API server.
#[derive(Clone)]
pub struct ApiTls {
    /// This coordinator's credentials: presented to clients, and used when forwarding a call
    /// to the leader. Clients must present a certificate of the same cluster CA.
    pub credentials: NodeCredentials,
    /// Node identities refused at the handshake.
    pub revoked: RevokedNodes,
}

impl std::fmt::Debug for ApiTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiTls")
            .field("identity", self.credentials.identity())
            .finish_non_exhaustive()
    }
}

/// Configuration of the API server.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Where to listen (port 0 picks a free one; see [`ApiServer::local_addr`]).
    pub listen: SocketAddr,
    /// Certificates.
    pub tls: ApiTls,
    /// Largest request message accepted, in bytes (default 4 MiB). Larger requests fail with
    /// OutOfRange/ResourceExhausted; the connection and the server stay up.
    pub max_request_bytes: usize,
    /// The API addresses (`host:port`) of the coordinators, by member id: where calls are
    /// forwarded and what leader hints name. May be updated with [`ApiServer::set_peers`].
    pub peers: BTreeMap<NodeId, String>,
    /// Where the HTTP/JSON gateway listens (same TLS and client certificates); no gateway
    /// when `None`.
    pub gateway: Option<SocketAddr>,
    /// How Logs and Exec reach the agents (replica streams over the cluster transport); both
    /// answer Unavailable when `None`. See [`ApiConfig::with_agent_streams`].
    pub agents: Option<AgentStreams>,
}

impl ApiConfig {
    /// A configuration with the defaults: 4 MiB request limit, no peers.
    pub fn new(listen: SocketAddr, tls: ApiTls) -> Self {
        Self {
            listen,
            tls,
            max_request_bytes: DEFAULT_MAX_REQUEST_BYTES,
            peers: BTreeMap::new(),
            gateway: None,
            agents: None,
        }
    }

    /// Serves Logs and Exec through `agents` (built on the transport the agents dial).
    pub fn with_agent_streams(mut self, agents: AgentStreams) -> Self {
        self.agents = Some(agents);
        self
    }

    fn validate(&self) -> Result<(), ApiError> {
        if !(1024..=64 * 1024 * 1024).contains(&self.max_request_bytes) {
            return Err(ApiError::Config {
                field: "max_request_bytes",
                reason: "must be between 1 KiB and 64 MiB".into(),
            });
        }
        if let Some((id, addr)) = self
            .peers
            .iter()
            .find(|(_, a)| super::super::client::parse_endpoint(a).is_err())
        {
            return Err(ApiError::Config {
                field: "peers",
                reason: format!("address {addr:?} of member {id} is not host:port"),
            });
        }
        Ok(())
    }
}

/// Why the API server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A configuration value is unusable.
    #[error("api config field `{field}`: {reason}")]
    Config {
        /// The field.
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The TLS configuration could not be built.
    #[error("api tls: {0}")]
    Tls(String),
    /// The listen address could not be bound.
    #[error("api listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The consensus member could not be asked who it is.
    #[error("api: consensus: {0}")]
    Consensus(#[from] ConsensusError),
}

/// What every service shares.
pub(crate) struct Core {
    pub(crate) consensus: Arc<dyn Consensus>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) credentials: NodeCredentials,
    pub(crate) local_addr: SocketAddr,
    peers: RwLock<BTreeMap<NodeId, String>>,
    channels: Mutex<BTreeMap<String, Channel>>,
    /// Replica streams to the agents (Logs, Exec).
    pub(crate) agents: Option<AgentStreams>,
    /// Turns true when the server shuts down; open server streams end then.
    stopping: watch::Receiver<bool>,
}

/// Where a call runs.
pub(crate) enum Route {
    /// On this member.
    Local,
    /// On the leader, through this channel.
    Forward(Channel),
}

impl Core {
    /// `stream`, ended by the server's shutdown: the client then gets `Unavailable` naming the
    /// shutdown (so it reconnects elsewhere) instead of a stream that outlives the server.
    pub(crate) fn until_stopped<T: Send + 'static>(
        &self,
        stream: BoxStream<'static, Result<T, Status>>,
    ) -> BoxStream<'static, Result<T, Status>> {
        let stopping = self.stopping.clone();
        futures::stream::unfold(
            (stream, stopping, false),
            |(mut stream, mut stopping, ended)| async move {
                if ended {
                    return None;
                }
                let next = tokio::select! {
                    biased;
                    // A dropped sender means the server is gone too.
                    _ = stopping.wait_for(|s| *s) => None,
                    item = stream.next() => Some(item),
                };
                match next {
                    None => Some((
                        Err(Status::unavailable("the API server is shutting down")),
                        (stream, stopping, true),
                    )),
                    Some(item) => item.map(|i| (i, (stream, stopping, false))),
                }
            },
        )
        .boxed()
    }

    fn peers(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<NodeId, String>> {
        self.peers.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The API address of member `id`, if known.
    pub(crate) fn address_of(&self, id: NodeId) -> Option<String> {
        self.peers().get(&id).cloned()
    }

    pub(crate) fn consensus_error(&self, e: &ConsensusError) -> Status {
        errors::consensus(e, |id| self.address_of(id))
    }

    /// Runs unary calls on the leader: locally when this member leads (or nobody is known to
    /// lead: the call then fails with Unavailable by itself), else forwarded once to the
    /// leader's API, else Unavailable with the hint.
    pub(crate) async fn route(&self, caller: &Caller) -> Result<Route, Status> {
        let status = self
            .consensus
            .status()
            .await
            .map_err(|e| self.consensus_error(&e))?;
        let leader = match status.leader {
            Some(l) if l != status.id => l,
            _ => return Ok(Route::Local),
        };
        let addr = self.address_of(leader);
        let hint = Some((leader, addr.clone()));
        if caller.forwarded {
            return Err(errors::unavailable(
                "forwarded call reached a member that does not lead",
                hint,
            ));
        }
        let Some(addr) = addr else {
            return Err(errors::unavailable(
                "this coordinator is not the leader and does not know the leader's API address",
                hint,
            ));
        };
        let channel = self.channel(&addr).map_err(|e| {
            errors::unavailable(format!("cannot forward to the leader: {e}"), hint.clone())
        })?;
        Ok(Route::Forward(channel))
    }

    fn channel(&self, addr: &str) -> Result<Channel, crate::client::ClientError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let c = crate::client::lazy_channel(addr, &self.credentials)?;
        channels.insert(addr.to_owned(), c.clone());
        Ok(c)
    }

    pub(crate) async fn state(&self) -> Result<Arc<ClusterState>, Status> {
        self.consensus
            .state()
            .await
            .map_err(|e| self.consensus_error(&e))
    }

    /// Proposes `command` with the caller's idempotency key (empty: none).
    pub(crate) async fn propose(
        &self,
        command: Command,
        idempotency_key: &str,
    ) -> Result<Applied, Status> {
        let mut envelope = CommandEnvelope::new(self.clock.now_ms(), command);
        if !idempotency_key.is_empty() {
            envelope = envelope.with_idempotency_key(idempotency_key);
        }
        self.consensus
            .propose(envelope)
            .await
            .map_err(|e| self.consensus_error(&e))
    }
}

/// `msg` as a request forwarded for `caller`.
pub(crate) fn forwarded<T>(msg: T, caller: &Caller) -> Request<T> {
    let mut req = Request::new(msg);
    if let Ok(v) = caller.identity.uri().parse() {
        req.metadata_mut().insert(FORWARDED_FOR_KEY, v);
    }
    req
}

/// How long [`ApiServer::shutdown`] waits for open calls to finish before cutting them.
pub(crate) const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(3);

/// A running API server. Dropping it stops it.
pub struct ApiServer {
    core: Arc<Core>,
    gateway_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    gateway_task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("local_addr", &self.core.local_addr)
            .finish_non_exhaustive()
    }
}

impl ApiServer {
    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.core.local_addr
    }

    /// The bound address of the HTTP/JSON gateway, if one was configured.
    pub fn gateway_addr(&self) -> Option<SocketAddr> {
        self.gateway_addr
    }

    /// Replaces the coordinators' API addresses (forwarding and leader hints).
    pub fn set_peers(&self, peers: BTreeMap<NodeId, String>) {
        *self.core.peers.write().unwrap_or_else(|p| p.into_inner()) = peers;
    }

    /// Stops accepting, ends open calls (server streams end with `Unavailable`) and waits for
    /// the server tasks, at most 3 s: calls still open then are cut.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        for mut task in [self.task.take(), self.gateway_task.take()]
            .into_iter()
            .flatten()
        {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!(
                    grace = ?SHUTDOWN_GRACE,
                    "api calls still open after the shutdown grace; closing them"
                );
                task.abort();
                let _ = task.await;
            }
        }
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        for task in [&self.task, &self.gateway_task].into_iter().flatten() {
            task.abort();
        }
    }
}

/// Starts the API server on `config.listen` over `consensus`; `clock` stamps commands.
pub async fn serve(
    config: ApiConfig,
    consensus: Arc<dyn Consensus>,
    clock: Arc<dyn Clock>,
) -> Result<ApiServer, ApiError> {
    config.validate()?;
    let creds = config.tls.credentials.clone();
    let server_tls = cloudless_net::identity::tls::server_config_with_revoked(
        &creds,
        ALPN,
        config.tls.revoked.clone(),
    )
    .map_err(|e| ApiError::Tls(e.to_string()))?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ApiError::Bind {
            addr: config.listen,
            source,
        })?;
    let local_addr = listener.local_addr().map_err(|source| ApiError::Bind {
        addr: config.listen,
        source,
    })?;
    let mut peers = config.peers.clone();
    // This member's own address, so leader hints can name it.
    let me = consensus.status().await?.id;
    let (stop_tx, stop_rx) = watch::channel(false);
    peers.entry(me).or_insert_with(|| local_addr.to_string());
    let core = Arc::new(Core {
        consensus,
        clock,
        credentials: creds.clone(),
        local_addr,
        peers: RwLock::new(peers),
        channels: Mutex::new(BTreeMap::new()),
        agents: config.agents.clone(),
        stopping: stop_rx.clone(),
    });

    let incoming = tls::spawn_acceptor(
        listener,
        TlsAcceptor::from(Arc::new(server_tls)),
        creds.identity().cluster.clone(),
        stop_rx.clone(),
    );
    let incoming = tokio_stream_of(incoming);

    let limit = config.max_request_bytes;
    let reflection_builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection = reflection_builder()
        .build_v1()
        .map_err(|e| ApiError::Tls(format!("reflection: {e}")))?;
    // v1alpha too: generic clients still use it (grpcio-reflection, older grpcurl).
    let reflection_v1alpha = reflection_builder()
        .build_v1alpha()
        .map_err(|e| ApiError::Tls(format!("reflection: {e}")))?;
    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<pb::workloads_server::WorkloadsServer<super::workloads::WorkloadsApi>>()
        .await;

    let workloads = Arc::new(super::workloads::WorkloadsApi::new(Arc::clone(&core)));
    let nodes = Arc::new(super::nodes::NodesApi::new(Arc::clone(&core)));
    let (gateway_addr, gateway_task) = match config.gateway {
        Some(addr) => {
            let (a, t) = start_gateway(
                addr,
                &config.tls,
                super::gateway::router(Arc::clone(&workloads), Arc::clone(&nodes), limit),
                stop_rx.clone(),
            )
            .await?;
            (Some(a), Some(t))
        }
        None => (None, None),
    };
    let router = tonic::transport::Server::builder()
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
        .concurrency_limit_per_connection(256)
        .add_service(
            pb::workloads_server::WorkloadsServer::from_arc(Arc::clone(&workloads))
                .max_decoding_message_size(limit),
        )
        .add_service(
            pb::nodes_server::NodesServer::from_arc(Arc::clone(&nodes))
                .max_decoding_message_size(limit),
        )
        .add_service(
            pb::events_server::EventsServer::new(super::events::EventsApi::new(Arc::clone(&core)))
                .max_decoding_message_size(limit),
        )
        .add_service(
            pb::cluster_server::ClusterServer::new(super::cluster::ClusterApi::new(Arc::clone(
                &core,
            )))
            .max_decoding_message_size(limit),
        )
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_v1alpha);

    let mut stop = stop_rx;
    let task = tokio::spawn(async move {
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        if let Err(e) = router.serve_with_incoming_shutdown(incoming, signal).await {
            tracing::warn!(error = %e, "api server stopped");
        }
    });
    Ok(ApiServer {
        core,
        gateway_addr,
        stop: stop_tx,
        task: Some(task),
        gateway_task,
    })
}

async fn start_gateway(
    addr: SocketAddr,
    tls: &ApiTls,
    router: axum::Router,
    stop: watch::Receiver<bool>,
) -> Result<(SocketAddr, JoinHandle<()>), ApiError> {
    let server_tls = cloudless_net::identity::tls::server_config_with_revoked(
        &tls.credentials,
        super::GATEWAY_ALPN,
        tls.revoked.clone(),
    )
    .map_err(|e| ApiError::Tls(e.to_string()))?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ApiError::Bind { addr, source })?;
    let local_addr = listener
        .local_addr()
        .map_err(|source| ApiError::Bind { addr, source })?;
    let incoming = tls::spawn_acceptor(
        listener,
        TlsAcceptor::from(Arc::new(server_tls)),
        tls.credentials.identity().cluster.clone(),
        stop.clone(),
    );
    let listener = super::gateway::GatewayListener {
        incoming,
        local_addr,
    };
    let mut stop = stop;
    let task = tokio::spawn(async move {
        let signal = async move {
            let _ = stop.wait_for(|s| *s).await;
        };
        let service = router.into_make_service_with_connect_info::<super::ApiPeer>();
        if let Err(e) = axum::serve(listener, service)
            .with_graceful_shutdown(signal)
            .await
        {
            tracing::warn!(error = %e, "api gateway stopped");
        }
    });
    Ok((local_addr, task))
}

fn tokio_stream_of<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures::Stream<Item = T> + Send + 'static {
    futures::stream::poll_fn(move |cx| rx.poll_recv(cx))
}
