//! `QuicTransport`: the Transport on quinn + rustls with mutual TLS against the cluster CA.

use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{ByteStream, Inbound, PeerIdentity, Transport, TransportError};
use rustls_pki_types::CertificateDer;
use tokio::sync::{Mutex, mpsc};
use tokio::task::JoinHandle;

use super::QuicConfig;
use super::error::{CLOSE_NORMAL, CLOSE_REVOKED, QuicError, connection_error};
use super::frames::{establish, read_loop, write_loop};
use super::peers::{Peer, Peers};
use super::stream::QuicByteStream;
use crate::identity::{NodeCredentials, RevokedNodes, identity_from_cert, tls};

/// The ALPN protocol of node-to-node traffic.
pub const ALPN: &[u8] = b"cloudless/1";
/// The TLS server name sent when dialing. Certificates are checked by SPIFFE identity, not by
/// DNS name, so this is only a placeholder the protocol requires.
const SERVER_NAME: &str = "cloudless";

type Accepted = (PeerIdentity, Box<dyn ByteStream>);

/// State shared by the handle and the connection tasks.
struct Shared {
    config: QuicConfig,
    local: PeerIdentity,
    endpoint: quinn::Endpoint,
    transport: Arc<quinn::TransportConfig>,
    // The client configuration for dialing; replaced by `rotate` (never held across .await).
    client: std::sync::Mutex<quinn::ClientConfig>,
    peers: Peers,
    revoked: RevokedNodes,
    inbox: mpsc::Sender<Inbound>,
    accepted: mpsc::Sender<Accepted>,
}

/// The default [`Transport`]: QUIC (quinn) with TLS 1.3 mutual authentication (rustls, ring).
///
/// One UDP socket both listens and dials. Each connection carries one frame stream per
/// direction (length-prefixed frames, in order) and any number of bidirectional byte streams.
/// A peer is addressable by its `NodeId` while a connection to it lives, whichever side opened
/// it, so a coordinator answers an agent behind NAT over the agent's connection. `send` to a
/// peer we dialed whose connection dropped re-dials with exponential back-off. Dropping the
/// transport closes the endpoint and every connection.
pub struct QuicTransport {
    shared: Arc<Shared>,
    // Single consumers (Transport contract); the async mutexes only serialise callers.
    inbox: Mutex<mpsc::Receiver<Inbound>>,
    accepted: Mutex<mpsc::Receiver<Accepted>>,
    accept_task: JoinHandle<()>,
}

impl std::fmt::Debug for QuicTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuicTransport")
            .field("local", &self.shared.local)
            .finish_non_exhaustive()
    }
}

impl QuicTransport {
    /// Binds `addr` (e.g. `127.0.0.1:0`) with the node's credentials. Must be called inside a
    /// tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        creds: &NodeCredentials,
        config: QuicConfig,
    ) -> Result<Self, QuicError> {
        let revoked = RevokedNodes::new();
        let server = tls::server_config_with_revoked(creds, ALPN, revoked.clone())?;
        let client =
            tls::client_config_with_revoked(creds.ca(), Some(creds), ALPN, revoked.clone())?;
        let me = creds.identity().clone();
        Self::bind_inner(addr, me, server, client, config, revoked)
    }

    /// Binds with explicit TLS configurations: for tests of refused peers and for custom
    /// setups. Both must be TLS 1.3 only with ALPN [`ALPN`]; `local` is what the server
    /// certificate says.
    pub fn bind_with_tls(
        addr: SocketAddr,
        local: PeerIdentity,
        server: rustls::ServerConfig,
        client: rustls::ClientConfig,
        config: QuicConfig,
    ) -> Result<Self, QuicError> {
        Self::bind_inner(addr, local, server, client, config, RevokedNodes::new())
    }

    fn bind_inner(
        addr: SocketAddr,
        local: PeerIdentity,
        server: rustls::ServerConfig,
        client: rustls::ClientConfig,
        config: QuicConfig,
        revoked: RevokedNodes,
    ) -> Result<Self, QuicError> {
        config.validate()?;
        let bind_err = |reason: String| QuicError::Bind {
            addr: addr.to_string(),
            reason,
        };
        let mut transport = quinn::TransportConfig::default();
        let idle = quinn::IdleTimeout::try_from(config.idle_timeout)
            .map_err(|e| bind_err(e.to_string()))?;
        transport
            .max_idle_timeout(Some(idle))
            .keep_alive_interval(Some(config.keep_alive));
        let transport = Arc::new(transport);
        let (server, client) =
            quinn_configs(server, client, &transport).map_err(|e| bind_err(e.to_string()))?;
        let endpoint =
            quinn::Endpoint::server(server, addr).map_err(|e| bind_err(e.to_string()))?;

        let (inbox_tx, inbox_rx) = mpsc::channel(config.inbox_capacity);
        let (acc_tx, acc_rx) = mpsc::channel(config.accept_capacity);
        let shared = Arc::new(Shared {
            config,
            local,
            endpoint,
            transport,
            client: std::sync::Mutex::new(client),
            peers: Peers::default(),
            revoked,
            inbox: inbox_tx,
            accepted: acc_tx,
        });
        let accept_task = tokio::spawn(accept_loop(Arc::clone(&shared)));
        Ok(Self {
            shared,
            inbox: Mutex::new(inbox_rx),
            accepted: Mutex::new(acc_rx),
            accept_task,
        })
    }

    /// The bound socket address (what peers pass to `connect`).
    pub fn local_addr(&self) -> Result<SocketAddr, TransportError> {
        self.shared
            .endpoint
            .local_addr()
            .map_err(|e| TransportError::Other(Box::new(e)))
    }

    /// Closes every connection and the endpoint. Dropping the transport does the same.
    pub fn close(&self) {
        self.shared.endpoint.close(CLOSE_NORMAL.into(), b"closing");
    }

    /// Switches to renewed credentials of the same identity. New handshakes (both directions)
    /// use them at once; open connections keep running, so no request in flight is dropped.
    pub fn rotate(&self, creds: &NodeCredentials) -> Result<(), QuicError> {
        if creds.identity() != &self.shared.local {
            return Err(QuicError::Identity(
                crate::identity::IdentityError::Refused(format!(
                    "cannot rotate {} to credentials of {}",
                    self.shared.local,
                    creds.identity()
                )),
            ));
        }
        let revoked = self.shared.revoked.clone();
        let server = tls::server_config_with_revoked(creds, ALPN, revoked.clone())?;
        let client = tls::client_config_with_revoked(creds.ca(), Some(creds), ALPN, revoked)?;
        let (server, client) =
            quinn_configs(server, client, &self.shared.transport).map_err(|e| QuicError::Bind {
                addr: "(rotate)".into(),
                reason: e.to_string(),
            })?;
        self.shared.endpoint.set_server_config(Some(server));
        if let Ok(mut c) = self.shared.client.lock() {
            *c = client;
        }
        Ok(())
    }

    /// Closes the connection to `node`, if any (it may dial again; we re-dial on `send` if we
    /// dialed it).
    pub fn disconnect(&self, node: NodeId) {
        if let Some(peer) = self.shared.peers.get(node) {
            peer.conn.close(CLOSE_NORMAL.into(), b"disconnect");
            self.shared.peers.remove(node, &peer.conn);
        }
    }

    /// Revokes `node`: its existing connections are closed (it sees `Auth` errors) and its
    /// handshakes are refused from now on, in both directions.
    pub fn revoke(&self, node: NodeId) {
        self.shared.revoked.revoke(node);
        if let Some(peer) = self.shared.peers.get(node) {
            peer.conn.close(CLOSE_REVOKED.into(), b"revoked");
            self.shared.peers.remove(node, &peer.conn);
        }
    }

    /// The revocation set this transport's verifiers consult; a driver keeps it in step with
    /// the cluster state.
    pub fn revocations(&self) -> RevokedNodes {
        self.shared.revoked.clone()
    }

    /// Sends over a live connection, re-dialing a dialed peer whose connection is gone.
    async fn peer_for(&self, to: NodeId) -> Result<Peer, TransportError> {
        if let Some(p) = self.shared.peers.get(to) {
            return Ok(p);
        }
        let addr = self
            .shared
            .peers
            .dialed_addr(to)
            .ok_or(TransportError::NotConnected(to))?;
        let c = &self.shared.config;
        let mut last = TransportError::NotConnected(to);
        for attempt in 0..c.reconnect_attempts {
            if attempt > 0 {
                tokio::time::sleep(c.backoff(attempt - 1)).await;
            }
            match dial(&self.shared, addr).await {
                Ok(peer) if peer.identity.node == to => return Ok(peer),
                Ok(peer) => {
                    return Err(TransportError::Auth(format!(
                        "{addr} now answers as {}, not node {to}",
                        peer.identity
                    )));
                }
                Err(e @ TransportError::Auth(_)) => return Err(e),
                Err(e) => last = e,
            }
        }
        Err(last)
    }
}

impl Drop for QuicTransport {
    fn drop(&mut self) {
        self.accept_task.abort();
        self.close();
    }
}

/// quinn configurations from rustls ones, sharing one transport configuration.
fn quinn_configs(
    server: rustls::ServerConfig,
    client: rustls::ClientConfig,
    transport: &Arc<quinn::TransportConfig>,
) -> Result<(quinn::ServerConfig, quinn::ClientConfig), quinn::crypto::rustls::NoInitialCipherSuite>
{
    let server = quinn::crypto::rustls::QuicServerConfig::try_from(Arc::new(server))?;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(server));
    server.transport_config(Arc::clone(transport));
    let client = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(client))?;
    let mut client = quinn::ClientConfig::new(Arc::new(client));
    client.transport_config(Arc::clone(transport));
    Ok((server, client))
}

/// The identity in a connection's peer certificate (already verified by the TLS layer).
fn peer_identity(
    shared: &Shared,
    conn: &quinn::Connection,
) -> Result<PeerIdentity, TransportError> {
    let certs = conn
        .peer_identity()
        .and_then(|any| any.downcast::<Vec<CertificateDer<'static>>>().ok())
        .ok_or_else(|| TransportError::Auth("peer presented no certificate".into()))?;
    let leaf = certs
        .first()
        .ok_or_else(|| TransportError::Auth("peer presented no certificate".into()))?;
    identity_from_cert(leaf, &shared.local.cluster).map_err(|e| TransportError::Auth(e.to_string()))
}

/// Runs the frame-stream exchange on a fresh connection, registers it and starts its tasks.
async fn adopt(shared: &Arc<Shared>, conn: quinn::Connection) -> Result<Peer, TransportError> {
    // Identity and revocation first: a refused peer gets no frame-stream header, so its
    // `connect` fails instead of completing.
    let identity = peer_identity(shared, &conn)?;
    if shared.revoked.is_revoked(identity.node) {
        conn.close(CLOSE_REVOKED.into(), b"revoked");
        return Err(TransportError::Auth(format!("{identity} is revoked")));
    }
    let (send, recv) = establish(&conn).await?;
    let (frames, queue) = mpsc::channel(shared.config.send_queue_capacity);
    let peer = Peer {
        identity: identity.clone(),
        conn: conn.clone(),
        frames,
    };
    shared.peers.insert(peer.clone());
    tokio::spawn(write_loop(send, queue));
    tokio::spawn(serve_connection(Arc::clone(shared), identity, conn, recv));
    Ok(peer)
}

/// Delivers a connection's frames and streams until it closes, then forgets it.
async fn serve_connection(
    shared: Arc<Shared>,
    identity: PeerIdentity,
    conn: quinn::Connection,
    recv: quinn::RecvStream,
) {
    let max = shared.config.max_frame_size;
    let frames = read_loop(&conn, recv, max, |frame| {
        let inbox = shared.inbox.clone();
        let from = identity.clone();
        async move { inbox.send(Inbound { from, frame }).await.is_ok() }
    });
    let streams = async {
        // Only a connection-level failure ends this loop; a stream that fails before its
        // header arrives (reset, bad header) is dropped on its own task.
        while let Ok((send, recv)) = conn.accept_bi().await {
            let shared = Arc::clone(&shared);
            let from = identity.clone();
            tokio::spawn(async move {
                match QuicByteStream::from_accepted(send, recv, max).await {
                    Ok(s) => {
                        let _ = shared.accepted.send((from, Box::new(s))).await;
                    }
                    Err(e) => tracing::debug!(peer = %from, error = %e, "dropped a stream"),
                }
            });
        }
    };
    // Either loop ending means the connection is done (or we are shutting down).
    tokio::select! {
        () = frames => {}
        () = streams => {}
    }
    conn.close(CLOSE_NORMAL.into(), b"done");
    shared.peers.remove(identity.node, &conn);
}

async fn accept_loop(shared: Arc<Shared>) {
    while let Some(incoming) = shared.endpoint.accept().await {
        let shared = Arc::clone(&shared);
        tokio::spawn(async move {
            let timeout = shared.config.connect_timeout;
            let result = tokio::time::timeout(timeout, async {
                let conn = incoming.await.map_err(|e| connection_error(&e))?;
                adopt(&shared, conn).await
            })
            .await;
            match result {
                Ok(Ok(peer)) => tracing::debug!(peer = %peer.identity, "accepted connection"),
                Ok(Err(e)) => tracing::info!(error = %e, "refused an inbound connection"),
                Err(_) => tracing::info!("inbound handshake timed out"),
            }
        });
    }
}

/// Dials `addr`, authenticates both ways, and registers the connection.
async fn dial(shared: &Arc<Shared>, addr: SocketAddr) -> Result<Peer, TransportError> {
    let unreachable = |reason: String| TransportError::Unreachable {
        addr: addr.to_string(),
        reason,
    };
    let client = shared
        .client
        .lock()
        .map(|c| c.clone())
        .map_err(|_| TransportError::Closed)?;
    let connecting = shared
        .endpoint
        .connect_with(client, addr, SERVER_NAME)
        .map_err(|e| unreachable(e.to_string()))?;
    let peer = tokio::time::timeout(shared.config.connect_timeout, async {
        let conn = connecting.await.map_err(|e| connection_error(&e))?;
        adopt(shared, conn).await
    })
    .await
    .map_err(|_| unreachable("timed out".into()))??;
    shared.peers.remember_dialed(peer.identity.node, addr);
    Ok(peer)
}

#[async_trait]
impl Transport for QuicTransport {
    fn local(&self) -> &PeerIdentity {
        &self.shared.local
    }

    async fn connect(&self, addr: &str) -> Result<PeerIdentity, TransportError> {
        let resolved = tokio::net::lookup_host(addr)
            .await
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| TransportError::Unreachable {
                addr: addr.to_owned(),
                reason: "cannot resolve (expected host:port)".into(),
            })?;
        Ok(dial(&self.shared, resolved).await?.identity)
    }

    async fn send(&self, to: NodeId, frame: Bytes) -> Result<(), TransportError> {
        let limit = self.shared.config.max_frame_size;
        if frame.len() > limit {
            return Err(TransportError::FrameTooLarge {
                size: frame.len(),
                limit,
            });
        }
        let peer = self.peer_for(to).await?;
        if let Err(mpsc::error::SendError(frame)) = peer.frames.send(frame).await {
            // The writer stopped: that connection is dead. Forget it and try once more
            // (which re-dials a peer we dialed).
            self.shared.peers.remove(to, &peer.conn);
            let peer = self.peer_for(to).await?;
            return peer
                .frames
                .send(frame)
                .await
                .map_err(|_| TransportError::ConnectionLost(format!("connection to {to} closed")));
        }
        Ok(())
    }

    async fn recv(&self) -> Result<Inbound, TransportError> {
        self.inbox
            .lock()
            .await
            .recv()
            .await
            .ok_or(TransportError::Closed)
    }

    async fn open_stream(&self, to: NodeId) -> Result<Box<dyn ByteStream>, TransportError> {
        let peer = self.peer_for(to).await?;
        let stream = QuicByteStream::open(&peer.conn, self.shared.config.max_frame_size).await?;
        Ok(Box::new(stream))
    }

    async fn accept_stream(&self) -> Result<(PeerIdentity, Box<dyn ByteStream>), TransportError> {
        self.accepted
            .lock()
            .await
            .recv()
            .await
            .ok_or(TransportError::Closed)
    }

    fn connected_peers(&self) -> Vec<PeerIdentity> {
        self.shared.peers.identities()
    }

    fn max_frame_size(&self) -> usize {
        self.shared.config.max_frame_size
    }
}
