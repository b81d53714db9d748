//! Pieces both daemons use: signals, private directories, the settings every daemon has (config
//! file, data dir, node name), the node report sent at enrollment, names, addresses, and the
//! admin credentials file.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use cloudless::agent::{ProcResourceProbe, ResourceProbe};
use cloudless_core::ids::NodeName;
use cloudless_core::node::{NodeReport, Platform, PowerSource, Reliability};
use cloudless_core::resources::Resources;
use cloudless_net::identity::{NodeCredentials, NodeKey, write_private};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::de::DeserializeOwned;

use crate::config::{self, ConfigError};

/// SIGTERM and SIGINT handlers, installed at start-up so a signal that arrives while the
/// daemon is still starting is not fatal: it is kept and ends the daemon once started.
pub struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl Signals {
    /// Installs the handlers (inside a tokio runtime).
    pub fn install() -> Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("installing the SIGTERM handler")?,
            int: signal(SignalKind::interrupt()).context("installing the SIGINT handler")?,
        })
    }

    /// Waits for SIGTERM or SIGINT; returns the signal's name.
    pub async fn wait(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }
}

/// Creates `dir` (and parents) and sets mode 0700 on it.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("setting mode 0700 on {}", dir.display()))
}

/// True if `dir` does not exist or is an empty directory.
pub fn is_empty_dir(dir: &Path) -> Result<bool> {
    match std::fs::read_dir(dir) {
        Ok(mut entries) => Ok(entries.next().is_none()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
        Err(e) => Err(anyhow!("{}: {e}", dir.display())),
    }
}

/// The config file given with `--config` (every key unset when none is given).
pub fn load_config<T: DeserializeOwned + Default>(path: Option<&Path>) -> Result<T, ConfigError> {
    match path {
        Some(p) => config::load_file(p),
        None => Ok(T::default()),
    }
}

/// The data directory from the flag/env or the file (`data_dir`, required).
pub fn data_dir(flag: Option<PathBuf>, file: Option<PathBuf>) -> Result<PathBuf, ConfigError> {
    config::pick_opt(flag, file).ok_or(ConfigError::Missing {
        field: "data_dir",
        flag: "data-dir",
        env: "CLOUDLESS_DATA_DIR",
    })
}

/// The node name (`name`) from the flag/env, the file, or this host's name; validated.
pub fn name_setting(flag: Option<String>, file: Option<String>) -> Result<String, ConfigError> {
    let name = config::pick(flag, file, default_node_name());
    node_name(&name).map_err(|e| ConfigError::invalid("name", e))?;
    Ok(name)
}

/// This host's name as a DNS-1123 label (lowercase, `-` for anything else), or `node`.
pub fn default_node_name() -> String {
    let raw = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut name: String = raw
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(63);
    let name = name.trim_matches('-').to_owned();
    if name.is_empty() { "node".into() } else { name }
}

/// Validates a node name (field `name`).
pub fn node_name(name: &str) -> Result<NodeName> {
    NodeName::new(name.to_owned()).map_err(|e| anyhow!("name: {e}"))
}

/// Resolves `host:port` to one socket address (field named in errors).
pub fn resolve(field: &str, addr: &str) -> Result<SocketAddr> {
    addr.to_socket_addrs()
        .map_err(|e| anyhow!("{field}: {addr:?} is not a reachable host:port: {e}"))?
        .next()
        .ok_or_else(|| anyhow!("{field}: {addr:?} resolves to no address"))
}

/// `addr` with its port moved by `offset` (the default port layout).
pub fn port_offset(field: &str, addr: SocketAddr, offset: u16) -> Result<SocketAddr> {
    if addr.port() == 0 {
        bail!(
            "{field}: cannot derive it from port 0; give it explicitly or use a fixed listen port"
        );
    }
    let port = addr
        .port()
        .checked_add(offset)
        .ok_or_else(|| anyhow!("{field}: port {} + {offset} is out of range", addr.port()))?;
    Ok(SocketAddr::new(addr.ip(), port))
}

/// The OCI architecture of this build's target.
pub fn oci_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        other => other,
    }
}

/// The report a node sends when it enrolls: platform, region/zone/labels and the host's
/// capacity measured on `data_dir` (zero where it cannot be read; heartbeats refresh it).
pub fn node_report(
    data_dir: &Path,
    region: &str,
    zone: &str,
    labels: &std::collections::BTreeMap<String, String>,
) -> NodeReport {
    let host = ProcResourceProbe.probe(data_dir).unwrap_or_default();
    let r = Resources {
        cpu_millis: host.cpu_millis,
        memory_mib: host.memory_mib,
        storage_gib: host.storage_gib,
        ..Resources::default()
    };
    NodeReport {
        platform: Platform {
            architecture: oci_arch().into(),
            os: std::env::consts::OS.into(),
            variant: None,
        },
        region: region.into(),
        zone: zone.into(),
        labels: labels.clone(),
        capacity: r,
        allocatable: r,
        power: host.power.unwrap_or(PowerSource::Mains),
        reliability: Reliability::default(),
    }
}

/// Writes admin credentials to one file with mode 0600: the private key first, then the
/// certificate and the CA certificate (all PEM). Refuses to overwrite an existing file.
pub fn write_admin_credentials(path: &Path, key: &NodeKey, creds: &NodeCredentials) -> Result<()> {
    refuse_existing_admin_credentials(path)?;
    let tmp = tempfile_in(path)?;
    key.save(&tmp)
        .with_context(|| format!("writing {}", tmp.display()))?;
    let mut text =
        std::fs::read_to_string(&tmp).with_context(|| format!("reading back {}", tmp.display()))?;
    let _ = std::fs::remove_file(&tmp);
    for cert in creds.chain() {
        text.push_str(&pem_cert(cert));
    }
    let text = zeroize::Zeroizing::new(text);
    write_private(path, text.as_bytes()).with_context(|| format!("writing {}", path.display()))
}

/// Fails if the admin credentials file `path` exists (it is never overwritten).
pub fn refuse_existing_admin_credentials(path: &Path) -> Result<()> {
    if std::fs::symlink_metadata(path).is_ok() {
        bail!(
            "admin_credentials: {} already exists; refusing to overwrite it",
            path.display()
        );
    }
    Ok(())
}

fn tempfile_in(path: &Path) -> Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
    let mut tmp = name.to_owned();
    tmp.push(".key-tmp");
    Ok(path.with_file_name(tmp))
}

fn pem_cert(cert: &CertificateDer<'_>) -> String {
    use std::fmt::Write;
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in cert.as_ref().chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        let _ = writeln!(out, "{}", String::from_utf8_lossy(line));
    }
    out.push_str("-----END CERTIFICATE-----\n");
    out
}

/// Loads admin credentials written by [`write_admin_credentials`] (the file must be 0600).
pub fn load_admin_credentials(path: &Path) -> Result<NodeCredentials> {
    let key = NodeKey::load(path).map_err(|e| anyhow!("admin_credentials: {e}"))?;
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow!("admin_credentials: {}: {e}", path.display()))?;
    let [cert, ca] = <[CertificateDer<'static>; 2]>::try_from(chain).map_err(|_| {
        anyhow!(
            "admin_credentials: {}: expected a key, the admin certificate and the CA certificate",
            path.display()
        )
    })?;
    NodeCredentials::new(&key, cert, ca).map_err(|e| anyhow!("admin_credentials: {e}"))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ports_derive_and_port_zero_is_refused() {
        let a: SocketAddr = "127.0.0.1:7400".parse().unwrap();
        assert_eq!(port_offset("raft_listen", a, 1).unwrap().port(), 7401);
        let z: SocketAddr = "127.0.0.1:0".parse().unwrap();
        assert!(
            port_offset("raft_listen", z, 1)
                .unwrap_err()
                .to_string()
                .contains("raft_listen")
        );
    }

    #[test]
    fn names_are_labels() {
        let n = default_node_name();
        assert!(node_name(&n).is_ok(), "{n}");
        assert!(node_name("Not_A_Label").is_err());
    }
}
