//! `cloudless::Client`: the Rust client of the public API, used by the CLI and the examples.
//!
//! It speaks gRPC over TLS 1.3 with a client certificate, knows several coordinator endpoints,
//! and follows leader hints: a call answered Unavailable is retried at the hinted leader, or at
//! the next endpoint. Every mutation carries an idempotency key (the caller's, or one the client
//! makes), so a retry after a lost answer applies once.
//!
//! ```no_run
//! # async fn demo(creds: cloudless::net::identity::NodeCredentials) -> Result<(), cloudless::client::ClientError> {
//! let client = cloudless::Client::new(["127.0.0.1:7443"], &creds)?;
//! let w = client.create_workload("apiVersion: cloudless.dev/v1\nkind: Workload\n...").await?;
//! client.scale("default", &w.name, 5).await?;
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cloudless_net::identity::NodeCredentials;
use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tonic::transport::{Channel, Endpoint, Uri};
use tonic::{Code, Response, Status, Streaming};

use crate::api::pb;
use crate::api::pb::cluster_client::ClusterClient;
use crate::api::pb::events_client::EventsClient;
use crate::api::pb::nodes_client::NodesClient;
use crate::api::pb::workloads_client::WorkloadsClient;
use crate::api::{ALPN, FIELD_PATHS_KEY, LEADER_ADDR_KEY};

/// Largest response message the client accepts (64 MiB: a list of a large cluster).
const MAX_RESPONSE_BYTES: usize = 64 * 1024 * 1024;
/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server answered with an error status.
    #[error("{}: {}", .0.code(), .0.message())]
    Status(Box<Status>),
    /// An endpoint address is not `host:port`.
    #[error("endpoint {endpoint:?}: {reason}")]
    Endpoint {
        /// The address.
        endpoint: String,
        /// What is wrong.
        reason: String,
    },
    /// The TLS configuration could not be built.
    #[error("client tls: {0}")]
    Tls(String),
}

impl From<Status> for ClientError {
    fn from(s: Status) -> Self {
        ClientError::Status(Box::new(s))
    }
}

impl ClientError {
    /// The gRPC code (`Unknown` for errors raised before a call).
    pub fn code(&self) -> Code {
        match self {
            ClientError::Status(s) => s.code(),
            _ => Code::Unknown,
        }
    }

    /// The status, when the server answered.
    pub fn status(&self) -> Option<&Status> {
        match self {
            ClientError::Status(s) => Some(s),
            _ => None,
        }
    }

    /// The manifest or request field paths an InvalidArgument names.
    pub fn field_paths(&self) -> Vec<String> {
        self.status()
            .and_then(|s| s.metadata().get(FIELD_PATHS_KEY))
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(',')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Splits `host:port` (or `[v6]:port`); the host must be non-empty and the port a number.
pub(crate) fn parse_endpoint(addr: &str) -> Result<(String, u16), ClientError> {
    let bad = |reason: &str| ClientError::Endpoint {
        endpoint: addr.to_owned(),
        reason: reason.to_owned(),
    };
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| bad("expected host:port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(bad("empty host"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| bad("port is not a number"))?;
    Ok((host.to_owned(), port))
}

/// A channel to `addr` that dials lazily through our TLS connector.
fn channel_with(addr: &str, tls: Arc<ClientConfig>) -> Result<Channel, ClientError> {
    let (host, port) = parse_endpoint(addr)?;
    let uri_host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.clone()
    };
    let endpoint = Endpoint::from_shared(format!("http://{uri_host}:{port}"))
        .map_err(|e| ClientError::Endpoint {
            endpoint: addr.to_owned(),
            reason: e.to_string(),
        })?
        .connect_timeout(CONNECT_TIMEOUT)
        .tcp_nodelay(true);
    let connector = tower::service_fn(move |uri: Uri| {
        let tls = Arc::clone(&tls);
        let host = host.clone();
        async move {
            let port = uri.port_u16().unwrap_or(port);
            let tcp = TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            // Cluster certificates are checked by identity, not by DNS name; rustls still
            // needs a name for SNI.
            let name = ServerName::try_from(host.clone())
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
            let stream = TlsConnector::from(tls).connect(name, tcp).await?;
            Ok::<_, std::io::Error>(TokioIo::new(stream))
        }
    });
    Ok(endpoint.connect_with_connector_lazy(connector))
}

/// A lazily dialed channel to `addr` presenting `credentials` (used to forward to the leader).
pub(crate) fn lazy_channel(
    addr: &str,
    credentials: &NodeCredentials,
) -> Result<Channel, ClientError> {
    let tls =
        cloudless_net::identity::tls::client_config(credentials.ca(), Some(credentials), ALPN)
            .map_err(|e| ClientError::Tls(e.to_string()))?;
    channel_with(addr, Arc::new(tls))
}

/// A fresh idempotency key: unique per process and call.
fn fresh_key() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "client-{}-{nanos:x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn key_or_fresh(key: Option<&str>) -> String {
    match key {
        Some(k) if !k.is_empty() => k.to_owned(),
        _ => fresh_key(),
    }
}

fn wref(namespace: &str, name: &str) -> Option<pb::WorkloadRef> {
    Some(pb::WorkloadRef {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

fn nref(name: &str) -> Option<pb::NodeRef> {
    Some(pb::NodeRef {
        name: name.to_owned(),
        id: 0,
    })
}

struct Endpoints {
    list: Vec<String>,
    current: usize,
}

/// The public API client.
pub struct Client {
    tls: Arc<ClientConfig>,
    endpoints: Mutex<Endpoints>,
    channels: Mutex<BTreeMap<String, Channel>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("Client")
            .field("endpoints", &e.list)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for `endpoints` (`host:port` of coordinators' APIs) presenting `credentials`
    /// (an admin certificate for mutations) and trusting the credentials' cluster CA.
    pub fn new<I, S>(endpoints: I, credentials: &NodeCredentials) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let tls =
            cloudless_net::identity::tls::client_config(credentials.ca(), Some(credentials), ALPN)
                .map_err(|e| ClientError::Tls(e.to_string()))?;
        Self::with_rustls(endpoints, Arc::new(tls))
    }

    /// A client with a ready rustls configuration (its ALPN must include `h2`).
    pub fn with_rustls<I, S>(endpoints: I, tls: Arc<ClientConfig>) -> Result<Self, ClientError>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let list: Vec<String> = endpoints.into_iter().map(Into::into).collect();
        if list.is_empty() {
            return Err(ClientError::Endpoint {
                endpoint: String::new(),
                reason: "no endpoints given".into(),
            });
        }
        for e in &list {
            parse_endpoint(e)?;
        }
        Ok(Self {
            tls,
            endpoints: Mutex::new(Endpoints { list, current: 0 }),
            channels: Mutex::new(BTreeMap::new()),
        })
    }

    /// The endpoint calls go to now.
    pub fn current_endpoint(&self) -> String {
        let e = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        e.list.get(e.current).cloned().unwrap_or_default()
    }

    /// A channel to the current endpoint, for calling a service without a typed method here.
    pub fn channel(&self) -> Result<Channel, ClientError> {
        self.channel_to(&self.current_endpoint())
    }

    fn channel_to(&self, addr: &str) -> Result<Channel, ClientError> {
        let mut channels = self.channels.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = channels.get(addr) {
            return Ok(c.clone());
        }
        let c = channel_with(addr, Arc::clone(&self.tls))?;
        channels.insert(addr.to_owned(), c.clone());
        Ok(c)
    }

    /// After an Unavailable answer: go to the hinted leader, or to the next endpoint.
    fn redirect(&self, status: &Status) {
        let hint = status
            .metadata()
            .get(LEADER_ADDR_KEY)
            .and_then(|v| v.to_str().ok())
            .filter(|a| parse_endpoint(a).is_ok())
            .map(str::to_owned);
        let mut e = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
        match hint {
            Some(addr) if e.list.get(e.current) != Some(&addr) => {
                if let Some(i) = e.list.iter().position(|a| *a == addr) {
                    e.current = i;
                } else {
                    e.list.push(addr);
                    e.current = e.list.len() - 1;
                }
            }
            _ => e.current = (e.current + 1) % e.list.len().max(1),
        }
    }

    /// Runs `f` against the current endpoint, following leader hints and rotating through
    /// the endpoints on Unavailable.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, ClientError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        self.call_retrying(f, |s| s.code() == Code::Unavailable)
            .await
    }

    /// [`Client::call`], retrying only the failures `retry` accepts.
    async fn call_retrying<T, F, Fut>(
        &self,
        f: F,
        retry: fn(&Status) -> bool,
    ) -> Result<T, ClientError>
    where
        F: Fn(Channel) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        let attempts = {
            let e = self.endpoints.lock().unwrap_or_else(|p| p.into_inner());
            e.list.len() + 2
        };
        let mut last = None;
        for attempt in 0..attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(50 * attempt as u64)).await;
            }
            let channel = self.channel()?;
            match f(channel).await {
                Ok(r) => return Ok(r.into_inner()),
                Err(s) if retry(&s) => {
                    self.redirect(&s);
                    last = Some(s);
                }
                Err(s) => return Err(s.into()),
            }
        }
        Err(last
            .unwrap_or_else(|| Status::unavailable("no endpoint answered"))
            .into())
    }

    fn workloads(ch: Channel) -> WorkloadsClient<Channel> {
        WorkloadsClient::new(ch).max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    fn nodes(ch: Channel) -> NodesClient<Channel> {
        NodesClient::new(ch).max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    fn cluster(ch: Channel) -> ClusterClient<Channel> {
        ClusterClient::new(ch).max_decoding_message_size(MAX_RESPONSE_BYTES)
    }

    // ---- workloads ----

    /// Creates or updates every object in a manifest.
    pub async fn apply(&self, manifest: &str) -> Result<pb::ApplyResponse, ClientError> {
        let req = pb::ApplyRequest {
            manifest: manifest.to_owned(),
            idempotency_key: fresh_key(),
        };
        self.call(|ch| {
            let r = req.clone();
            async move { Self::workloads(ch).apply(r).await }
        })
        .await
    }

    /// Creates one workload from a manifest.
    pub async fn create_workload(&self, manifest: &str) -> Result<pb::Workload, ClientError> {
        self.create_workload_with_key(manifest, None).await
    }

    /// [`create_workload`](Self::create_workload) with the caller's idempotency key.
    pub async fn create_workload_with_key(
        &self,
        manifest: &str,
        key: Option<&str>,
    ) -> Result<pb::Workload, ClientError> {
        let req = pb::CreateWorkloadRequest {
            manifest: manifest.to_owned(),
            idempotency_key: key_or_fresh(key),
        };
        let r = self
            .call(|ch| {
                let r = req.clone();
                async move { Self::workloads(ch).create(r).await }
            })
            .await?;
        r.workload
            .ok_or_else(|| Status::internal("empty workload in the answer").into())
    }

    /// Replaces a workload's spec from a manifest (`expected_generation` 0: no check).
    pub async fn update_workload(
        &self,
        manifest: &str,
        expected_generation: u64,
    ) -> Result<pb::Workload, ClientError> {
        let req = pb::UpdateWorkloadRequest {
            manifest: manifest.to_owned(),
            expected_generation,
            idempotency_key: fresh_key(),
        };
        let r = self
            .call(|ch| {
                let r = req.clone();
                async move { Self::workloads(ch).update(r).await }
            })
            .await?;
        r.workload
            .ok_or_else(|| Status::internal("empty workload in the answer").into())
    }

    /// Deletes a workload.
    pub async fn delete_workload(&self, namespace: &str, name: &str) -> Result<(), ClientError> {
        let req = pb::DeleteWorkloadRequest {
            workload: wref(namespace, name),
            idempotency_key: fresh_key(),
        };
        self.call(|ch| {
            let r = req.clone();
            async move { Self::workloads(ch).delete(r).await }
        })
        .await
        .map(|_| ())
    }

    /// One workload.
    pub async fn get_workload(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<pb::Workload, ClientError> {
        let req = pb::GetWorkloadRequest {
            workload: wref(namespace, name),
        };
        let r = self
            .call(|ch| {
                let r = req.clone();
                async move { Self::workloads(ch).get(r).await }
            })
            .await?;
        r.workload
            .ok_or_else(|| Status::internal("empty workload in the answer").into())
    }

    /// Workloads of `namespace` (every namespace when empty).
    pub async fn list_workloads(&self, namespace: &str) -> Result<Vec<pb::Workload>, ClientError> {
        let req = pb::ListWorkloadsRequest {
            namespace: namespace.to_owned(),
        };
        self.call(|ch| {
            let r = req.clone();
            async move { Self::workloads(ch).list(r).await }
        })
        .await
        .map(|r| r.workloads)
    }

    /// Sets a workload's replica count.
    pub async fn scale(
        &self,
        namespace: &str,
        name: &str,
        replicas: u32,
    ) -> Result<pb::Workload, ClientError> {
        let req = pb::ScaleWorkloadRequest {
            workload: wref(namespace, name),
            replicas,
            idempotency_key: fresh_key(),
        };
        let r = self
            .call(|ch| {
                let r = req.clone();
                async move { Self::workloads(ch).scale(r).await }
            })
            .await?;
        r.workload
            .ok_or_else(|| Status::internal("empty workload in the answer").into())
    }

    /// The rollout state of a workload.
    pub async fn rollout_status(
        &self,
        namespace: &str,
        name: &str,
    ) -> Result<pb::RolloutStatusResponse, ClientError> {
        let req = pb::RolloutStatusRequest {
            workload: wref(namespace, name),
        };
        self.call(|ch| {
            let r = req.clone();
            async move { Self::workloads(ch).rollout_status(r).await }
        })
        .await
    }

    /// Pauses (`true`) or resumes (`false`) a workload's rollouts.
    pub async fn set_rollout_paused(
        &self,
        namespace: &str,
        name: &str,
        paused: bool,
    ) -> Result<pb::RolloutStatusResponse, ClientError> {
        let req = pb::RolloutControlRequest {
            workload: wref(namespace, name),
            idempotency_key: fresh_key(),
        };
        self.call(|ch| {
            let r = req.clone();
            async move {
                if paused {
                    Self::workloads(ch).pause_rollout(r).await
                } else {
                    Self::workloads(ch).resume_rollout(r).await
                }
            }
        })
        .await
    }

    /// Container logs of a workload's replicas.
    pub async fn logs(&self, req: pb::LogsRequest) -> Result<Streaming<pb::LogChunk>, ClientError> {
        self.call(|ch| {
            let r = req.clone();
            async move { Self::workloads(ch).logs(r).await }
        })
        .await
    }

    /// Runs a command in a replica's container. Retried only on an Unavailable that came before
    /// the command could run (see [`exec_not_started`]); Unknown means it may have run.
    pub async fn exec(&self, req: pb::ExecRequest) -> Result<pb::ExecResponse, ClientError> {
        self.call_retrying(
            |ch| {
                let r = req.clone();
                async move { Self::workloads(ch).exec(r).await }
            },
            exec_not_started,
        )
        .await
    }

    // ---- nodes ----

    /// Every node.
    pub async fn list_nodes(&self) -> Result<Vec<pb::Node>, ClientError> {
        self.call(|ch| async move { Self::nodes(ch).list(pb::ListNodesRequest {}).await })
            .await
            .map(|r| r.nodes)
    }

    /// One node by name.
    pub async fn get_node(&self, name: &str) -> Result<pb::Node, ClientError> {
        let req = pb::GetNodeRequest { node: nref(name) };
        let r = self
            .call(|ch| {
                let r = req.clone();
                async move { Self::nodes(ch).get(r).await }
            })
            .await?;
        r.node
            .ok_or_else(|| Status::internal("empty node in the answer").into())
    }

    async fn node_action(&self, name: &str, action: NodeAction) -> Result<pb::Node, ClientError> {
        let req = pb::NodeActionRequest {
            node: nref(name),
            idempotency_key: fresh_key(),
        };
        let r = self
            .call(|ch| {
                let r = req.clone();
                async move {
                    let mut c = Self::nodes(ch);
                    match action {
                        NodeAction::Cordon => c.cordon(r).await,
                        NodeAction::Drain => c.drain(r).await,
                        NodeAction::Uncordon => c.uncordon(r).await,
                    }
                }
            })
            .await?;
        r.node
            .ok_or_else(|| Status::internal("empty node in the answer").into())
    }

    /// Stops new replicas from landing on a node.
    pub async fn cordon(&self, name: &str) -> Result<pb::Node, ClientError> {
        self.node_action(name, NodeAction::Cordon).await
    }

    /// Cordons a node and moves its replicas away.
    pub async fn drain(&self, name: &str) -> Result<pb::Node, ClientError> {
        self.node_action(name, NodeAction::Drain).await
    }

    /// Ends a cordon or drain.
    pub async fn uncordon(&self, name: &str) -> Result<pb::Node, ClientError> {
        self.node_action(name, NodeAction::Uncordon).await
    }

    /// Removes a node; with `revoke` its identity is never admitted again.
    pub async fn remove_node(&self, name: &str, revoke: bool) -> Result<(), ClientError> {
        let req = pb::RemoveNodeRequest {
            node: nref(name),
            revoke,
            reason: String::new(),
            idempotency_key: fresh_key(),
        };
        self.call(|ch| {
            let r = req.clone();
            async move { Self::nodes(ch).remove(r).await }
        })
        .await
        .map(|_| ())
    }

    // ---- events ----

    /// Changes from revision `from` on (0: oldest retained), then new ones as they commit.
    pub async fn watch(
        &self,
        from: u64,
        kinds: &[&str],
    ) -> Result<Streaming<pb::Change>, ClientError> {
        let req = pb::WatchRequest {
            from_revision: from,
            kinds: kinds.iter().map(|k| (*k).to_owned()).collect(),
            key_prefix: String::new(),
        };
        self.call(|ch| {
            let r = req.clone();
            async move {
                EventsClient::new(ch)
                    .max_decoding_message_size(MAX_RESPONSE_BYTES)
                    .watch(r)
                    .await
            }
        })
        .await
    }

    // ---- cluster ----

    /// Cluster, leader and caller.
    pub async fn info(&self) -> Result<pb::InfoResponse, ClientError> {
        self.call(|ch| async move { Self::cluster(ch).info(pb::InfoRequest {}).await })
            .await
    }

    /// Creates a join token (`agent` or `coordinator`); the answer holds the secret, once.
    pub async fn create_join_token(
        &self,
        role: &str,
        ttl: Duration,
        max_uses: Option<u32>,
    ) -> Result<pb::CreateJoinTokenResponse, ClientError> {
        let req = pb::CreateJoinTokenRequest {
            role: role.to_owned(),
            ttl_seconds: ttl.as_secs(),
            max_uses: max_uses.unwrap_or(0),
            idempotency_key: fresh_key(),
        };
        self.call(|ch| {
            let r = req.clone();
            async move { Self::cluster(ch).create_join_token(r).await }
        })
        .await
    }

    /// Every join-token record (no secrets).
    pub async fn list_join_tokens(&self) -> Result<Vec<pb::JoinToken>, ClientError> {
        self.call(|ch| async move {
            Self::cluster(ch)
                .list_join_tokens(pb::ListJoinTokensRequest {})
                .await
        })
        .await
        .map(|r| r.tokens)
    }

    /// Revokes a join token.
    pub async fn revoke_join_token(&self, id: &str) -> Result<(), ClientError> {
        let req = pb::RevokeJoinTokenRequest {
            id: id.to_owned(),
            idempotency_key: fresh_key(),
        };
        self.call(|ch| {
            let r = req.clone();
            async move { Self::cluster(ch).revoke_join_token(r).await }
        })
        .await
        .map(|_| ())
    }
}

#[derive(Clone, Copy)]
enum NodeAction {
    Cordon,
    Drain,
    Uncordon,
}

/// Whether an exec that failed with `s` surely did not run, so retrying it cannot run the
/// command twice. Only an Unavailable qualifies, and only because no Unavailable here can come
/// after the command may have run: Cloudless servers answer an exec Unavailable only before it
/// reached an agent (a broken agent stream or a forwarded call that broke under way is Unknown,
/// "the command may have run"), and tonic makes Unavailable on this side only for a failed
/// connect, a stream the server refused unprocessed, or an HTTP/2 keep-alive timeout — and the
/// client's channels set no keep-alive. A connection that breaks mid-call is Unknown or
/// Internal here, never retried.
fn exec_not_started(s: &Status) -> bool {
    s.code() == Code::Unavailable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse() {
        assert!(matches!(parse_endpoint("127.0.0.1:7443"), Ok((h, 7443)) if h == "127.0.0.1"));
        assert!(matches!(parse_endpoint("[::1]:1"), Ok((h, 1)) if h == "::1"));
        for bad in ["", "host", ":80", "h:x", "h:70000"] {
            assert!(parse_endpoint(bad).is_err(), "{bad}");
        }
    }

    fn client(endpoints: &[&str]) -> Client {
        let tls =
            ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_protocol_versions(&[&rustls::version::TLS13])
                .expect("tls13")
                .with_root_certificates(rustls::RootCertStore::empty())
                .with_no_client_auth();
        Client::with_rustls(endpoints.iter().copied(), Arc::new(tls)).expect("client")
    }

    fn unavailable(leader_addr: Option<&str>) -> Status {
        let mut s = Status::unavailable("not the leader");
        if let Some(a) = leader_addr {
            s.metadata_mut()
                .insert(LEADER_ADDR_KEY, a.parse().expect("metadata"));
        }
        s
    }

    #[test]
    fn unavailable_follows_the_leader_hint_else_rotates() {
        let c = client(&["10.0.0.1:1", "10.0.0.2:1"]);
        c.redirect(&unavailable(Some("10.0.0.2:1")));
        assert_eq!(c.current_endpoint(), "10.0.0.2:1");
        // A leader not in the list is added and used.
        c.redirect(&unavailable(Some("10.0.0.9:7443")));
        assert_eq!(c.current_endpoint(), "10.0.0.9:7443");
        // No usable hint: the next endpoint.
        c.redirect(&unavailable(Some("garbage")));
        assert_eq!(c.current_endpoint(), "10.0.0.1:1");
        c.redirect(&unavailable(None));
        assert_eq!(c.current_endpoint(), "10.0.0.2:1");
        assert!(Client::with_rustls(Vec::<String>::new(), Arc::clone(&c.tls)).is_err());
    }

    #[test]
    fn keys_are_unique() {
        assert_ne!(fresh_key(), fresh_key());
        assert_eq!(key_or_fresh(Some("k")), "k");
        assert!(key_or_fresh(Some("")).starts_with("client-"));
    }
}
