//! How the containerd runtime reaches each registry: TLS trust (system roots plus an optional CA
//! file), the explicit plain-HTTP opt-in, and credentials — and the 0600 file they are read from.
//!
//! The agent keeps this in `<data_dir>/registries.yaml` ([`REGISTRIES_FILE`]), one entry per
//! registry host (`host[:port]`, as it appears in image references):
//!
//! ```yaml
//! registries:
//!   registry.example:
//!     username: robot
//!     password: "s3cret"
//!     ca_file: /etc/cloudless/registry-ca.pem
//!   127.0.0.1:5000:
//!     insecure_http: true
//! ```
//!
//! [`load_agent_registries`] reads it (no file: no entries). [`load_registries_file`] refuses a
//! file that group or others can read or that another user owns, so a password is never left
//! readable by accident. Passwords never appear in `Debug`
//! output, logs or error messages, and are wiped from memory on drop.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use zeroize::Zeroize;

/// Name of the registries file in the agent's data directory.
pub const REGISTRIES_FILE: &str = "registries.yaml";

/// How to reach one registry.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryConfig {
    /// Talk plain HTTP/1.1, without TLS. Only for registries an operator explicitly marks so
    /// (e.g. one on loopback or the node's own network): nothing authenticates the registry,
    /// and credentials would cross the network in the clear.
    pub insecure_http: bool,
    /// PEM file with CA certificates trusted for this registry, in addition to the system roots.
    pub ca_file: Option<PathBuf>,
    /// Username and password (Basic auth, and for the realm of the bearer-token flow).
    pub credentials: Option<RegistryCredentials>,
}

/// A username and password for one registry. `Debug` shows the username only; the password is
/// wiped from memory on drop.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryCredentials {
    /// Username.
    pub username: String,
    /// Password or access token.
    pub password: String,
}

impl RegistryCredentials {
    /// Credentials `username` / `password`.
    pub fn new(username: &str, password: &str) -> Self {
        Self {
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }
}

impl std::fmt::Debug for RegistryCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCredentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

impl Drop for RegistryCredentials {
    fn drop(&mut self) {
        self.password.zeroize();
    }
}

/// Why the registries file was refused.
#[derive(Debug, thiserror::Error)]
pub enum RegistryConfigError {
    /// The file could not be read.
    #[error("registries file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Group or others may read or write the file.
    #[error(
        "registries file {path} holds credentials but has mode {mode:04o}; it must be readable by \
         its owner only (chmod 600 {path})"
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// Another user owns the file.
    #[error("registries file {path} is owned by uid {owner}, not by this process's uid {uid}")]
    Owner {
        /// The file.
        path: PathBuf,
        /// Its owner.
        owner: u32,
        /// This process's effective uid.
        uid: u32,
    },
    /// The file is not valid YAML of the expected shape.
    #[error("registries file {path}: {reason}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong (never the file's contents).
        reason: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistriesFile {
    #[serde(default)]
    registries: BTreeMap<String, RegistryEntry>,
}

/// One entry of the file as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryEntry {
    #[serde(default)]
    insecure_http: bool,
    #[serde(default)]
    ca_file: Option<PathBuf>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

impl Drop for RegistryEntry {
    fn drop(&mut self) {
        if let Some(p) = &mut self.password {
            p.zeroize();
        }
    }
}

/// Reads the registries file at `path` (see the module documentation), refusing one that is
/// group- or world-accessible or owned by another user.
pub fn load_registries_file(
    path: &Path,
) -> Result<BTreeMap<String, RegistryConfig>, RegistryConfigError> {
    let io = |source| RegistryConfigError::Io {
        path: path.to_owned(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    let mode = meta.mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(RegistryConfigError::Permissions {
            path: path.to_owned(),
            mode,
        });
    }
    let uid = rustix::process::geteuid().as_raw();
    if meta.uid() != uid {
        return Err(RegistryConfigError::Owner {
            path: path.to_owned(),
            owner: meta.uid(),
            uid,
        });
    }
    let mut text = std::fs::read_to_string(path).map_err(io)?;
    let parsed = serde_saphyr::from_str::<RegistriesFile>(&text);
    text.zeroize();
    let file = parsed.map_err(|e| RegistryConfigError::Invalid {
        path: path.to_owned(),
        // The parser's message may quote the document: keep only its first line, which names
        // the field and position.
        reason: e.to_string().lines().next().unwrap_or_default().to_owned(),
    })?;
    let invalid = |reason: String| RegistryConfigError::Invalid {
        path: path.to_owned(),
        reason,
    };
    let mut out = BTreeMap::new();
    for (host, entry) in &file.registries {
        if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
            return Err(invalid(format!("{host:?} is not a registry host[:port]")));
        }
        if entry.insecure_http && entry.ca_file.is_some() {
            return Err(invalid(format!(
                "registry {host}: ca_file has no effect with insecure_http"
            )));
        }
        let credentials = match (&entry.username, &entry.password) {
            (Some(u), Some(p)) => Some(RegistryCredentials::new(u, p)),
            (None, None) => None,
            _ => {
                return Err(invalid(format!(
                    "registry {host}: username and password go together"
                )));
            }
        };
        out.insert(
            host.clone(),
            RegistryConfig {
                insecure_http: entry.insecure_http,
                ca_file: entry.ca_file.clone(),
                credentials,
            },
        );
    }
    Ok(out)
}

/// The agent's registries: [`load_registries_file`] of `<data_dir>/`[`REGISTRIES_FILE`], or none
/// when that file does not exist (every registry then HTTPS and anonymous).
pub fn load_agent_registries(
    data_dir: &Path,
) -> Result<BTreeMap<String, RegistryConfig>, RegistryConfigError> {
    let path = data_dir.join(REGISTRIES_FILE);
    match std::fs::symlink_metadata(&path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        _ => load_registries_file(&path),
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn write(dir: &Path, text: &str, mode: u32) -> PathBuf {
        let path = dir.join(REGISTRIES_FILE);
        std::fs::write(&path, text).expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        path
    }

    const SAMPLE: &str = "registries:\n  registry.example:\n    username: robot\n    password: \
                          \"s3cret\"\n    ca_file: /etc/ca.pem\n  127.0.0.1:5000:\n    \
                          insecure_http: true\n";

    #[test]
    fn reads_a_private_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = write(dir.path(), SAMPLE, 0o600);
        let regs = load_registries_file(&path).expect("load");
        assert_eq!(
            regs["registry.example"],
            RegistryConfig {
                insecure_http: false,
                ca_file: Some("/etc/ca.pem".into()),
                credentials: Some(RegistryCredentials::new("robot", "s3cret")),
            }
        );
        assert_eq!(
            regs["127.0.0.1:5000"],
            RegistryConfig {
                insecure_http: true,
                ..RegistryConfig::default()
            }
        );
        assert!(!format!("{regs:?}").contains("s3cret"));
    }

    #[test]
    fn refuses_group_or_world_readable_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        for mode in [0o640, 0o604, 0o660, 0o644] {
            let path = write(dir.path(), SAMPLE, mode);
            let err = load_registries_file(&path).expect_err("refused");
            assert!(
                matches!(err, RegistryConfigError::Permissions { mode: m, .. } if m == mode),
                "{err}"
            );
            assert!(err.to_string().contains("chmod 600"), "{err}");
        }
    }

    #[test]
    fn errors_never_quote_the_password() {
        let dir = tempfile::tempdir().expect("tempdir");
        let bad =
            "registries:\n  r.example:\n    username: u\n    password: s3cret\n    bogus: 1\n";
        let err = load_registries_file(&write(dir.path(), bad, 0o600)).expect_err("invalid");
        assert!(matches!(err, RegistryConfigError::Invalid { .. }), "{err}");
        assert!(!err.to_string().contains("s3cret"), "{err}");
        let both = "registries:\n  r.example:\n    insecure_http: true\n    ca_file: /x\n";
        let err = load_registries_file(&write(dir.path(), both, 0o600)).expect_err("invalid");
        assert!(err.to_string().contains("r.example"), "{err}");
        let missing = load_registries_file(&dir.path().join("nope")).expect_err("missing");
        assert!(
            matches!(missing, RegistryConfigError::Io { .. }),
            "{missing}"
        );
    }
}
