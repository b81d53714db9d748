//! `snapshot save | restore`: the applied state of a stopped coordinator to a file, and a
//! file back into the raft data of a single-member cluster.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role, Transport};
use cloudless_net::identity::{CA_KEY_FILE, ClusterCa, NODE_CERT_FILE, NODE_KEY_FILE};
use cloudless_net::{Router, RpcConfig, RpcEndpoint};
use cloudless_store::{RaftConsensus, RaftConsensusConfig, RaftService};

use super::{CA_DIR, CoordinatorSettings, IDENTITY_DIR, Meta, RAFT_DIR};
use crate::common::is_empty_dir;

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
