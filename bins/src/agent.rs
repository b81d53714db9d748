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

use std::collections::BTreeMap;
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
use cloudless_runtime::containerd::BridgeNetwork;
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
    /// The agent's identity.
    pub identity: cloudless_core::transport::PeerIdentity,
}

impl RunningAgent {
    /// Stops the agent (its containers keep running; the next start adopts them).
    pub async fn shutdown(mut self) {
        if let Some(f) = self.fabric.take() {
            f.shutdown().await;
        }
        self.transport.close();
    }
}

fn shim_path(s: &AgentSettings) -> Result<PathBuf> {
    if let Some(p) = &s.process_shim {
        return std::path::absolute(p).map_err(|e| anyhow!("process_shim: {e}"));
    }
    let exe = std::env::current_exe().context("locating the agent executable")?;
    let dir = exe
        .parent()
        .ok_or_else(|| anyhow!("the agent executable has no directory"))?;
    for name in [SHIM_NAME, "cloudless-process-shim"] {
        let p = dir.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    Ok(PathBuf::from(
        "/usr/libexec/cloudless/cloudless-process-shim",
    ))
}

async fn process_runtime(s: &AgentSettings) -> Result<ProcessRuntime> {
    let mut cfg = ProcessConfig::new(s.data_dir.join("process"), shim_path(s)?);
    cfg.cgroup_parent = s.cgroup_parent.clone();
    cfg.validate().map_err(|e| anyhow!("{e}"))?;
    ProcessRuntime::open(cfg)
        .await
        .map_err(|e| anyhow!("process runtime: {e}"))
}

async fn runtime(s: &AgentSettings) -> Result<Arc<dyn Runtime>> {
    match s.runtime {
        RuntimeKind::Process => Ok(Arc::new(process_runtime(s).await?)),
        RuntimeKind::Containerd => {
            let socket = s
                .containerd_socket
                .clone()
                .ok_or_else(|| anyhow!("containerd_socket: required"))?;
            let mut cfg =
                ContainerdConfig::new(&socket, &s.namespace, s.data_dir.join("containerd"));
            cfg.cgroup_parent = format!("/{}", s.cgroup_parent);
            if let Some(subnet) = &s.subnet {
                cfg.bridge = Some(BridgeNetwork::new(&s.bridge, subnet));
            }
            let c = ContainerdRuntime::connect(cfg).await.with_context(|| {
                format!("containerd_socket: connecting to {}", socket.display())
            })?;
            import_images(&c, &s.images, &s.namespace).await?;
            match process_runtime(s).await {
                Ok(p) => Ok(Arc::new(ChainRuntime::new(vec![Arc::new(c), Arc::new(p)]))),
                Err(e) => {
                    tracing::info!("process runtime fallback unavailable: {e:#}");
                    Ok(Arc::new(c))
                }
            }
        }
    }
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
    let rt = match runtime(s).await {
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
    Ok(RunningAgent {
        fabric: Some(fabric),
        identity: creds.identity().clone(),
        transport,
        _renewal: renewal,
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
}
