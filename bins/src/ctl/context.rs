//! Where to connect and as whom: contexts in a config file, overridden by environment variables
//! and flags (flags > `CLOUDLESSCTL_*` > the context).
//!
//! ```yaml
//! currentContext: local
//! contexts:
//!   - name: local
//!     endpoints: ["127.0.0.1:7403"]
//!     credentials: /var/lib/cloudless/admin.pem   # key + cert + CA, from `coordinator init`
//!     namespace: default
//!   - name: prod
//!     endpoints: ["10.0.0.1:7403", "10.0.0.2:7403"]
//!     cert: prod/admin.pem                        # relative to this file
//!     key: prod/admin.key
//!     ca: prod/ca.pem
//! ```

use std::path::{Path, PathBuf};

use cloudless::Client;
use cloudless_net::identity::{NodeCredentials, NodeKey};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

use super::args::GlobalArgs;
use super::error::{CtlError, CtlResult};

/// The config file.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ConfigFile {
    /// The context used without `--context`.
    #[serde(default)]
    pub(crate) current_context: Option<String>,
    /// Named contexts.
    #[serde(default)]
    pub(crate) contexts: Vec<ContextEntry>,
}

/// One context.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(crate) struct ContextEntry {
    pub(crate) name: String,
    #[serde(default)]
    pub(crate) endpoints: Vec<String>,
    #[serde(default)]
    pub(crate) credentials: Option<PathBuf>,
    #[serde(default)]
    pub(crate) cert: Option<PathBuf>,
    #[serde(default)]
    pub(crate) key: Option<PathBuf>,
    #[serde(default)]
    pub(crate) ca: Option<PathBuf>,
    #[serde(default)]
    pub(crate) namespace: Option<String>,
}

/// The resolved connection settings.
#[derive(Debug)]
pub(crate) struct Resolved {
    /// Context name (`<flags>` when none was used).
    pub(crate) context: String,
    /// Where the settings came from, for error messages.
    pub(crate) config_path: Option<PathBuf>,
    pub(crate) entry: ContextEntry,
}

fn default_config_path() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("cloudless/config.yaml"));
    }
    std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .map(|h| PathBuf::from(h).join(".config/cloudless/config.yaml"))
}

fn load_config(path: &Path) -> CtlResult<ConfigFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CtlError::general(format!("config {}: cannot read: {e}", path.display())))?;
    if text.trim().is_empty() {
        return Ok(ConfigFile::default());
    }
    serde_saphyr::from_str::<ConfigFile>(&text).map_err(|e| {
        CtlError::general(format!(
            "config {}: {}; see docs/cli.md for the format",
            path.display(),
            super::error::one_line(&e.to_string())
        ))
    })
}

fn relative_to(base: Option<&Path>, p: Option<PathBuf>) -> Option<PathBuf> {
    let p = p?;
    match base.and_then(Path::parent) {
        Some(dir) if p.is_relative() => Some(dir.join(p)),
        _ => Some(p),
    }
}

/// Resolves the context, then applies environment and flag overrides (clap already merged
/// `CLOUDLESSCTL_*` variables into `g`).
pub(crate) fn resolve(g: &GlobalArgs) -> CtlResult<Resolved> {
    let explicit = g.config.clone();
    let path = explicit.clone().or_else(default_config_path);
    let (file, config_path) = match &path {
        Some(p) if explicit.is_some() || p.exists() => (load_config(p)?, Some(p.clone())),
        _ => (ConfigFile::default(), None),
    };
    let wanted = g.context.clone().or(file.current_context.clone());
    let mut entry = match &wanted {
        Some(name) => match file.contexts.iter().find(|c| &c.name == name) {
            Some(c) => c.clone(),
            None => {
                let known: Vec<&str> = file.contexts.iter().map(|c| c.name.as_str()).collect();
                let where_ = config_path
                    .as_ref()
                    .map_or_else(|| "no config file".to_owned(), |p| p.display().to_string());
                return Err(CtlError::general(format!(
                    "context {name:?} not found in {where_} (known: {}); check --context / CLOUDLESSCTL_CONTEXT or currentContext",
                    if known.is_empty() {
                        "none".to_owned()
                    } else {
                        known.join(", ")
                    }
                )));
            }
        },
        None => ContextEntry::default(),
    };
    let base = config_path.as_deref();
    entry.credentials = relative_to(base, entry.credentials.take());
    entry.cert = relative_to(base, entry.cert.take());
    entry.key = relative_to(base, entry.key.take());
    entry.ca = relative_to(base, entry.ca.take());
    if !g.endpoint.is_empty() {
        entry.endpoints = g.endpoint.iter().map(|e| e.trim().to_owned()).collect();
    }
    if g.credentials.is_some() {
        entry.credentials = g.credentials.clone();
        entry.cert = None;
        entry.key = None;
    }
    if g.cert.is_some() || g.key.is_some() {
        entry.credentials = None;
    }
    if g.cert.is_some() {
        entry.cert = g.cert.clone();
    }
    if g.key.is_some() {
        entry.key = g.key.clone();
    }
    if g.ca.is_some() {
        entry.ca = g.ca.clone();
    }
    if g.namespace.is_some() {
        entry.namespace = g.namespace.clone();
    }
    Ok(Resolved {
        context: wanted.unwrap_or_else(|| "<flags>".to_owned()),
        config_path,
        entry,
    })
}

impl Resolved {
    /// The namespace commands use.
    pub(crate) fn namespace(&self) -> String {
        self.entry
            .namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".to_owned())
    }

    fn whence(&self) -> String {
        match &self.config_path {
            Some(p) => format!("context {:?} of {}", self.context, p.display()),
            None => "flags and environment (no config file)".to_owned(),
        }
    }

    /// A client for the context.
    pub(crate) fn client(&self) -> CtlResult<Client> {
        if self.entry.endpoints.is_empty() {
            return Err(CtlError::general(format!(
                "no endpoints in {}: set `endpoints:` there, CLOUDLESSCTL_ENDPOINT or --endpoint (host:port of a coordinator's API)",
                self.whence()
            )));
        }
        let creds = self.credentials()?;
        Client::new(self.entry.endpoints.iter().cloned(), &creds)
            .map_err(|e| CtlError::general(format!("endpoints: {e}")))
    }

    fn credentials(&self) -> CtlResult<NodeCredentials> {
        let e = &self.entry;
        if let Some(path) = &e.credentials {
            let key = load_key("credentials", path)?;
            let mut certs = load_certs("credentials", path)?;
            if let Some(ca) = &e.ca {
                certs.truncate(1);
                certs.extend(load_certs("ca", ca)?);
            }
            return assemble("credentials", path, &key, certs);
        }
        match (&e.cert, &e.key) {
            (Some(cert), Some(key_path)) => {
                let key = load_key("key", key_path)?;
                let mut certs = load_certs("cert", cert)?;
                if let Some(ca) = &e.ca {
                    certs.truncate(1);
                    certs.extend(load_certs("ca", ca)?);
                }
                assemble("cert", cert, &key, certs)
            }
            (Some(_), None) => Err(CtlError::general(format!(
                "cert is set but key is not in {}: set `key:`, CLOUDLESSCTL_KEY or --key",
                self.whence()
            ))),
            (None, Some(_)) => Err(CtlError::general(format!(
                "key is set but cert is not in {}: set `cert:`, CLOUDLESSCTL_CERT or --cert",
                self.whence()
            ))),
            (None, None) => Err(CtlError::general(format!(
                "no client credentials in {}: set `credentials:` to the admin file `cloudless-coordinator init` wrote (or `cert:`/`key:`/`ca:`), CLOUDLESSCTL_CREDENTIALS or --credentials",
                self.whence()
            ))),
        }
    }
}

fn load_key(field: &str, path: &Path) -> CtlResult<NodeKey> {
    NodeKey::load(path).map_err(|e| {
        CtlError::general(format!(
            "{field}: {}: cannot load the private key: {}; it must be a PEM key readable only by you (chmod 600)",
            path.display(),
            super::error::one_line(&e.to_string())
        ))
    })
}

fn load_certs(field: &str, path: &Path) -> CtlResult<Vec<CertificateDer<'static>>> {
    let bytes = std::fs::read(path)
        .map_err(|e| CtlError::general(format!("{field}: {}: cannot read: {e}", path.display())))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| {
            CtlError::general(format!(
                "{field}: {}: bad PEM certificate: {e}",
                path.display()
            ))
        })?;
    if certs.is_empty() {
        return Err(CtlError::general(format!(
            "{field}: {}: no PEM certificate in the file",
            path.display()
        )));
    }
    Ok(certs)
}

fn assemble(
    field: &str,
    path: &Path,
    key: &NodeKey,
    certs: Vec<CertificateDer<'static>>,
) -> CtlResult<NodeCredentials> {
    let mut it = certs.into_iter();
    let (Some(cert), Some(ca)) = (it.next(), it.next()) else {
        return Err(CtlError::general(format!(
            "{field}: {}: expected the client certificate followed by the cluster CA certificate (or set `ca:` / CLOUDLESSCTL_CA)",
            path.display()
        )));
    };
    NodeCredentials::new(key, cert, ca).map_err(|e| {
        CtlError::general(format!(
            "{field}: {}: {}",
            path.display(),
            super::error::one_line(&e.to_string())
        ))
    })
}
