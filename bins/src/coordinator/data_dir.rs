//! What a coordinator data dir holds besides the raft data: `coordinator.json` ([`Meta`]),
//! the cluster CA (optionally locked with a passphrase), and this member's credentials, which
//! it reissues itself from the CA.

use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow};
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::identity::lock::DEFAULT_KDF_ITERATIONS;
use cloudless_net::identity::renewal::validity;
use cloudless_net::identity::{
    ClusterCa, DEFAULT_NODE_LIFETIME, NODE_KEY_FILE, NodeCredentials, NodeKey, write_private,
};
use serde::{Deserialize, Serialize};

use super::{CA_DIR, CoordinatorSettings, IDENTITY_DIR, META_FILE};
use crate::common::create_private_dir;

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
    pub(super) fn path(dir: &Path) -> PathBuf {
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

    pub(super) fn save(&self, dir: &Path) -> Result<()> {
        let path = Self::path(dir);
        let text = serde_json::to_vec_pretty(self)?;
        write_private(&path, &text).with_context(|| format!("writing {}", path.display()))
    }
}

/// Writes the cluster CA to `<data_dir>/ca`, its key locked when a passphrase is given.
pub(super) fn save_ca(
    ca: &ClusterCa,
    data_dir: &Path,
    passphrase: Option<&zeroize::Zeroizing<String>>,
) -> Result<()> {
    let dir = &data_dir.join(CA_DIR);
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

pub(super) fn load_ca(settings: &CoordinatorSettings) -> Result<ClusterCa> {
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

pub(super) fn issue(
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
pub(super) fn load_credentials(dir: &Path, ca: &ClusterCa) -> Result<NodeCredentials> {
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
