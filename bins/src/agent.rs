//! `cloudless-agent`: settings, data directory, and the `join | run` commands. Design record:
//! `docs/design/daemons.md`.
//!
//! ```text
//!  <data-dir>/ (0700)
//!    identity/node.key (0600), node.pem    from `join` (enrollment with a token)
//!    coordinators.json                      coordinator node ids by control address
//!    state/                                 the agent's ledger (AgentConfig::data_dir)
//!    process/                               process runtime state (adopted on restart)
//!    containerd/                            containerd runtime scratch
//! ```
//!
//! Images without a registry: `images:` in the config file lists OCI image layout tarballs
//! (e.g. from `cloudless_runtime::busybox::write_oci_layout`, `docker save`, `skopeo copy
//! oci-archive:`); `run` imports each into the agent's containerd namespace before the agent
//! starts (idempotent: an image already there is kept), so workloads can name them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cloudless::agent::AgentConfig;
use cloudless::fabric::{Fabric, FabricHandle};
use cloudless::protocol::join::{IDENTITY_DIR, JoinParams, join};
use cloudless_core::clock::SystemClock;
use cloudless_core::ids::NodeId;
use cloudless_core::runtime::Runtime;
use cloudless_core::transport::{Role, Transport};
use cloudless_net::identity::NodeCredentials;
use cloudless_net::identity::renewal_driver::{RenewalConfig, RenewalDriver};
use cloudless_net::identity::write_private;
use cloudless_net::quic::{QuicConfig, QuicTransport};
use cloudless_runtime::containerd::disk_gc::DEFAULT_CONTAINERD_ROOT;
use cloudless_runtime::containerd::{
    BridgeNetwork, DiskGcPolicy, ImageGc, LogLimit, Statvfs, Watermark, load_agent_registries,
};
use cloudless_runtime::process::{ProcessConfig, ProcessRuntime};
use cloudless_runtime::{ChainRuntime, ContainerdConfig, ContainerdRuntime};
use serde::{Deserialize, Serialize};

use crate::common::{self, create_private_dir};
use crate::config::{self, ConfigError};

/// File of learned coordinator ids.
pub const COORDINATORS_FILE: &str = "coordinators.json";
/// Default containerd namespace.
pub const DEFAULT_NAMESPACE: &str = "cloudless";
/// Default bridge name when a subnet is given.
pub const DEFAULT_BRIDGE: &str = "cloudless0";
/// Name of the shim binary next to the agent.
pub const SHIM_NAME: &str = "cloudless-agent-shim";

/// Runtime choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeKind {
    /// containerd (with the process runtime behind it for `process://` images).
    Containerd,
    /// Host processes only (no containerd; weaker isolation).
    Process,
}

/// The config file of an agent (YAML; unknown keys rejected).
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    /// Data directory.
    pub data_dir: Option<PathBuf>,
    /// Node name.
    pub name: Option<String>,
    /// Coordinator control addresses.
    pub coordinators: Option<Vec<String>>,
    /// Enrollment address (default: first coordinator's port + 2).
    pub enroll: Option<String>,
    /// Region.
    pub region: Option<String>,
    /// Zone.
    pub zone: Option<String>,
    /// Labels.
    pub labels: Option<BTreeMap<String, String>>,
    /// `containerd` or `process`.
    pub runtime: Option<RuntimeKind>,
    /// containerd socket.
    pub containerd_socket: Option<PathBuf>,
    /// containerd namespace.
    pub namespace: Option<String>,
    /// Container subnet (CIDR) of the agent's bridge.
    pub subnet: Option<String>,
    /// Bridge name.
    pub bridge: Option<String>,
    /// Address the agent's transport binds (default `0.0.0.0:0`).
    pub listen: Option<String>,
    /// Path of the process runtime shim.
    pub process_shim: Option<PathBuf>,
    /// OCI image layout tarballs imported into the containerd namespace at start.
    pub images: Option<Vec<PathBuf>>,
    /// cgroup (v2, relative to the root) the agent's containers go under (default
    /// `cloudless-agent-<name>`): containerd ones as `<parent>/<namespace>/<id>`.
    pub cgroup_parent: Option<String>,
    /// Path of the capped container log writer (containerd runtime).
    pub container_logger: Option<PathBuf>,
    /// Bytes of log kept per container on the containerd runtime (0: uncapped; default
    /// [`DEFAULT_LOG_MAX_BYTES`]).
    pub log_max_bytes: Option<u64>,
    /// Image garbage collection under disk pressure (containerd runtime).
    pub image_gc: Option<ImageGcFile>,
}

/// `image_gc:` in the agent's config file. Free space is measured on the filesystem holding
/// `path`; below the low watermark (`low_percent` of the filesystem or `low_bytes`, whichever
/// is smaller) unused images are removed until free space reaches the high one.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageGcFile {
    /// `false` turns the collector off (default on with the containerd runtime).
    pub enabled: Option<bool>,
    /// A path on the filesystem holding containerd's content (default `/var/lib/containerd`,
    /// or the agent's data dir when that does not exist).
    pub path: Option<PathBuf>,
    /// Low watermark, percent of the filesystem (default 10).
    pub low_percent: Option<u8>,
    /// Low watermark, bytes (default 1 GiB).
    pub low_bytes: Option<u64>,
    /// High watermark, percent (default 15).
    pub high_percent: Option<u8>,
    /// High watermark, bytes (default 2 GiB).
    pub high_bytes: Option<u64>,
    /// Seconds between checks (default 60).
    pub period_secs: Option<u64>,
}

/// Default bytes of log kept per container (containerd runtime).
pub const DEFAULT_LOG_MAX_BYTES: u64 = 10 << 20;
/// Smallest accepted `log_max_bytes` other than 0.
pub const MIN_LOG_MAX_BYTES: u64 = 16 << 10;
/// Default seconds between image GC checks.
pub const DEFAULT_IMAGE_GC_PERIOD_SECS: u64 = 60;
/// Name of the container log writer next to the agent.
pub const LOGGER_NAME: &str = "cloudless-agent-logger";

/// Resolved image GC settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageGcSettings {
    /// Filesystem measured (any path on it).
    pub path: PathBuf,
    /// Whether `path` was given (an unusable given path is an error; the default falls back
    /// to the data dir).
    pub path_given: bool,
    /// Watermarks.
    pub policy: DiskGcPolicy,
    /// Time between checks.
    pub period: Duration,
}

impl ImageGcFile {
    /// Validates and fills in defaults; `None` when disabled. Errors name the key.
    pub fn resolve(self) -> Result<Option<ImageGcSettings>, ConfigError> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let d = DiskGcPolicy::default();
        let pct = |key: &'static str, v: Option<u8>, default: u8| match v {
            Some(p) if p > 100 => Err(ConfigError::invalid(
                key,
                format!("{p} is not a percentage (0-100)"),
            )),
            Some(p) => Ok(p),
            None => Ok(default),
        };
        let policy = DiskGcPolicy {
            low: Watermark {
                percent: pct("image_gc.low_percent", self.low_percent, d.low.percent)?,
                bytes: self.low_bytes.unwrap_or(d.low.bytes),
            },
            high: Watermark {
                percent: pct("image_gc.high_percent", self.high_percent, d.high.percent)?,
                bytes: self.high_bytes.unwrap_or(d.high.bytes),
            },
        };
        if policy.high.percent < policy.low.percent {
            return Err(ConfigError::invalid(
                "image_gc.high_percent",
                format!(
                    "{} is below image_gc.low_percent {}",
                    policy.high.percent, policy.low.percent
                ),
            ));
        }
        if policy.high.bytes < policy.low.bytes {
            return Err(ConfigError::invalid(
                "image_gc.high_bytes",
                format!(
                    "{} is below image_gc.low_bytes {}",
                    policy.high.bytes, policy.low.bytes
                ),
            ));
        }
        policy
            .validate()
            .map_err(|e| ConfigError::invalid("image_gc", e))?;
        let period_secs = self.period_secs.unwrap_or(DEFAULT_IMAGE_GC_PERIOD_SECS);
        if period_secs == 0 || period_secs > 86_400 {
            return Err(ConfigError::invalid(
                "image_gc.period_secs",
                format!("{period_secs} is not 1..=86400 seconds"),
            ));
        }
        let path_given = self.path.is_some();
        let path = match self.path {
            Some(p) => std::path::absolute(&p).map_err(|e| {
                ConfigError::invalid("image_gc.path", format!("{}: {e}", p.display()))
            })?,
            None => PathBuf::from(DEFAULT_CONTAINERD_ROOT),
        };
        Ok(Some(ImageGcSettings {
            path,
            path_given,
            policy,
            period: Duration::from_secs(period_secs),
        }))
    }
}

/// Flags (and env through clap); `None`: not given.
#[derive(Debug, Default, Clone)]
pub struct AgentFlags {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--name`.
    pub name: Option<String>,
    /// `--coordinator` (repeatable; env comma-separated).
    pub coordinators: Vec<String>,
    /// `--enroll`.
    pub enroll: Option<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--zone`.
    pub zone: Option<String>,
    /// `--label k=v` (repeatable).
    pub labels: Vec<String>,
    /// `--runtime`.
    pub runtime: Option<RuntimeKind>,
    /// `--containerd-socket`.
    pub containerd_socket: Option<PathBuf>,
    /// `--namespace`.
    pub namespace: Option<String>,
    /// `--subnet`.
    pub subnet: Option<String>,
    /// `--bridge`.
    pub bridge: Option<String>,
    /// `--listen`.
    pub listen: Option<String>,
    /// `--process-shim`.
    pub process_shim: Option<PathBuf>,
    /// `--container-logger`.
    pub container_logger: Option<PathBuf>,
    /// `--log-max-bytes`.
    pub log_max_bytes: Option<u64>,
}

/// Resolved agent settings.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// Data directory (absolute).
    pub data_dir: PathBuf,
    /// Node name.
    pub name: String,
    /// Coordinator control addresses (may be empty for `run` after `join`).
    pub coordinators: Vec<String>,
    /// Enrollment address.
    pub enroll: Option<String>,
    /// Region.
    pub region: String,
    /// Zone.
    pub zone: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Runtime.
    pub runtime: RuntimeKind,
    /// containerd socket.
    pub containerd_socket: Option<PathBuf>,
    /// containerd namespace.
    pub namespace: String,
    /// Subnet.
    pub subnet: Option<String>,
    /// Bridge.
    pub bridge: String,
    /// Transport bind address.
    pub listen: std::net::SocketAddr,
    /// Shim path.
    pub process_shim: Option<PathBuf>,
    /// OCI image layout tarballs (absolute paths) imported into containerd at start.
    pub images: Vec<PathBuf>,
    /// cgroup parent of the containers, relative, without leading `/`.
    pub cgroup_parent: String,
    /// Container log writer override.
    pub container_logger: Option<PathBuf>,
    /// Bytes of log kept per container (0: uncapped).
    pub log_max_bytes: u64,
    /// Image GC (containerd runtime; `None`: off).
    pub image_gc: Option<ImageGcSettings>,
}

impl AgentSettings {
    /// Merges flags/env over the file over the defaults and validates.
    pub fn resolve(flags: AgentFlags) -> Result<Self, ConfigError> {
        let file: AgentFile = match &flags.config {
            Some(p) => config::load_file(p)?,
            None => AgentFile::default(),
        };
        let data_dir =
            config::pick_opt(flags.data_dir, file.data_dir).ok_or(ConfigError::Missing {
                field: "data_dir",
                flag: "data-dir",
                env: "CLOUDLESS_DATA_DIR",
            })?;
        let data_dir = std::path::absolute(&data_dir).map_err(|e| {
            ConfigError::invalid("data_dir", format!("{}: {e}", data_dir.display()))
        })?;
        let name = config::pick(flags.name, file.name, common::default_node_name());
        common::node_name(&name).map_err(|e| ConfigError::invalid("name", e))?;
        let coordinators = if flags.coordinators.is_empty() {
            file.coordinators.unwrap_or_default()
        } else {
            flags
                .coordinators
                .iter()
                .flat_map(|c| c.split(','))
                .map(|c| c.trim().to_owned())
                .filter(|c| !c.is_empty())
                .collect()
        };
        for c in &coordinators {
            if !c.contains(':') {
                return Err(ConfigError::invalid(
                    "coordinators",
                    format!("{c:?} is not host:port"),
                ));
            }
        }
        let labels = if flags.labels.is_empty() {
            file.labels.unwrap_or_default()
        } else {
            let mut m = BTreeMap::new();
            for l in &flags.labels {
                let (k, v) = l.split_once('=').ok_or_else(|| {
                    ConfigError::invalid("labels", format!("{l:?} is not key=value"))
                })?;
                if k.is_empty() {
                    return Err(ConfigError::invalid(
                        "labels",
                        format!("{l:?} has an empty key"),
                    ));
                }
                m.insert(k.to_owned(), v.to_owned());
            }
            m
        };
        let containerd_socket = config::pick_opt(flags.containerd_socket, file.containerd_socket);
        let runtime = match config::pick_opt(flags.runtime, file.runtime) {
            Some(r) => r,
            None if containerd_socket.is_some() => RuntimeKind::Containerd,
            None => {
                return Err(ConfigError::invalid(
                    "runtime",
                    "choose one: give containerd_socket (--containerd-socket) or runtime: process (--runtime process)",
                ));
            }
        };
        if runtime == RuntimeKind::Containerd && containerd_socket.is_none() {
            return Err(ConfigError::Missing {
                field: "containerd_socket",
                flag: "containerd-socket",
                env: "CLOUDLESS_CONTAINERD_SOCKET",
            });
        }
        let subnet = config::pick_opt(flags.subnet, file.subnet);
        if let Some(s) = &subnet {
            valid_cidr(s).map_err(|e| ConfigError::invalid("subnet", e))?;
        }
        let images = file
            .images
            .unwrap_or_default()
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                std::path::absolute(&p).map_err(|e| {
                    ConfigError::invalid("images", format!("images[{i}] {}: {e}", p.display()))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !images.is_empty() && runtime != RuntimeKind::Containerd {
            return Err(ConfigError::invalid(
                "images",
                "images are imported into containerd; they need runtime: containerd \
                 (the process runtime runs process:///path images, nothing to import)",
            ));
        }
        let cgroup_parent = match file.cgroup_parent {
            None => format!("cloudless-agent-{name}"),
            Some(p) => {
                let rel = p.trim_start_matches('/');
                let clean = !rel.is_empty()
                    && rel
                        .split('/')
                        .all(|seg| !seg.is_empty() && seg != "." && seg != "..")
                    && !rel.chars().any(char::is_control);
                if !clean {
                    return Err(ConfigError::invalid(
                        "cgroup_parent",
                        format!("{p:?} is not a cgroup path like cloudless/agents"),
                    ));
                }
                rel.to_owned()
            }
        };
        let log_max_bytes = config::pick(
            flags.log_max_bytes,
            file.log_max_bytes,
            DEFAULT_LOG_MAX_BYTES,
        );
        if log_max_bytes != 0 && log_max_bytes < MIN_LOG_MAX_BYTES {
            return Err(ConfigError::invalid(
                "log_max_bytes",
                format!(
                    "{log_max_bytes} is below the minimum of {MIN_LOG_MAX_BYTES} bytes \
                     (0 keeps logs uncapped)"
                ),
            ));
        }
        let image_gc = match (runtime, file.image_gc) {
            (RuntimeKind::Containerd, gc) => gc.unwrap_or_default().resolve()?,
            (RuntimeKind::Process, Some(gc)) if gc.enabled != Some(false) => {
                return Err(ConfigError::invalid(
                    "image_gc",
                    "image garbage collection needs runtime: containerd",
                ));
            }
            (RuntimeKind::Process, _) => None,
        };
        let listen_s = config::pick(flags.listen, file.listen, "0.0.0.0:0".into());
        let listen = listen_s.parse().map_err(|e| {
            ConfigError::invalid("listen", format!("{listen_s:?} is not ip:port: {e}"))
        })?;
        Ok(Self {
            data_dir,
            name,
            coordinators,
            enroll: config::pick_opt(flags.enroll, file.enroll),
            region: config::pick(flags.region, file.region, String::new()),
            zone: config::pick(flags.zone, file.zone, String::new()),
            labels,
            runtime,
            containerd_socket,
            namespace: config::pick(flags.namespace, file.namespace, DEFAULT_NAMESPACE.into()),
            subnet,
            bridge: config::pick(flags.bridge, file.bridge, DEFAULT_BRIDGE.into()),
            listen,
            process_shim: config::pick_opt(flags.process_shim, file.process_shim),
            images,
            cgroup_parent,
            container_logger: config::pick_opt(flags.container_logger, file.container_logger),
            log_max_bytes,
            image_gc,
        })
    }
}

fn valid_cidr(s: &str) -> Result<(), String> {
    let (ip, len) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} is not a CIDR like 10.88.0.0/24"))?;
    let ip: std::net::Ipv4Addr = ip
        .parse()
        .map_err(|_| format!("{s:?}: {ip:?} is not an IPv4 address"))?;
    let len: u8 = len
        .parse()
        .map_err(|_| format!("{s:?}: {len:?} is not a prefix length"))?;
    if !(8..=30).contains(&len) {
        return Err(format!("{s:?}: prefix length must be 8..=30"));
    }
    let mask = u32::MAX << (32 - u32::from(len));
    if u32::from(ip) & !mask != 0 {
        return Err(format!("{s:?}: host bits are set"));
    }
    Ok(())
}

/// One known coordinator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KnownCoordinator {
    /// Its node id (from its certificate).
    pub node: u64,
    /// Its control address.
    pub addr: String,
}

fn load_known(dir: &Path) -> Result<Vec<KnownCoordinator>> {
    let path = dir.join(COORDINATORS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(anyhow!("{}: {e}", path.display())),
    }
}

fn save_known(dir: &Path, known: &[KnownCoordinator]) -> Result<()> {
    let path = dir.join(COORDINATORS_FILE);
    write_private(&path, &serde_json::to_vec_pretty(known)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Learns the node id behind each address (dialing it); unreachable ones keep their stored id.
async fn discover(
    transport: &dyn Transport,
    addrs: &[String],
    known: &mut Vec<KnownCoordinator>,
) -> Vec<String> {
    let mut failures = Vec::new();
    for a in addrs {
        match tokio::time::timeout(Duration::from_secs(3), transport.connect(a)).await {
            Ok(Ok(id)) if id.role == Role::Coordinator => {
                known.retain(|k| k.addr != *a && k.node != id.node.get());
                known.push(KnownCoordinator {
                    node: id.node.get(),
                    addr: a.clone(),
                });
            }
            Ok(Ok(id)) => failures.push(format!("{a} is {id}, not a coordinator")),
            Ok(Err(e)) => failures.push(format!("{a}: {e}")),
            Err(_) => failures.push(format!("{a}: no answer in 3 s")),
        }
    }
    known.sort_by_key(|k| k.node);
    failures
}

/// `join`: enroll with the token (or reuse the stored identity) and learn the coordinators.
pub async fn join_cmd(s: &AgentSettings, token: Option<String>) -> Result<NodeCredentials> {
    create_private_dir(&s.data_dir)?;
    let first = s
        .coordinators
        .first()
        .ok_or_else(|| anyhow!("coordinators: at least one --coordinator is required to join"))?;
    let coordinator = match &s.enroll {
        Some(e) => common::resolve("enroll", e)?,
        None => common::port_offset("enroll", common::resolve("coordinators", first)?, 2)?,
    };
    let joined = join(JoinParams {
        data_dir: s.data_dir.clone(),
        token,
        coordinator,
        name: s.name.clone(),
        report: common::node_report(&s.data_dir, &s.region, &s.zone, &s.labels),
        timeout: Duration::from_secs(10),
    })
    .await?;
    let t = QuicTransport::bind(s.listen, &joined.credentials, QuicConfig::default())
        .map_err(|e| anyhow!("listen {}: {e}", s.listen))?;
    let mut known = load_known(&s.data_dir)?;
    let failures = discover(&t, &s.coordinators, &mut known).await;
    t.close();
    if known.is_empty() {
        bail!(
            "coordinators: none reachable over mTLS ({})",
            failures.join("; ")
        );
    }
    for f in failures {
        tracing::warn!("{f}");
    }
    save_known(&s.data_dir, &known)?;
    Ok(joined.credentials)
}

/// A running agent.
pub struct RunningAgent {
    fabric: Option<FabricHandle>,
    transport: Arc<QuicTransport>,
    _renewal: Option<RenewalDriver>,
    image_gc: Option<tokio::task::JoinHandle<()>>,
    cgroup_parent: String,
    namespace: String,
    /// The agent's identity.
    pub identity: cloudless_core::transport::PeerIdentity,
}

impl RunningAgent {
    /// Stops the agent (its containers keep running; the next start adopts them).
    pub async fn shutdown(mut self) {
        if let Some(gc) = self.image_gc.take() {
            gc.abort();
        }
        if let Some(f) = self.fabric.take() {
            f.shutdown().await;
        }
        self.transport.close();
        let removed = cgroups::remove_owned(
            Path::new(cgroups::CGROUP_ROOT),
            &self.cgroup_parent,
            &self.namespace,
        );
        if removed > 0 {
            tracing::info!(
                parent = %self.cgroup_parent,
                removed,
                "removed the agent's empty cgroups"
            );
        }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if let Some(gc) = self.image_gc.take() {
            gc.abort();
        }
    }
}

/// Finds a helper binary: the configured path, else one of `names` next to the agent's
/// executable, else `fallback`.
fn helper_path(given: Option<&Path>, key: &str, names: &[&str], fallback: &str) -> Result<PathBuf> {
    if let Some(p) = given {
        return std::path::absolute(p).map_err(|e| anyhow!("{key}: {e}"));
    }
    let exe = std::env::current_exe().context("locating the agent executable")?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("the agent executable has no directory"))?;
    for name in names {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Ok(PathBuf::from(fallback))
}

/// The log cap of containerd containers: `None` when `log_max_bytes` is 0; an error naming
/// `container_logger` when the logger binary is nowhere.
fn log_limit(s: &AgentSettings) -> Result<Option<LogLimit>> {
    if s.log_max_bytes == 0 {
        return Ok(None);
    }
    let logger = helper_path(
        s.container_logger.as_deref(),
        "container_logger",
        &[LOGGER_NAME, "cloudless-logger"],
        "/usr/libexec/cloudless/cloudless-logger",
    )?;
    if !logger.is_file() {
        bail!(
            "container_logger: {} does not exist (install {LOGGER_NAME} next to the agent, \
             give --container-logger, or set log_max_bytes: 0 for uncapped logs)",
            logger.display()
        );
    }
    Ok(Some(LogLimit {
        logger,
        max_bytes: s.log_max_bytes,
    }))
}

/// Starts the image collector of `rt`, keeping what `keep` names; `None` when off. A given
/// path that cannot be measured is an error; the default falls back to the data dir.
fn start_image_gc<K>(
    s: &AgentSettings,
    rt: ContainerdRuntime,
    keep: K,
) -> Result<Option<tokio::task::JoinHandle<()>>>
where
    K: Fn() -> BTreeSet<String> + Send + Sync + 'static,
{
    use cloudless_runtime::containerd::FreeSpace;
    let Some(gc) = &s.image_gc else {
        return Ok(None);
    };
    let mut space = Statvfs(gc.path.clone());
    if let Err(e) = space.usage() {
        if gc.path_given {
            bail!("image_gc.path: measuring {}: {e}", gc.path.display());
        }
        tracing::info!(
            default = %gc.path.display(),
            data_dir = %s.data_dir.display(),
            "image GC: {e}; measuring the agent's data dir instead"
        );
        space = Statvfs(s.data_dir.clone());
        space
            .usage()
            .map_err(|e| anyhow!("image_gc.path: measuring {}: {e}", s.data_dir.display()))?;
    }
    tracing::info!(
        path = %space.0.display(),
        low_percent = gc.policy.low.percent,
        low_bytes = gc.policy.low.bytes,
        high_percent = gc.policy.high.percent,
        high_bytes = gc.policy.high.bytes,
        period_s = gc.period.as_secs(),
        "image GC on"
    );
    let collector =
        ImageGc::new(rt, gc.policy, Arc::new(space)).map_err(|e| anyhow!("image_gc: {e}"))?;
    Ok(Some(collector.spawn(gc.period, keep)))
}

fn shim_path(s: &AgentSettings) -> Result<PathBuf> {
    helper_path(
        s.process_shim.as_deref(),
        "process_shim",
        &[SHIM_NAME, "cloudless-process-shim"],
        "/usr/libexec/cloudless/cloudless-process-shim",
    )
}

async fn process_runtime(s: &AgentSettings) -> Result<ProcessRuntime> {
    let mut cfg = ProcessConfig::new(s.data_dir.join("process"), shim_path(s)?);
    cfg.cgroup_parent = s.cgroup_parent.clone();
    cfg.validate().map_err(|e| anyhow!("{e}"))?;
    ProcessRuntime::open(cfg)
        .await
        .map_err(|e| anyhow!("process runtime: {e}"))
}

/// The agent's runtime, and the containerd one on its own (for the image collector).
async fn runtime(s: &AgentSettings) -> Result<(Arc<dyn Runtime>, Option<ContainerdRuntime>)> {
    match s.runtime {
        RuntimeKind::Process => Ok((Arc::new(process_runtime(s).await?), None)),
        RuntimeKind::Containerd => {
            let cfg = containerd_config(s)?;
            let socket = cfg.socket.clone();
            let c = ContainerdRuntime::connect(cfg).await.with_context(|| {
                format!("containerd_socket: connecting to {}", socket.display())
            })?;
            import_images(&c, &s.images, &s.namespace).await?;
            match process_runtime(s).await {
                Ok(p) => Ok((
                    Arc::new(ChainRuntime::new(vec![Arc::new(c.clone()), Arc::new(p)])),
                    Some(c),
                )),
                Err(e) => {
                    tracing::info!("process runtime fallback unavailable: {e:#}");
                    Ok((Arc::new(c.clone()), Some(c)))
                }
            }
        }
    }
}

/// The containerd runtime's settings: socket, namespace, bridge, cgroup parent, registries
/// (`<data_dir>/registries.yaml`, refused when group/world-accessible) and the log cap.
fn containerd_config(s: &AgentSettings) -> Result<ContainerdConfig> {
    let socket = s
        .containerd_socket
        .clone()
        .ok_or_else(|| anyhow!("containerd_socket: required"))?;
    let mut cfg = ContainerdConfig::new(&socket, &s.namespace, s.data_dir.join("containerd"));
    cfg.cgroup_parent = format!("/{}", s.cgroup_parent);
    if let Some(subnet) = &s.subnet {
        cfg.bridge = Some(BridgeNetwork::new(&s.bridge, subnet));
    }
    cfg.registries = load_agent_registries(&s.data_dir).map_err(|e| anyhow!("registries: {e}"))?;
    if !cfg.registries.is_empty() {
        tracing::info!(
            registries = ?cfg.registries.keys().collect::<Vec<_>>(),
            "registry settings loaded"
        );
    }
    cfg.log_limit = log_limit(s)?;
    Ok(cfg)
}

/// Imports every archive of `images` into the runtime's namespace; errors name the entry.
async fn import_images(rt: &ContainerdRuntime, images: &[PathBuf], namespace: &str) -> Result<()> {
    for (i, archive) in images.iter().enumerate() {
        if !archive.is_file() {
            bail!(
                "images[{i}]: {} is not a file (an OCI image layout tarball)",
                archive.display()
            );
        }
        let started = std::time::Instant::now();
        let imported = rt
            .import_image(archive)
            .await
            .map_err(|e| anyhow!("images[{i}]: importing {}: {e}", archive.display()))?;
        if imported.is_empty() {
            bail!(
                "images[{i}]: {} names no image (its index.json needs an \
                 io.containerd.image.name or org.opencontainers.image.ref.name annotation)",
                archive.display()
            );
        }
        for image in imported {
            tracing::info!(
                archive = %archive.display(),
                image = %image.reference,
                digest = %image.digest,
                namespace,
                ms = started.elapsed().as_millis() as u64,
                "image imported"
            );
        }
    }
    Ok(())
}

/// `run`: start the agent (enrolling first if it has not joined and a token is given).
pub async fn run(s: &AgentSettings, token: Option<String>) -> Result<RunningAgent> {
    let has_identity = s.data_dir.join(IDENTITY_DIR).join("node.pem").exists();
    let creds = if has_identity {
        let c = NodeCredentials::load(&s.data_dir.join(IDENTITY_DIR))
            .map_err(|e| anyhow!("identity: {e}"))?;
        if c.identity().role != Role::Agent {
            bail!("identity: {} is not an agent", c.identity());
        }
        c
    } else if token.is_some() {
        join_cmd(s, token).await?
    } else {
        bail!(
            "token: {} holds no identity; run `cloudless-agent join --token ...` first",
            s.data_dir.display()
        );
    };
    let transport = Arc::new(
        QuicTransport::bind(s.listen, &creds, QuicConfig::default())
            .map_err(|e| anyhow!("listen {}: {e}", s.listen))?,
    );
    let mut known = load_known(&s.data_dir)?;
    let failures = discover(transport.as_ref(), &s.coordinators, &mut known).await;
    for f in &failures {
        tracing::warn!("coordinator not reachable now: {f}");
    }
    if known.is_empty() {
        transport.close();
        bail!(
            "coordinators: no coordinator known (give --coordinator; {})",
            failures.join("; ")
        );
    }
    save_known(&s.data_dir, &known)?;
    let (rt, containerd) = match runtime(s).await {
        Ok(r) => r,
        Err(e) => {
            transport.close();
            return Err(e);
        }
    };
    let mut config = AgentConfig::new(s.data_dir.join("state"));
    config.region = s.region.clone();
    config.zone = s.zone.clone();
    config.labels = s.labels.clone();
    let mut builder = Fabric::builder()
        .agent(config)
        .runtime_shared(rt)
        .transport_shared(transport.clone());
    for k in &known {
        builder = builder.coordinator_addr(NodeId(k.node), k.addr.clone());
    }
    let fabric = match builder.build() {
        Ok(f) => f.start().await,
        Err(e) => Err(e),
    };
    let fabric = match fabric {
        Ok(f) => f,
        Err(e) => {
            transport.close();
            return Err(e.into());
        }
    };
    let renewal = fabric.rpc_client().and_then(|client| {
        known.first().map(|k| {
            RenewalDriver::spawn(
                Arc::clone(&transport),
                client,
                creds.clone(),
                Arc::new(SystemClock),
                RenewalConfig {
                    coordinator: NodeId(k.node),
                    dir: Some(s.data_dir.join(IDENTITY_DIR)),
                    seed: creds.identity().node.get(),
                    call_deadline: Duration::from_secs(10),
                    min_retry: Duration::from_secs(5),
                },
            )
        })
    });
    let image_gc = match (containerd, fabric.agent().map(|a| a.watch())) {
        (Some(c), Some(assignments)) => {
            match start_image_gc(s, c, move || assignments.borrow().images.clone()) {
                Ok(gc) => gc,
                Err(e) => {
                    fabric.shutdown().await;
                    transport.close();
                    return Err(e);
                }
            }
        }
        _ => None,
    };
    Ok(RunningAgent {
        fabric: Some(fabric),
        identity: creds.identity().clone(),
        transport,
        _renewal: renewal,
        image_gc,
        cgroup_parent: s.cgroup_parent.clone(),
        namespace: s.namespace.clone(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cidrs_are_checked() {
        assert!(valid_cidr("10.88.0.0/24").is_ok());
        assert!(
            valid_cidr("10.88.0.1/24")
                .unwrap_err()
                .contains("host bits")
        );
        assert!(valid_cidr("10.88.0.0").is_err());
        assert!(valid_cidr("10.88.0.0/31").is_err());
    }

    #[test]
    fn a_runtime_must_be_chosen_and_flags_win_over_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.yaml");
        std::fs::write(
            &file,
            "zone: file-zone\nregion: file-region\nruntime: process\n",
        )
        .unwrap();
        let s = AgentSettings::resolve(AgentFlags {
            config: Some(file.clone()),
            data_dir: Some(dir.path().join("d")),
            zone: Some("flag-zone".into()),
            ..AgentFlags::default()
        })
        .unwrap();
        assert_eq!(s.zone, "flag-zone");
        assert_eq!(s.region, "file-region");
        assert_eq!(s.runtime, RuntimeKind::Process);
        let e = AgentSettings::resolve(AgentFlags {
            data_dir: Some(dir.path().join("d")),
            ..AgentFlags::default()
        })
        .unwrap_err();
        assert!(e.to_string().starts_with("runtime:"), "{e}");
    }

    #[test]
    fn images_are_absolute_and_need_containerd() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.yaml");
        std::fs::write(
            &file,
            "containerd_socket: /run/c.sock\nimages: [/srv/busybox-oci.tar, rel/app.tar]\n",
        )
        .unwrap();
        let flags = AgentFlags {
            config: Some(file.clone()),
            data_dir: Some(dir.path().join("d")),
            ..AgentFlags::default()
        };
        let s = AgentSettings::resolve(flags.clone()).unwrap();
        assert_eq!(s.runtime, RuntimeKind::Containerd);
        assert_eq!(s.images[0], PathBuf::from("/srv/busybox-oci.tar"));
        assert!(s.images[1].is_absolute() && s.images[1].ends_with("rel/app.tar"));
        std::fs::write(&file, "runtime: process\nimages: [/srv/busybox-oci.tar]\n").unwrap();
        let e = AgentSettings::resolve(flags.clone()).unwrap_err();
        assert!(e.to_string().starts_with("images:"), "{e}");
        std::fs::write(&file, "runtime: process\nimage: [/srv/busybox-oci.tar]\n").unwrap();
        let e = AgentSettings::resolve(flags.clone()).unwrap_err();
        assert!(e.to_string().contains("image"), "{e}");
        std::fs::write(&file, "runtime: process\ncgroup_parent: /demo/a-1\n").unwrap();
        assert_eq!(
            AgentSettings::resolve(flags.clone()).unwrap().cgroup_parent,
            "demo/a-1"
        );
        std::fs::write(&file, "runtime: process\ncgroup_parent: demo/../x\n").unwrap();
        let e = AgentSettings::resolve(flags).unwrap_err();
        assert!(e.to_string().starts_with("cgroup_parent:"), "{e}");
    }

    #[test]
    fn containerd_settings_take_private_registries_and_the_log_cap() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("d");
        std::fs::create_dir_all(&data).unwrap();
        let logger = dir.path().join("logger");
        std::fs::write(&logger, "").unwrap();
        let flags = AgentFlags {
            data_dir: Some(data.clone()),
            containerd_socket: Some("/run/c.sock".into()),
            container_logger: Some(logger.clone()),
            log_max_bytes: Some(1 << 20),
            ..AgentFlags::default()
        };
        let s = AgentSettings::resolve(flags.clone()).unwrap();
        // No registries file: every registry over HTTPS, anonymously.
        let cfg = containerd_config(&s).unwrap();
        assert!(cfg.registries.is_empty());
        assert_eq!(
            cfg.log_limit,
            Some(LogLimit {
                logger: logger.clone(),
                max_bytes: 1 << 20
            })
        );
        let regs = data.join("registries.yaml");
        std::fs::write(
            &regs,
            "registries:\n  registry.example:\n    username: robot\n    password: pw\n  \
             127.0.0.1:5000:\n    insecure_http: true\n",
        )
        .unwrap();
        std::fs::set_permissions(&regs, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = containerd_config(&s).unwrap_err().to_string();
        assert!(e.starts_with("registries:"), "{e}");
        std::fs::set_permissions(&regs, std::fs::Permissions::from_mode(0o600)).unwrap();
        let cfg = containerd_config(&s).unwrap();
        assert!(cfg.registries["127.0.0.1:5000"].insecure_http);
        assert!(cfg.registries["registry.example"].credentials.is_some());
        // A missing logger is named; log_max_bytes 0 needs none.
        let missing = AgentSettings::resolve(AgentFlags {
            container_logger: Some(dir.path().join("nope")),
            ..flags.clone()
        })
        .unwrap();
        let e = containerd_config(&missing).unwrap_err().to_string();
        assert!(e.starts_with("container_logger:"), "{e}");
        let uncapped = AgentSettings::resolve(AgentFlags {
            container_logger: Some(dir.path().join("nope")),
            log_max_bytes: Some(0),
            ..flags
        })
        .unwrap();
        assert_eq!(containerd_config(&uncapped).unwrap().log_limit, None);
    }

    #[test]
    fn log_cap_and_image_gc_are_validated_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.yaml");
        let flags = AgentFlags {
            config: Some(file.clone()),
            data_dir: Some(dir.path().join("d")),
            ..AgentFlags::default()
        };
        let resolve = |text: &str| {
            std::fs::write(&file, text).unwrap();
            AgentSettings::resolve(flags.clone())
        };
        let s = resolve("containerd_socket: /run/c.sock\n").unwrap();
        assert_eq!(s.log_max_bytes, DEFAULT_LOG_MAX_BYTES);
        let gc = s.image_gc.unwrap();
        assert_eq!(gc.policy, DiskGcPolicy::default());
        assert_eq!(gc.path, PathBuf::from(DEFAULT_CONTAINERD_ROOT));
        assert!(!gc.path_given);
        assert_eq!(gc.period, Duration::from_secs(DEFAULT_IMAGE_GC_PERIOD_SECS));
        let s = resolve(
            "containerd_socket: /run/c.sock\nlog_max_bytes: 65536\nimage_gc:\n  path: /srv/ctrd\n  \
             low_percent: 5\n  low_bytes: 100\n  high_percent: 7\n  high_bytes: 200\n  \
             period_secs: 30\n",
        )
        .unwrap();
        assert_eq!(s.log_max_bytes, 65536);
        let gc = s.image_gc.unwrap();
        assert_eq!(
            (gc.policy.low, gc.policy.high),
            (
                Watermark {
                    percent: 5,
                    bytes: 100
                },
                Watermark {
                    percent: 7,
                    bytes: 200
                }
            )
        );
        assert!(gc.path_given && gc.path == Path::new("/srv/ctrd"));
        assert_eq!(gc.period, Duration::from_secs(30));
        let off = resolve(
            "containerd_socket: /run/c.sock\nlog_max_bytes: 0\nimage_gc: {enabled: false}\n",
        )
        .unwrap();
        assert_eq!((off.log_max_bytes, off.image_gc), (0, None));
        for (text, key) in [
            ("log_max_bytes: 100\n", "log_max_bytes:"),
            ("image_gc: {low_percent: 101}\n", "image_gc.low_percent:"),
            (
                "image_gc: {low_percent: 20, high_percent: 10}\n",
                "image_gc.high_percent:",
            ),
            (
                "image_gc: {low_bytes: 20, high_bytes: 10}\n",
                "image_gc.high_bytes:",
            ),
            ("image_gc: {period_secs: 0}\n", "image_gc.period_secs:"),
            ("image_gc: {low_watermark: 3}\n", "low_watermark"),
        ] {
            let e = resolve(&format!("containerd_socket: /run/c.sock\n{text}")).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
        let e = resolve("runtime: process\nimage_gc: {low_percent: 5}\n").unwrap_err();
        assert!(e.to_string().starts_with("image_gc:"), "{e}");
        assert!(
            resolve("runtime: process\n").unwrap().image_gc.is_none(),
            "no image GC without containerd"
        );
    }
}

/// Removal of the agent's empty cgroups when it stops. Only empty directories go: the kernel
/// refuses `rmdir` of a cgroup with processes or children, so running workloads keep theirs.
/// Only subtrees the agent owns are walked ([`owned_subtrees`]), so a shared parent such as
/// `system.slice` keeps other services' empty cgroups.
pub mod cgroups {
    use std::path::Path;

    /// Where cgroup hierarchies are mounted.
    pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

    /// Prefix of the last segment of a cgroup parent the agent owns whole (the default parent
    /// is `cloudless-agent-<name>`).
    pub const OWNED_PREFIX: &str = "cloudless-agent-";

    /// The cgroups (relative) whose empty descendants the agent removes when it stops: the whole
    /// `parent` when its last segment starts with [`OWNED_PREFIX`] (a parent made for the
    /// agent: containerd's `<parent>/<namespace>/<id>` and the process runtime's `<parent>/<id>`
    /// are below it); otherwise (a shared parent such as `system.slice`) only
    /// `<parent>/<namespace>`, which holds nothing but the agent's containerd containers. The
    /// process runtime removes its `<parent>/<id>` cgroups itself when it removes a container.
    pub fn owned_subtrees(parent: &str, namespace: &str) -> Vec<String> {
        let rel = parent.trim_matches('/');
        let owned = rel
            .rsplit('/')
            .next()
            .is_some_and(|last| last.starts_with(OWNED_PREFIX) && last.len() > OWNED_PREFIX.len());
        if owned {
            vec![rel.to_owned()]
        } else if namespace.is_empty() || namespace.contains('/') {
            Vec::new()
        } else {
            vec![format!("{rel}/{namespace}")]
        }
    }

    /// Removes the empty cgroups of [`owned_subtrees`] of `parent` and `namespace` in every
    /// hierarchy under `root`; returns how many directories were removed.
    pub fn remove_owned(root: &Path, parent: &str, namespace: &str) -> usize {
        owned_subtrees(parent, namespace)
            .iter()
            .map(|sub| remove_empty(root, sub))
            .sum()
    }

    /// Deepest nesting walked below the parent (`<parent>/<namespace>/<id>` is two levels).
    const MAX_DEPTH: usize = 8;

    /// Removes the empty cgroups at and below `parent` (relative) in every hierarchy under
    /// `root` (cgroup v2: `root` itself; v1: each controller directory, symlinked aliases
    /// skipped). Returns how many directories were removed; errors (busy, missing) are skipped.
    pub fn remove_empty(root: &Path, parent: &str) -> usize {
        let rel = parent.trim_start_matches('/');
        if rel.is_empty()
            || rel
                .split('/')
                .any(|s| s.is_empty() || s == "." || s == "..")
        {
            return 0;
        }
        let hierarchies: Vec<std::path::PathBuf> = if root.join("cgroup.controllers").is_file() {
            vec![root.to_owned()]
        } else {
            match std::fs::read_dir(root) {
                Ok(entries) => entries
                    .filter_map(Result::ok)
                    .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                    .map(|e| e.path())
                    .collect(),
                Err(_) => return 0,
            }
        };
        hierarchies
            .iter()
            .map(|h| remove_tree(&h.join(rel), 0))
            .sum()
    }

    fn remove_tree(dir: &Path, depth: usize) -> usize {
        let Ok(meta) = std::fs::symlink_metadata(dir) else {
            return 0;
        };
        if !meta.is_dir() || depth > MAX_DEPTH {
            return 0;
        }
        let mut removed = 0;
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.filter_map(Result::ok) {
                if e.file_type().is_ok_and(|t| t.is_dir()) {
                    removed += remove_tree(&e.path(), depth + 1);
                }
            }
        }
        if std::fs::remove_dir(dir).is_ok() {
            removed += 1;
        }
        removed
    }

    #[cfg(test)]
    mod tests {
        #![allow(clippy::unwrap_used)]
        use super::*;

        #[test]
        fn only_empty_directories_under_the_parent_go() {
            // A fake v1 layout on an ordinary filesystem: `rmdir` refuses non-empty
            // directories just as cgroupfs refuses busy cgroups.
            let root = tempfile::tempdir().unwrap();
            for h in ["memory", "pids"] {
                std::fs::create_dir_all(root.path().join(h).join("agent-a/ns/c1")).unwrap();
                std::fs::create_dir_all(root.path().join(h).join("other")).unwrap();
            }
            // A "running" container: its directory is not empty.
            std::fs::write(root.path().join("pids/agent-a/ns/c1/tasks"), "1\n").unwrap();
            std::os::unix::fs::symlink(
                root.path().join("memory"),
                root.path().join("memory-alias"),
            )
            .unwrap();
            assert_eq!(remove_empty(root.path(), "../x"), 0);
            let removed = remove_empty(root.path(), "/agent-a");
            assert_eq!(removed, 3, "memory: c1, ns, agent-a");
            assert!(!root.path().join("memory/agent-a").exists());
            assert!(root.path().join("pids/agent-a/ns/c1/tasks").exists());
            assert!(root.path().join("memory/other").exists());
            assert!(root.path().join("pids/other").exists());
        }

        #[test]
        fn a_shared_parent_keeps_foreign_empty_cgroups() {
            assert_eq!(
                owned_subtrees("/cloudless-agent-edge-1", "cloudless"),
                ["cloudless-agent-edge-1"]
            );
            assert_eq!(
                owned_subtrees("/system.slice", "cloudless"),
                ["system.slice/cloudless"]
            );
            assert_eq!(
                owned_subtrees("cloudless-agent-", "ns"),
                ["cloudless-agent-/ns"],
                "the bare prefix is not an agent's parent"
            );
            assert!(owned_subtrees("system.slice", "../x").is_empty());

            let root = tempfile::tempdir().unwrap();
            // cgroup v2 layout: one hierarchy at the root.
            std::fs::write(root.path().join("cgroup.controllers"), "memory pids\n").unwrap();
            let mk = |rel: &str| std::fs::create_dir_all(root.path().join(rel)).unwrap();
            mk("system.slice/cloudless/ended");
            mk("system.slice/cloudless/running");
            std::fs::write(
                root.path()
                    .join("system.slice/cloudless/running/cgroup.procs"),
                "7",
            )
            .unwrap();
            // Another service's empty cgroup next to the agent's namespace.
            mk("system.slice/foreign.service");
            assert_eq!(remove_owned(root.path(), "system.slice", "cloudless"), 1);
            assert!(!root.path().join("system.slice/cloudless/ended").exists());
            assert!(root.path().join("system.slice/cloudless/running").exists());
            assert!(root.path().join("system.slice/foreign.service").is_dir());
            // Once the last container is gone the namespace goes too, the shared parent stays.
            std::fs::remove_dir_all(root.path().join("system.slice/cloudless/running")).unwrap();
            assert_eq!(remove_owned(root.path(), "system.slice", "cloudless"), 1);
            assert!(!root.path().join("system.slice/cloudless").exists());
            assert!(root.path().join("system.slice/foreign.service").is_dir());

            // An agent-made parent goes whole, the process runtime's children included.
            mk("cloudless-agent-edge-1/proc-1");
            mk("cloudless-agent-edge-1/cloudless/c1");
            assert_eq!(
                remove_owned(root.path(), "cloudless-agent-edge-1", "cloudless"),
                4
            );
            assert!(!root.path().join("cloudless-agent-edge-1").exists());
            assert!(root.path().join("system.slice/foreign.service").is_dir());
        }
    }
}
