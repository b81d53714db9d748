//! `join`: enrollment with a token, and the coordinators the agent knows
//! (`coordinators.json`: node id by control address, learned by dialing them).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cloudless::protocol::join::{JoinParams, join};
use cloudless_core::transport::{Role, Transport};
use cloudless_net::identity::{NodeCredentials, write_private};
use cloudless_net::quic::{QuicConfig, QuicTransport};
use serde::{Deserialize, Serialize};

use super::{AgentSettings, COORDINATORS_FILE};
use crate::common::{self, create_private_dir};

/// One known coordinator.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct KnownCoordinator {
    /// Its node id (from its certificate).
    pub node: u64,
    /// Its control address.
    pub addr: String,
}

pub(super) fn load_known(dir: &Path) -> Result<Vec<KnownCoordinator>> {
    let path = dir.join(COORDINATORS_FILE);
    match std::fs::read_to_string(&path) {
        Ok(t) => serde_json::from_str(&t).map_err(|e| anyhow!("{}: {e}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(anyhow!("{}: {e}", path.display())),
    }
}

pub(super) fn save_known(dir: &Path, known: &[KnownCoordinator]) -> Result<()> {
    let path = dir.join(COORDINATORS_FILE);
    write_private(&path, &serde_json::to_vec_pretty(known)?)
        .with_context(|| format!("writing {}", path.display()))
}

/// Learns the node id behind each address (dialing it); unreachable ones keep their stored id.
pub(super) async fn discover(
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
