//! The coordinator's settings: the config file ([`CoordinatorFile`]), flags and environment
//! ([`CoordinatorFlags`]), and their merge into [`CoordinatorSettings`] (the default port
//! layout derives the raft, enrollment and API ports from `listen`).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Result, anyhow, bail};
use serde::Deserialize;

use super::{ADMIN_FILE, DEFAULT_PORT};
use crate::common;
use crate::config::{self, ConfigError};

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
        let file: CoordinatorFile = common::load_config(flags.config.as_deref())?;
        let data_dir = common::data_dir(flags.data_dir, file.data_dir)?;
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
        let name = common::name_setting(flags.name, file.name)?;
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

    pub(super) fn passphrase(&self) -> Result<Option<zeroize::Zeroizing<String>>> {
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
