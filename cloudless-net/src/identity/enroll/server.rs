//! The coordinator side of enrollment: [`EnrollService`] decides, [`EnrollServer`] serves it on
//! its own QUIC endpoint.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use cloudless_core::clock::Clock;
use cloudless_core::consensus::{Consensus, ConsensusError};
use cloudless_core::ids::NodeName;
use cloudless_core::node::NodeReport;
use cloudless_core::state::{ApplyError, Command, CommandEnvelope, CommandResult};
use cloudless_core::transport::{PeerIdentity, Role};
use prost::Message;
use tokio::sync::{Mutex, Semaphore};
use tokio::task::JoinHandle;

use super::messages::{EnrollRequest, EnrollResponse, RefusalCode};
use super::{ENROLL_ALPN, MAX_ENROLL_MESSAGE};
use crate::identity::ca::validate_csr;
use crate::identity::grace::DEFAULT_GRACE;
use crate::identity::token::{JoinToken, TokenRole};
use crate::identity::{ClusterCa, DEFAULT_NODE_LIFETIME, NodeCredentials, RevokedNodes, tls};
use crate::quic::QuicError;

/// Settings of the enrollment service and endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollConfig {
    /// Lifetime of issued certificates.
    pub lifetime: Duration,
    /// Time a joiner has to send its request and read the answer.
    pub request_timeout: Duration,
    /// Enrollments served at once; further connection attempts are refused.
    pub max_concurrent: usize,
}

impl Default for EnrollConfig {
    fn default() -> Self {
        Self {
            lifetime: DEFAULT_NODE_LIFETIME,
            request_timeout: Duration::from_secs(10),
            max_concurrent: 16,
        }
    }
}

/// An enrollment refusal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Why, as a code.
    pub code: RefusalCode,
    /// Detail for the joiner's operator.
    pub message: String,
}

fn refuse(code: RefusalCode, message: impl std::fmt::Display) -> Refusal {
    Refusal {
        code,
        message: message.to_string(),
    }
}

fn unavailable(e: &ConsensusError) -> Refusal {
    refuse(RefusalCode::Unavailable, e)
}

/// Validates join requests through [`Consensus`] and issues certificates.
pub struct EnrollService {
    ca: Arc<ClusterCa>,
    consensus: Arc<dyn Consensus>,
    clock: Arc<dyn Clock>,
    lifetime: Duration,
    grace: Duration,
    revoked: RevokedNodes,
    // Serialises the name check and RegisterNode on this coordinator, so two joiners cannot
    // both claim a fresh name here.
    serial: Mutex<()>,
}

impl std::fmt::Debug for EnrollService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollService")
            .field("ca", &self.ca)
            .finish_non_exhaustive()
    }
}

impl EnrollService {
    /// A service issuing certificates of `lifetime` from `ca`, counting token uses in
    /// `consensus`.
    pub fn new(
        ca: Arc<ClusterCa>,
        consensus: Arc<dyn Consensus>,
        clock: Arc<dyn Clock>,
        lifetime: Duration,
    ) -> Self {
        Self {
            ca,
            consensus,
            clock,
            lifetime,
            grace: DEFAULT_GRACE,
            revoked: RevokedNodes::new(),
            serial: Mutex::new(()),
        }
    }

    /// Sets the offline-renewal grace window (default 30 days after expiry).
    pub fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Refuses offline renewal to the nodes in `revoked`.
    pub fn with_revoked(mut self, revoked: RevokedNodes) -> Self {
        self.revoked = revoked;
        self
    }

    /// Offline renewal: the old certificate plus a CSR signed by its key.
    async fn reissue(&self, req: EnrollRequest) -> Result<EnrollResponse, Refusal> {
        let renewal = |e: &dyn std::fmt::Display| refuse(RefusalCode::RenewalRefused, e);
        let now = UNIX_EPOCH + Duration::from_millis(self.clock.now_ms());
        let old = rustls_pki_types::CertificateDer::from(req.renew_cert.as_slice());
        let (identity, cert) = self
            .ca
            .reissue(&old, &req.csr, now, self.grace, self.lifetime)
            .map_err(|e| renewal(&e))?;
        if self.revoked.is_revoked(identity.node) {
            return Err(renewal(&format!("{identity} is revoked")));
        }
        let state = self.consensus.state().await.map_err(|e| unavailable(&e))?;
        if !state.nodes.contains_key(&identity.node) {
            return Err(renewal(&format!("{identity} is not a member")));
        }
        tracing::info!(node = %identity, "renewed an expired certificate");
        Ok(EnrollResponse {
            cert: cert.to_vec(),
            ca: self.ca.cert().to_vec(),
            node: identity.node.get(),
            refusal: RefusalCode::None as i32,
            message: String::new(),
        })
    }

    async fn propose(&self, command: Command) -> Result<CommandResult, ConsensusError> {
        let at = self.clock.now_ms();
        Ok(self
            .consensus
            .propose(CommandEnvelope::new(at, command))
            .await?
            .result)
    }

    /// Decides one request. An offline renewal (`renew_cert` set) needs no token: see
    /// [`ClusterCa::reissue`]. A join: the token must be ours, valid and for the requested role; the
    /// name must be new. Consumes one token use, mints a node id, issues the certificate.
    pub async fn handle(&self, req: EnrollRequest) -> Result<EnrollResponse, Refusal> {
        if !req.renew_cert.is_empty() {
            return self.reissue(req).await;
        }
        let bad = |e: &dyn std::fmt::Display| refuse(RefusalCode::BadRequest, e);
        let token = JoinToken::parse(&req.token).map_err(|e| bad(&e))?;
        if token.ca_digest() != self.ca.digest() {
            return Err(refuse(
                RefusalCode::TokenRefused,
                "the token pins another CA",
            ));
        }
        let (requested, role) = match req.role.as_str() {
            "agent" => (TokenRole::Agent, Role::Agent),
            "coordinator" => (TokenRole::Coordinator, Role::Coordinator),
            other => return Err(bad(&format!("unknown role {other:?}"))),
        };
        let name = NodeName::new(req.name.clone()).map_err(|e| bad(&e))?;
        let report: NodeReport = req
            .report
            .ok_or_else(|| bad(&"missing node report"))?
            .try_into()
            .map_err(|e: crate::WireError| bad(&e))?;
        validate_csr(&req.csr).map_err(|e| bad(&e))?;

        let _serial = self.serial.lock().await;
        let state = self.consensus.state().await.map_err(|e| unavailable(&e))?;
        if state.node_by_name(name.as_str()).is_some() {
            return Err(refuse(
                RefusalCode::NameTaken,
                format!("a node named {name} already exists"),
            ));
        }
        let used = self
            .propose(Command::UseJoinToken {
                id: token.id().to_owned(),
                secret_sha256: token.secret_sha256(),
            })
            .await;
        match used {
            Ok(CommandResult::JoinTokenUsed { role: granted }) if granted == requested.as_str() => {
            }
            Ok(CommandResult::JoinTokenUsed { role: granted }) => {
                return Err(refuse(
                    RefusalCode::RoleMismatch,
                    format!("this is a {granted} token; it cannot join a {}", req.role),
                ));
            }
            Ok(other) => return Err(refuse(RefusalCode::Unavailable, format!("{other:?}"))),
            Err(ConsensusError::Rejected(ApplyError::TokenRefused { reason })) => {
                return Err(refuse(RefusalCode::TokenRefused, reason));
            }
            Err(e) => return Err(unavailable(&e)),
        }
        // `EnrollNode` refuses a taken name at apply time, so a joiner racing through another
        // coordinator under the same name cannot receive this node's id.
        let node = match self
            .propose(Command::EnrollNode {
                name: name.clone(),
                report,
            })
            .await
        {
            Ok(CommandResult::NodeRegistered { node }) => node,
            Ok(other) => return Err(refuse(RefusalCode::Unavailable, format!("{other:?}"))),
            Err(ConsensusError::Rejected(ApplyError::AlreadyExists { .. })) => {
                return Err(refuse(
                    RefusalCode::NameTaken,
                    format!("a node named {name} already exists"),
                ));
            }
            Err(e) => return Err(unavailable(&e)),
        };
        let identity = PeerIdentity {
            cluster: self.ca.cluster().to_owned(),
            role,
            node,
        };
        let now = UNIX_EPOCH + Duration::from_millis(self.clock.now_ms());
        let cert = self
            .ca
            .issue(&req.csr, &identity, now, self.lifetime)
            .map_err(|e| refuse(RefusalCode::Unavailable, e))?;
        tracing::info!(node = %identity, "enrolled");
        Ok(EnrollResponse {
            cert: cert.to_vec(),
            ca: self.ca.cert().to_vec(),
            node: node.get(),
            refusal: RefusalCode::None as i32,
            message: String::new(),
        })
    }
}

/// The enrollment endpoint: its own UDP port, server-authenticated TLS only (the token is the
/// joiner's credential), ALPN [`ENROLL_ALPN`], one request and one response per connection.
pub struct EnrollServer {
    endpoint: quinn::Endpoint,
    task: JoinHandle<()>,
}

impl std::fmt::Debug for EnrollServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnrollServer").finish_non_exhaustive()
    }
}

impl EnrollServer {
    /// Binds `addr` and serves `service`, presenting the coordinator's `creds` (their chain
    /// includes the CA, which joiners match against their token's digest).
    pub fn bind(
        addr: SocketAddr,
        creds: &NodeCredentials,
        service: Arc<EnrollService>,
        config: EnrollConfig,
    ) -> Result<Self, QuicError> {
        let bind_err = |reason: String| QuicError::Bind {
            addr: addr.to_string(),
            reason,
        };
        let tls = tls::server_config_without_client_auth(creds, ENROLL_ALPN)?;
        let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(Arc::new(tls))
            .map_err(|e| bind_err(e.to_string()))?;
        let mut server = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        let mut transport = quinn::TransportConfig::default();
        // One request stream per connection; nothing else is accepted.
        transport
            .max_concurrent_bidi_streams(1u8.into())
            .max_concurrent_uni_streams(0u8.into());
        server.transport_config(Arc::new(transport));
        let endpoint =
            quinn::Endpoint::server(server, addr).map_err(|e| bind_err(e.to_string()))?;
        let task = tokio::spawn(serve(endpoint.clone(), service, config));
        Ok(Self { endpoint, task })
    }

    /// The bound address.
    pub fn local_addr(&self) -> Result<SocketAddr, std::io::Error> {
        self.endpoint.local_addr()
    }
}

impl Drop for EnrollServer {
    fn drop(&mut self) {
        self.task.abort();
        self.endpoint.close(0u8.into(), b"closing");
    }
}

async fn serve(endpoint: quinn::Endpoint, service: Arc<EnrollService>, config: EnrollConfig) {
    let slots = Arc::new(Semaphore::new(config.max_concurrent.max(1)));
    while let Some(incoming) = endpoint.accept().await {
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            incoming.refuse();
            continue;
        };
        let service = Arc::clone(&service);
        let timeout = config.request_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let served = tokio::time::timeout(timeout, serve_one(incoming, &service)).await;
            if let Ok(Err(e)) = served {
                tracing::info!(error = %e, "enrollment connection failed");
            }
        });
    }
}

async fn serve_one(
    incoming: quinn::Incoming,
    service: &EnrollService,
) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let conn = incoming.await?;
    let (mut send, mut recv) = conn.accept_bi().await?;
    let bytes = recv.read_to_end(MAX_ENROLL_MESSAGE).await?;
    let response = match EnrollRequest::decode(bytes.as_slice()) {
        Ok(req) => service.handle(req).await,
        Err(e) => Err(refuse(RefusalCode::BadRequest, e)),
    };
    let response = response.unwrap_or_else(|r| EnrollResponse {
        refusal: r.code as i32,
        message: r.message,
        ..EnrollResponse::default()
    });
    send.write_all(&response.encode_to_vec()).await?;
    send.finish()?;
    // The joiner closes once it has read the answer.
    conn.closed().await;
    Ok(())
}
