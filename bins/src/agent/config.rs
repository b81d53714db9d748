//! The agent's settings: the config file ([`AgentFile`]), flags and environment
//! ([`AgentFlags`]), and their merge and validation into [`AgentSettings`].

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;

use super::image_gc::{ImageGcFile, ImageGcSettings};
use super::{DEFAULT_BRIDGE, DEFAULT_LOG_MAX_BYTES, DEFAULT_NAMESPACE, MIN_LOG_MAX_BYTES};
use crate::common;
use crate::config::{self, ConfigError};

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
        let file: AgentFile = common::load_config(flags.config.as_deref())?;
        let data_dir = common::data_dir(flags.data_dir, file.data_dir)?;
        let data_dir = std::path::absolute(&data_dir).map_err(|e| {
            ConfigError::invalid("data_dir", format!("{}: {e}", data_dir.display()))
        })?;
        let name = common::name_setting(flags.name, file.name)?;
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
