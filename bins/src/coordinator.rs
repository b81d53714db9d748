//! `cloudless-coordinator`: settings, data directory, and the `init | run | join | snapshot |
//! status | token` commands. Design record: `docs/design/daemons.md`.
//!
//! ```text
//!  <data-dir>/ (0700)
//!    coordinator.json        cluster, node id, name, raft address, join state (0600)
//!    ca/ca.pem, ca/ca.key    cluster CA (key 0600; or ca.key.locked with a passphrase)
//!    identity/node.pem,.key  this coordinator's certificate and key (0600)
//!    raft/                   redb: raft log, vote, state machine, snapshots
//!    admin.pem               admin credentials written by `init` (0600; move it off the host)
//!
//!  ports (default layout from --listen P):  P control (QUIC mTLS: agents, coordinators)
//!    P+1 raft (QUIC mTLS, coordinators only)  P+2 enrollment (QUIC, token)  P+3 API (gRPC/TLS)
//!
//!  API forwarding: every member answers `Daemon/ApiAddress` on its raft port (coordinators
//!  only); each member asks the raft members for their API addresses (on start, for new members
//!  every second, for all every 30 s) and hands them to its API server, which then forwards
//!  calls to the leader instead of answering Unavailable.
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use cloudless::api::{ApiConfig, ApiServer, ApiTls};
use cloudless::coordinator::{CoordinatorConfig, mirror_revocations};
use cloudless::fabric::{Fabric, FabricHandle};
use cloudless_core::clock::{Clock, SystemClock};
use cloudless_core::consensus::{Consensus, ConsensusError};
use cloudless_core::ids::NodeId;
use cloudless_core::state::{Command, CommandEnvelope};
use cloudless_core::transport::{PeerIdentity, Role, Transport};
use cloudless_net::identity::authz::require_coordinator;
use cloudless_net::identity::enroll::{
    EnrollConfig, EnrollParams, EnrollServer, EnrollService, enroll,
};
use cloudless_net::identity::handover::{fetch_ca, serve_ca_handover};
use cloudless_net::identity::lock::DEFAULT_KDF_ITERATIONS;
use cloudless_net::identity::renewal::{serve_renewal, validity};
use cloudless_net::identity::{
    CA_KEY_FILE, ClusterCa, DEFAULT_NODE_LIFETIME, JoinToken, NODE_CERT_FILE, NODE_KEY_FILE,
    NodeCredentials, NodeKey, TokenRole, write_private,
};
use cloudless_net::quic::{QuicConfig, QuicTransport};
use cloudless_net::{Method, Router, RpcConfig, RpcEndpoint, Status};
use cloudless_store::{RaftConsensus, RaftConsensusConfig, RaftService};
use serde::{Deserialize, Serialize};

use crate::common::{self, create_private_dir, is_empty_dir, resolve};
use crate::config::{self, ConfigError};

/// Metadata file of a coordinator data dir.
pub const META_FILE: &str = "coordinator.json";
/// CA subdirectory.
pub const CA_DIR: &str = "ca";
/// Identity subdirectory.
pub const IDENTITY_DIR: &str = "identity";
/// Raft data subdirectory.
pub const RAFT_DIR: &str = "raft";
/// Default admin credentials file name inside the data dir.
pub const ADMIN_FILE: &str = "admin.pem";
/// Default control port.
pub const DEFAULT_PORT: u16 = 7400;
/// Lifetime of the admin certificate `init` writes.
pub const ADMIN_LIFETIME: Duration = Duration::from_secs(90 * 24 * 3600);
/// Default lifetime of a join token.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// How long start-up waits for this member to see a leader.
pub const LEADER_WAIT: Duration = Duration::from_secs(30);

/// A coordinator asks an existing one to add it as a raft voter (coordinator identities only;
/// a coordinator can only add itself).
pub const ADD_VOTER: Method<AddVoterRequest, AddVoterResponse> =
    Method::new("cloudless.v1.Daemon/AddVoter");

/// Request of [`ADD_VOTER`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct AddVoterRequest {
    /// The caller's raft address (`host:port`).
    #[prost(string, tag = "1")]
    pub raft_address: String,
}

/// Answer of [`ADD_VOTER`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct AddVoterResponse {
    /// The voters after the change.
    #[prost(uint64, repeated, tag = "1")]
    pub voters: Vec<u64>,
}

/// A coordinator asks another (on its raft port) for the address of its public API, so calls
/// reaching a follower's API can be forwarded to the leader's (coordinator identities only).
pub const API_ADDRESS: Method<ApiAddressRequest, ApiAddressResponse> =
    Method::new("cloudless.v1.Daemon/ApiAddress");

/// Request of [`API_ADDRESS`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct ApiAddressRequest {}

/// Answer of [`API_ADDRESS`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct ApiAddressResponse {
    /// The advertised API address (`host:port`).
    #[prost(string, tag = "1")]
    pub address: String,
}

/// How often a coordinator looks for raft members whose API address it does not know.
pub const API_PEER_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Every this many sync rounds, known API addresses are asked again (a member restarted with
/// another API port).
const API_PEER_REFRESH_ROUNDS: u32 = 30;

/// The config file of a coordinator (YAML; every key optional; unknown keys rejected).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoordinatorFile {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Cluster name (`init`).
    pub cluster: Option<String>,
    /// This coordinator's node name.
    pub name: Option<String>,
    /// Control address (QUIC).
    pub listen: Option<String>,
    /// Raft address (QUIC); default listen port + 1.
    pub raft_listen: Option<String>,
    /// Enrollment address (QUIC); default listen port + 2.
    pub enroll_listen: Option<String>,
    /// Public API address (gRPC over TLS); default listen port + 3.
    pub api_listen: Option<String>,
    /// Host other coordinators and agents reach this one at; default the listen host.
    pub advertise_host: Option<String>,
    /// File holding the passphrase that locks the CA key.
    pub ca_passphrase_file: Option<PathBuf>,
    /// Where `init` writes the admin credentials.
    pub admin_credentials: Option<PathBuf>,
}

/// Settings given on the command line or in the environment (`None`: not given).
#[derive(Debug, Default, Clone)]
pub struct CoordinatorFlags {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--cluster`.
    pub cluster: Option<String>,
    /// `--name`.
    pub name: Option<String>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--raft-listen`.
    pub raft_listen: Option<String>,
    /// `--enroll-listen`.
    pub enroll_listen: Option<String>,
    /// `--api-listen`.
    pub api_listen: Option<String>,
    /// `--advertise-host`.
    pub advertise_host: Option<String>,
    /// `--ca-passphrase-file`.
    pub ca_passphrase_file: Option<PathBuf>,
    /// `--admin-credentials`.
    pub admin_credentials: Option<PathBuf>,
}

/// Resolved settings of a coordinator.
#[derive(Debug, Clone)]
pub struct CoordinatorSettings {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Cluster name, when given.
    pub cluster: Option<String>,
    /// Node name.
    pub name: String,
    /// Control address.
    pub listen: SocketAddr,
    /// Raft address.
    pub raft_listen: SocketAddr,
    /// Enrollment address.
    pub enroll_listen: SocketAddr,
    /// API address.
    pub api_listen: SocketAddr,
    /// Advertised host.
    pub advertise_host: String,
    /// CA passphrase file.
    pub ca_passphrase_file: Option<PathBuf>,
    /// Admin credentials file.
    pub admin_credentials: PathBuf,
}

fn addr(field: &'static str, s: &str) -> Result<SocketAddr, ConfigError> {
    s.parse::<SocketAddr>()
        .map_err(|e| ConfigError::invalid(field, format!("{s:?} is not ip:port: {e}")))
}

impl CoordinatorSettings {
    /// Merges flags (and env, through clap) over the config file over the defaults.
    pub fn resolve(flags: CoordinatorFlags) -> Result<Self, ConfigError> {
        let file: CoordinatorFile = match &flags.config {
            Some(path) => config::load_file(path)?,
            None => CoordinatorFile::default(),
        };
        let data_dir =
            config::pick_opt(flags.data_dir, file.data_dir).ok_or(ConfigError::Missing {
                field: "data_dir",
                flag: "data-dir",
                env: "CLOUDLESS_DATA_DIR",
            })?;
        let listen = addr(
            "listen",
            &config::pick(flags.listen, file.listen, format!("0.0.0.0:{DEFAULT_PORT}")),
        )?;
        let derived = |field: &'static str, flag: Option<String>, f: Option<String>, off: u16| {
            match config::pick_opt(flag, f) {
                Some(s) => addr(field, &s),
                None => common::port_offset(field, listen, off).map_err(|e| {
                    ConfigError::invalid(field, e.to_string().replace(&format!("{field}: "), ""))
                }),
            }
        };
        let raft_listen = derived("raft_listen", flags.raft_listen, file.raft_listen, 1)?;
        let enroll_listen = derived("enroll_listen", flags.enroll_listen, file.enroll_listen, 2)?;
        let api_listen = derived("api_listen", flags.api_listen, file.api_listen, 3)?;
        let advertise_host = match config::pick_opt(flags.advertise_host, file.advertise_host) {
            Some(h) if !h.trim().is_empty() => h,
            Some(_) => return Err(ConfigError::invalid("advertise_host", "is empty")),
            None if listen.ip().is_unspecified() => {
                return Err(ConfigError::invalid(
                    "advertise_host",
                    format!(
                        "required when listen is {listen} (the address others reach this coordinator at)"
                    ),
                ));
            }
            None => listen.ip().to_string(),
        };
        let name = config::pick(flags.name, file.name, common::default_node_name());
        common::node_name(&name).map_err(|e| ConfigError::invalid("name", e))?;
        if let Some(c) = flags.cluster.as_ref().or(file.cluster.as_ref()) {
            cloudless_net::identity::spiffe::validate_cluster_name(c)
                .map_err(|e| ConfigError::invalid("cluster", e))?;
        }
        let admin_credentials = config::pick(
            flags.admin_credentials,
            file.admin_credentials,
            data_dir.join(ADMIN_FILE),
        );
        Ok(Self {
            cluster: flags.cluster.or(file.cluster),
            name,
            listen,
            raft_listen,
            enroll_listen,
            api_listen,
            advertise_host,
            ca_passphrase_file: flags.ca_passphrase_file.or(file.ca_passphrase_file),
            admin_credentials,
            data_dir,
        })
    }

    /// The raft address other members dial.
    pub fn raft_advertise(&self) -> String {
        format!("{}:{}", self.advertise_host, self.raft_listen.port())
    }

    /// The API address other coordinators forward to, given the bound API port.
    pub fn api_advertise(&self, port: u16) -> String {
        format!("{}:{port}", self.advertise_host)
    }

    fn passphrase(&self) -> Result<Option<zeroize::Zeroizing<String>>> {
        let Some(path) = &self.ca_passphrase_file else {
            return Ok(None);
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow!("ca_passphrase_file: {}: {e}", path.display()))?;
        let p = text.trim_end_matches(['\n', '\r']).to_owned();
        if p.len() < 8 {
            bail!(
                "ca_passphrase_file: {}: the passphrase must have at least 8 characters",
                path.display()
            );
        }
        Ok(Some(zeroize::Zeroizing::new(p)))
    }
}

/// What a coordinator data dir records about its member (`coordinator.json`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Meta {
    /// Cluster name.
    pub cluster: String,
    /// Node id (raft member id).
    pub node: u64,
    /// Node name.
    pub name: String,
    /// True once this member is a raft voter (false between `join`'s enrollment and the
    /// membership change; `run` then finishes the join).
    pub voter: bool,
    /// Control addresses of the coordinators this one joined through.
    #[serde(default)]
    pub peers: Vec<String>,
}

impl Meta {
    fn path(dir: &Path) -> PathBuf {
        dir.join(META_FILE)
    }

    /// Reads `coordinator.json` from `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = Self::path(dir);
        let text = std::fs::read_to_string(&path).map_err(|e| {
            anyhow!(
                "data_dir: {}: {e} (not a coordinator data dir? run `init` or `join` first)",
                path.display()
            )
        })?;
        serde_json::from_str(&text).map_err(|e| anyhow!("{}: {e}", path.display()))
    }

    fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let text = serde_json::to_vec_pretty(self)?;
        write_private(&path, &text).with_context(|| format!("writing {}", path.display()))
    }
}

fn save_ca(ca: &ClusterCa, dir: &Path, passphrase: Option<&str>) -> Result<()> {
    create_private_dir(dir)?;
    match passphrase {
        Some(p) => {
            let iterations = NonZeroU32::new(DEFAULT_KDF_ITERATIONS)
                .ok_or_else(|| anyhow!("zero KDF iterations"))?;
            ca.save_locked(dir, p, iterations)
        }
        None => ca.save(dir),
    }
    .with_context(|| format!("writing the cluster CA to {}", dir.display()))
}

fn load_ca(settings: &CoordinatorSettings) -> Result<ClusterCa> {
    let dir = settings.data_dir.join(CA_DIR);
    if ClusterCa::is_locked(&dir) {
        let p = settings.passphrase()?.ok_or_else(|| {
            anyhow!(
                "ca_passphrase_file: the CA key in {} is locked; give the passphrase file",
                dir.display()
            )
        })?;
        ClusterCa::load_locked(&dir, &p).map_err(|e| anyhow!("unlocking the CA: {e}"))
    } else {
        ClusterCa::load(&dir).map_err(|e| anyhow!("loading the CA: {e}"))
    }
}

fn issue(
    ca: &ClusterCa,
    key: &NodeKey,
    role: Role,
    node: NodeId,
    lifetime: Duration,
) -> Result<NodeCredentials> {
    let id = PeerIdentity {
        cluster: ca.cluster().to_owned(),
        role,
        node,
    };
    let cert = ca.issue(&key.csr()?, &id, SystemTime::now(), lifetime)?;
    Ok(NodeCredentials::new(key, cert, ca.cert().clone())?)
}

/// Loads this coordinator's credentials, reissuing its certificate from the CA when less than
/// half of its lifetime is left (a coordinator holds the CA, so it renews itself at start).
fn load_credentials(dir: &Path, ca: &ClusterCa) -> Result<NodeCredentials> {
    let id_dir = dir.join(IDENTITY_DIR);
    let creds = NodeCredentials::load(&id_dir)
        .map_err(|e| anyhow!("loading the identity in {}: {e}", id_dir.display()))?;
    let (from, to) = validity(creds.cert())?;
    let half = to.duration_since(from).unwrap_or_default() / 2;
    if SystemTime::now() + half > to {
        let key = NodeKey::load(&id_dir.join(NODE_KEY_FILE))?;
        let fresh = issue(
            ca,
            &key,
            Role::Coordinator,
            creds.identity().node,
            DEFAULT_NODE_LIFETIME,
        )?;
        fresh.save(&id_dir)?;
        tracing::info!("renewed this coordinator's certificate");
        return Ok(fresh);
    }
    Ok(creds)
}

fn bind(addr: SocketAddr, creds: &NodeCredentials) -> Result<Arc<QuicTransport>> {
    Ok(Arc::new(
        QuicTransport::bind(addr, creds, QuicConfig::default())
            .map_err(|e| anyhow!("binding {addr}: {e}"))?,
    ))
}

/// A raft member on its own transport.
struct RaftMember {
    consensus: RaftConsensus,
    endpoint: RpcEndpoint,
    transport: Arc<QuicTransport>,
    /// What [`API_ADDRESS`] answers (empty until the API is bound).
    api_address: Arc<std::sync::Mutex<String>>,
}

async fn start_raft(
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

fn serve_api_address(router: &mut Router, address: Arc<std::sync::Mutex<String>>) {
    router.unary(&API_ADDRESS, move |ctx, _req: ApiAddressRequest| {
        let address = address.lock().unwrap_or_else(|p| p.into_inner()).clone();
        async move {
            require_coordinator(&ctx.peer)?;
            if address.is_empty() {
                return Err(Status::unavailable("the API is not started yet"));
            }
            Ok(ApiAddressResponse { address })
        }
    });
}

/// Keeps `api`'s peer table (member id -> API address) in step with the raft membership:
/// asks each member it does not know yet over the raft transport, and all of them again every
/// [`API_PEER_REFRESH_ROUNDS`] rounds. Unreachable members keep their last known address (so a
/// leader hint can still name it).
fn spawn_api_peer_sync(
    member: &RaftMember,
    api: Arc<ApiServer>,
    me: NodeId,
    my_address: String,
) -> tokio::task::JoinHandle<()> {
    let consensus = member.consensus.clone();
    let transport = Arc::clone(&member.transport);
    let client = member.endpoint.client();
    tokio::spawn(async move {
        // member id -> (raft address asked, API address)
        let mut known: BTreeMap<u64, (String, String)> = BTreeMap::new();
        let mut applied: BTreeMap<NodeId, String> = BTreeMap::new();
        let mut round: u32 = 0;
        loop {
            let refresh = round.is_multiple_of(API_PEER_REFRESH_ROUNDS);
            round = round.wrapping_add(1);
            let members: Vec<(u64, String)> = {
                let metrics = consensus.raft().metrics();
                let m = metrics.borrow();
                m.membership_config
                    .membership()
                    .nodes()
                    .map(|(id, node)| (*id, node.addr.clone()))
                    .collect()
            };
            for (id, raft_addr) in &members {
                if *id == me.get()
                    || (!refresh && known.get(id).is_some_and(|(a, _)| a == raft_addr))
                {
                    continue;
                }
                match ask_api_address(transport.as_ref(), &client, NodeId(*id), raft_addr).await {
                    Ok(address) => {
                        known.insert(*id, (raft_addr.clone(), address));
                    }
                    Err(e) => tracing::debug!(member = id, %raft_addr, "api address: {e}"),
                }
            }
            known.retain(|id, _| members.iter().any(|(m, _)| m == id));
            let mut peers: BTreeMap<NodeId, String> = known
                .iter()
                .map(|(id, (_, a))| (NodeId(*id), a.clone()))
                .collect();
            peers.insert(me, my_address.clone());
            if peers != applied {
                tracing::info!(peers = ?peers, "coordinator API addresses");
                api.set_peers(peers.clone());
                applied = peers;
            }
            tokio::time::sleep(API_PEER_SYNC_INTERVAL).await;
        }
    })
}

async fn ask_api_address(
    transport: &dyn Transport,
    client: &cloudless_net::RpcClient,
    id: NodeId,
    raft_addr: &str,
) -> Result<String> {
    let limit = Duration::from_secs(3);
    let peer = tokio::time::timeout(limit, transport.connect(raft_addr))
        .await
        .map_err(|_| anyhow!("no answer in {} s", limit.as_secs()))??;
    if peer.node != id || peer.role != Role::Coordinator {
        bail!("{raft_addr} is {peer}, not coordinator {id}");
    }
    let resp = client
        .call(id, &API_ADDRESS, ApiAddressRequest {}, limit)
        .await?;
    match resp.address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(resp.address),
        _ => bail!("{raft_addr} answered {:?}, not host:port", resp.address),
    }
}

async fn wait_leader(c: &RaftConsensus, limit: Duration) -> Result<NodeId> {
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

async fn propose(c: &dyn Consensus, command: Command) -> Result<()> {
    c.propose(CommandEnvelope::new(SystemClock.now_ms(), command))
        .await
        .map(|_| ())
        .map_err(|e| anyhow!("{e}"))
}

/// A coordinator has a node record (it reserves the coordinator's name and id, which enrollment
/// mints from the node table and `status` shows) but runs no agent: the record is cordoned so
/// it never reads as a schedulable node. It stays `Joining` (nothing heartbeats for it).
async fn cordon_coordinator(c: &dyn Consensus, node: NodeId) -> Result<()> {
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
async fn create_token(
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

/// Output of `init`.
#[derive(Debug)]
pub struct InitOutput {
    /// The agent join token.
    pub agent_token: zeroize::Zeroizing<String>,
    /// The coordinator join token, when asked for.
    pub coordinator_token: Option<zeroize::Zeroizing<String>>,
}

/// `init`: a new cluster in an empty data dir.
pub async fn init(
    s: &CoordinatorSettings,
    coordinator_token: bool,
    token_ttl: Duration,
) -> Result<InitOutput> {
    let cluster = s.cluster.clone().ok_or(ConfigError::Missing {
        field: "cluster",
        flag: "cluster",
        env: "CLOUDLESS_CLUSTER",
    })?;
    let dir = &s.data_dir;
    if !is_empty_dir(dir)? {
        bail!(
            "data_dir: {} is not empty; init only creates a new cluster in an empty directory",
            dir.display()
        );
    }
    if std::fs::symlink_metadata(&s.admin_credentials).is_ok() {
        bail!(
            "admin_credentials: {} already exists; refusing to overwrite it",
            s.admin_credentials.display()
        );
    }
    let passphrase = s.passphrase()?;
    create_private_dir(dir)?;
    let ca = ClusterCa::init(&cluster, SystemTime::now())?;
    save_ca(
        &ca,
        &dir.join(CA_DIR),
        passphrase.as_deref().map(String::as_str),
    )?;
    let node = NodeId(1);
    let key = NodeKey::generate()?;
    let creds = issue(&ca, &key, Role::Coordinator, node, DEFAULT_NODE_LIFETIME)?;
    let id_dir = dir.join(IDENTITY_DIR);
    create_private_dir(&id_dir)?;
    creds.save(&id_dir)?;

    // The single-member raft cluster, on a loopback port of its own (nothing dials a single
    // member); its membership records the advertised raft address.
    let member = start_raft(&creds, dir, "127.0.0.1:0".parse()?).await?;
    let c = &member.consensus;
    let result = async {
        c.initialize(BTreeMap::from([(node, s.raft_advertise())]))
            .await
            .map_err(|e| anyhow!("initializing raft: {e}"))?;
        wait_leader(c, LEADER_WAIT).await?;
        let report = common::node_report(dir, "", "", &BTreeMap::new());
        propose(
            c,
            Command::RegisterNodeAs {
                node,
                name: common::node_name(&s.name)?,
                report,
            },
        )
        .await
        .context("registering this coordinator")?;
        cordon_coordinator(c, node).await?;
        let agent_token = create_token(c, &ca, TokenRole::Agent, token_ttl, None).await?;
        let coordinator_token = if coordinator_token {
            Some(create_token(c, &ca, TokenRole::Coordinator, token_ttl, None).await?)
        } else {
            None
        };
        Ok::<_, anyhow::Error>(InitOutput {
            agent_token,
            coordinator_token,
        })
    }
    .await;
    c.shutdown().await;
    member.transport.close();
    let out = result?;

    let admin_key = NodeKey::generate()?;
    let admin = issue(&ca, &admin_key, Role::Admin, NodeId(0), ADMIN_LIFETIME)?;
    common::write_admin_credentials(&s.admin_credentials, &admin_key, &admin)?;
    Meta {
        cluster,
        node: node.get(),
        name: s.name.clone(),
        voter: true,
        peers: Vec::new(),
    }
    .save(dir)?;
    Ok(out)
}

/// What `join` needs beyond the settings.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    /// Coordinator join token.
    pub token: String,
    /// Control addresses of existing coordinators.
    pub peers: Vec<String>,
    /// Enrollment address of the first peer (default: its control port + 2).
    pub peer_enroll: Option<String>,
}

/// `join` step 1: enroll as a coordinator and fetch the CA. The data dir is then complete but
/// the member is not yet a voter; [`run`] finishes the join.
pub async fn join_setup(s: &CoordinatorSettings, args: &JoinArgs) -> Result<()> {
    let dir = &s.data_dir;
    if Meta::path(dir).exists() {
        tracing::info!(
            "{} exists: this coordinator already enrolled",
            dir.display()
        );
        return Ok(());
    }
    if !is_empty_dir(dir)? {
        bail!(
            "data_dir: {} is not empty and holds no {META_FILE}",
            dir.display()
        );
    }
    let first = args
        .peers
        .first()
        .ok_or_else(|| anyhow!("peer: at least one --peer is required"))?;
    let peer_addr = resolve("peer", first)?;
    let enroll_addr = match &args.peer_enroll {
        Some(a) => resolve("peer_enroll", a)?,
        None => common::port_offset("peer_enroll", peer_addr, 2)?,
    };
    let token = JoinToken::parse(&args.token).map_err(|e| anyhow!("token: {e}"))?;
    create_private_dir(dir)?;
    let id_dir = dir.join(IDENTITY_DIR);
    create_private_dir(&id_dir)?;
    let key = NodeKey::generate()?;
    key.save(&id_dir.join(NODE_KEY_FILE))?;
    let report = common::node_report(dir, "", "", &BTreeMap::new());
    let creds = enroll(
        enroll_addr,
        &token,
        &key,
        EnrollParams {
            name: s.name.clone(),
            role: TokenRole::Coordinator,
            report,
        },
        Duration::from_secs(10),
    )
    .await
    .with_context(|| format!("enrolling at {enroll_addr}"))?;
    if creds.identity().role != Role::Coordinator {
        bail!(
            "the enrollment issued {}, not a coordinator",
            creds.identity()
        );
    }
    creds.save(&id_dir)?;

    // The CA key, handed over on the authenticated cluster transport.
    let t = bind(SocketAddr::new(s.listen.ip(), 0), &creds)?;
    let td: Arc<dyn Transport> = t.clone();
    let ep = RpcEndpoint::start(Arc::clone(&td), Router::new(), RpcConfig::default())?;
    let peer = td
        .connect(first)
        .await
        .with_context(|| format!("connecting to {first}"))?;
    let ca = fetch_ca(&ep.client(), peer.node, creds.ca(), Duration::from_secs(10))
        .await
        .with_context(|| format!("fetching the CA from {peer}"))?;
    drop(ep);
    t.close();
    let passphrase = s.passphrase()?;
    save_ca(
        &ca,
        &dir.join(CA_DIR),
        passphrase.as_deref().map(String::as_str),
    )?;
    Meta {
        cluster: creds.identity().cluster.clone(),
        node: creds.identity().node.get(),
        name: s.name.clone(),
        voter: false,
        peers: args.peers.clone(),
    }
    .save(dir)?;
    tracing::info!(identity = %creds.identity(), "enrolled as a coordinator");
    Ok(())
}

/// Asks the peers, in turn, to add this member as a voter.
async fn become_voter(
    creds: &NodeCredentials,
    listen_ip: std::net::IpAddr,
    peers: &[String],
    raft_address: &str,
) -> Result<()> {
    let t = bind(SocketAddr::new(listen_ip, 0), creds)?;
    let td: Arc<dyn Transport> = t.clone();
    let ep = RpcEndpoint::start(Arc::clone(&td), Router::new(), RpcConfig::default())?;
    let mut last = String::from("no peers");
    for p in peers {
        let peer = match td.connect(p).await {
            Ok(peer) => peer,
            Err(e) => {
                last = format!("{p}: {e}");
                continue;
            }
        };
        let r = ep
            .client()
            .call(
                peer.node,
                &ADD_VOTER,
                AddVoterRequest {
                    raft_address: raft_address.to_owned(),
                },
                Duration::from_secs(30),
            )
            .await;
        match r {
            Ok(resp) => {
                tracing::info!(voters = ?resp.voters, via = %peer, "added as a raft voter");
                t.close();
                return Ok(());
            }
            Err(e) => last = format!("{p}: {e}"),
        }
    }
    t.close();
    bail!("no coordinator added this member as a voter (last: {last})")
}

fn serve_add_voter(router: &mut Router, consensus: Arc<dyn Consensus>) {
    router.unary(&ADD_VOTER, move |ctx, req: AddVoterRequest| {
        let consensus = Arc::clone(&consensus);
        async move {
            require_coordinator(&ctx.peer)?;
            if req.raft_address.parse::<SocketAddr>().is_err() && !req.raft_address.contains(':') {
                return Err(Status::invalid_argument(format!(
                    "raft_address {:?} is not host:port",
                    req.raft_address
                )));
            }
            let node = ctx.peer.node;
            let voters = consensus.status().await.map_err(status)?.voters;
            if !voters.contains(&node) {
                tracing::info!(%node, addr = %req.raft_address, "adding a raft voter");
                consensus
                    .add_voter(node, req.raft_address)
                    .await
                    .map_err(status)?;
            }
            // Its node record (from enrollment) is cordoned: no agent runs behind it.
            cordon_coordinator(consensus.as_ref(), node)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            let voters = consensus.status().await.map_err(status)?.voters;
            Ok(AddVoterResponse {
                voters: voters.iter().map(|n| n.get()).collect(),
            })
        }
    });
}

fn status(e: ConsensusError) -> Status {
    match e {
        ConsensusError::NotLeader { leader } => Status::unavailable(format!(
            "not the leader (leader: {})",
            leader.map_or_else(|| "unknown".to_owned(), |l| l.to_string())
        )),
        other => Status::unavailable(other.to_string()),
    }
}

/// The consensus handed to the coordinator role: the raft member, except that `state()` on a
/// follower answers the member's applied state instead of `NotLeader`. The coordinator reads
/// the state once at start and acts only while leading (where reads stay linearizable), so a
/// follower coordinator can start and stand by; the API and enrollment get the plain member.
struct CoordinatorConsensus(RaftConsensus);

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

/// `snapshot save`: the state of a stopped coordinator's data dir to `file` (0600).
pub async fn snapshot_save(
    data_dir: &Path,
    file: &Path,
) -> Result<cloudless_store::snapshot::SnapshotInfo> {
    let meta = Meta::load(data_dir)?;
    let state = read_offline_state(data_dir, &meta).await?;
    Ok(cloudless_store::snapshot::save(&state, file)?)
}

/// The applied state of the raft data in `data_dir`, read without joining the cluster (an
/// in-memory transport that reaches no one).
async fn read_offline_state(
    data_dir: &Path,
    meta: &Meta,
) -> Result<cloudless_core::state::ClusterState> {
    use cloudless_net::mem::MemNetwork;
    let me = PeerIdentity {
        cluster: meta.cluster.clone(),
        role: Role::Coordinator,
        node: NodeId(meta.node),
    };
    let net = MemNetwork::new(1);
    let t: Arc<dyn Transport> = Arc::new(net.endpoint(me));
    let service = RaftService::new(meta.cluster.clone());
    let mut router = Router::new();
    service.register(&mut router);
    let ep = RpcEndpoint::start(Arc::clone(&t), router, RpcConfig::default())?;
    let c = RaftConsensus::start(
        RaftConsensusConfig::new(
            NodeId(meta.node),
            meta.cluster.clone(),
            data_dir.join(RAFT_DIR),
        ),
        t,
        ep.client(),
        &service,
    )
    .await
    .with_context(|| {
        format!(
            "opening {} (is the coordinator still running? stop it first)",
            data_dir.join(RAFT_DIR).display()
        )
    })?;
    let state = (*c.local_state()).clone();
    c.shutdown().await;
    Ok(state)
}

/// `snapshot restore`: turn `file` into the raft data of a single-member cluster in
/// `data_dir` (which must hold this coordinator's CA and identity, and no raft data).
pub fn snapshot_restore(
    s: &CoordinatorSettings,
    file: &Path,
) -> Result<cloudless_store::snapshot::SnapshotInfo> {
    let dir = &s.data_dir;
    let mut meta = Meta::load(dir)?;
    for f in [
        dir.join(IDENTITY_DIR).join(NODE_CERT_FILE),
        dir.join(IDENTITY_DIR).join(NODE_KEY_FILE),
    ] {
        if !f.exists() {
            bail!("data_dir: {} is missing", f.display());
        }
    }
    let ca_dir = dir.join(CA_DIR);
    if !ca_dir.join(CA_KEY_FILE).exists() && !ClusterCa::is_locked(&ca_dir) {
        bail!("data_dir: no CA key in {}", ca_dir.display());
    }
    let raft = dir.join(RAFT_DIR);
    if !is_empty_dir(&raft)? {
        bail!(
            "data_dir: {} holds raft data; move it away first (restore creates a new single-member cluster)",
            raft.display()
        );
    }
    let info =
        cloudless_store::snapshot::restore(file, &raft, NodeId(meta.node), s.raft_advertise())?;
    meta.voter = true;
    meta.save(dir)?;
    Ok(info)
}

/// Joins the cluster `running` is part of as an admin client of its API.
pub fn admin_client(api: &[String], credentials: &Path) -> Result<cloudless::Client> {
    let creds = common::load_admin_credentials(credentials)?;
    cloudless::Client::new(api.iter().cloned(), &creds).map_err(|e| anyhow!("api: {e}"))
}
