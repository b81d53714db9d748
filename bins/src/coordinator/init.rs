//! `init`: a new cluster in an empty data dir (CA, this member's identity, a single-member
//! raft cluster with its node record and join tokens, and the admin credentials).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use cloudless_core::ids::NodeId;
use cloudless_core::state::Command;
use cloudless_core::transport::Role;
use cloudless_net::identity::{ClusterCa, DEFAULT_NODE_LIFETIME, NodeKey, TokenRole};

use super::data_dir::{issue, save_ca};
use super::raft::{cordon_coordinator, create_token, propose, start_raft, wait_leader};
use super::{ADMIN_LIFETIME, CoordinatorSettings, IDENTITY_DIR, LEADER_WAIT, Meta};
use crate::common::{self, create_private_dir, is_empty_dir};
use crate::config::ConfigError;

/// Output of `init`.
#[derive(Debug)]
pub struct InitOutput {
    /// The agent join token.
    pub agent_token: zeroize::Zeroizing<String>,
    /// The coordinator join token, when asked for.
    pub coordinator_token: Option<zeroize::Zeroizing<String>>,
}

/// `init`: a new cluster in an empty data dir.
pub async fn init(
    s: &CoordinatorSettings,
    coordinator_token: bool,
    token_ttl: Duration,
) -> Result<InitOutput> {
    let cluster = s.cluster.clone().ok_or(ConfigError::Missing {
        field: "cluster",
        flag: "cluster",
        env: "CLOUDLESS_CLUSTER",
    })?;
    let dir = &s.data_dir;
    if !is_empty_dir(dir)? {
        bail!(
            "data_dir: {} is not empty; init only creates a new cluster in an empty directory",
            dir.display()
        );
    }
    common::refuse_existing_admin_credentials(&s.admin_credentials)?;
    let passphrase = s.passphrase()?;
    create_private_dir(dir)?;
    let ca = ClusterCa::init(&cluster, SystemTime::now())?;
    save_ca(&ca, dir, passphrase.as_ref())?;
    let node = NodeId(1);
    let key = NodeKey::generate()?;
    let creds = issue(&ca, &key, Role::Coordinator, node, DEFAULT_NODE_LIFETIME)?;
    let id_dir = dir.join(IDENTITY_DIR);
    create_private_dir(&id_dir)?;
    creds.save(&id_dir)?;

    // The single-member raft cluster, on a loopback port of its own (nothing dials a single
    // member); its membership records the advertised raft address.
    let member = start_raft(&creds, dir, "127.0.0.1:0".parse()?).await?;
    let c = &member.consensus;
    let result = async {
        c.initialize(BTreeMap::from([(node, s.raft_advertise())]))
            .await
            .map_err(|e| anyhow!("initializing raft: {e}"))?;
        wait_leader(c, LEADER_WAIT).await?;
        let report = common::node_report(dir, "", "", &BTreeMap::new());
        propose(
            c,
            Command::RegisterNodeAs {
                node,
                name: common::node_name(&s.name)?,
                report,
            },
        )
        .await
        .context("registering this coordinator")?;
        cordon_coordinator(c, node).await?;
        let agent_token = create_token(c, &ca, TokenRole::Agent, token_ttl, None).await?;
        let coordinator_token = if coordinator_token {
            Some(create_token(c, &ca, TokenRole::Coordinator, token_ttl, None).await?)
        } else {
            None
        };
        Ok::<_, anyhow::Error>(InitOutput {
            agent_token,
            coordinator_token,
        })
    }
    .await;
    c.shutdown().await;
    member.transport.close();
    let out = result?;

    let admin_key = NodeKey::generate()?;
    let admin = issue(&ca, &admin_key, Role::Admin, NodeId(0), ADMIN_LIFETIME)?;
    common::write_admin_credentials(&s.admin_credentials, &admin_key, &admin)?;
    Meta {
        cluster,
        node: node.get(),
        name: s.name.clone(),
        voter: true,
        peers: Vec::new(),
    }
    .save(dir)?;
    Ok(out)
}
