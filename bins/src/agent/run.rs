//! `run`: the running agent (Fabric agent role, transport, certificate renewal, image
//! collector) and its shutdown.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use cloudless::agent::AgentConfig;
use cloudless::fabric::{Fabric, FabricHandle};
use cloudless::protocol::join::IDENTITY_DIR;
use cloudless_core::clock::SystemClock;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::Role;
use cloudless_net::identity::NodeCredentials;
use cloudless_net::identity::renewal_driver::{RenewalConfig, RenewalDriver};
use cloudless_net::quic::{QuicConfig, QuicTransport};

use super::AgentSettings;
use super::cgroups;
use super::image_gc::start_image_gc;
use super::join::{discover, join_cmd, load_known, save_known};
use super::runtime::runtime;

/// A running agent.
pub struct RunningAgent {
    fabric: Option<FabricHandle>,
    transport: Arc<QuicTransport>,
    _renewal: Option<RenewalDriver>,
    image_gc: Option<tokio::task::JoinHandle<()>>,
    cgroup_parent: String,
    namespace: String,
    /// The agent's identity.
    pub identity: cloudless_core::transport::PeerIdentity,
}

impl RunningAgent {
    /// Stops the agent (its containers keep running; the next start adopts them).
    pub async fn shutdown(mut self) {
        if let Some(gc) = self.image_gc.take() {
            gc.abort();
        }
        if let Some(f) = self.fabric.take() {
            f.shutdown().await;
        }
        self.transport.close();
        let removed = cgroups::remove_owned(
            Path::new(cgroups::CGROUP_ROOT),
            &self.cgroup_parent,
            &self.namespace,
        );
        if removed > 0 {
            tracing::info!(
                parent = %self.cgroup_parent,
                removed,
                "removed the agent's empty cgroups"
            );
        }
    }
}

impl Drop for RunningAgent {
    fn drop(&mut self) {
        if let Some(gc) = self.image_gc.take() {
            gc.abort();
        }
    }
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
    let (rt, containerd) = match runtime(s).await {
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
    let image_gc = match (containerd, fabric.agent().map(|a| a.watch())) {
        (Some(c), Some(assignments)) => {
            match start_image_gc(s, c, move || assignments.borrow().images.clone()) {
                Ok(gc) => gc,
                Err(e) => {
                    fabric.shutdown().await;
                    transport.close();
                    return Err(e);
                }
            }
        }
        _ => None,
    };
    Ok(RunningAgent {
        fabric: Some(fabric),
        identity: creds.identity().clone(),
        transport,
        _renewal: renewal,
        image_gc,
        cgroup_parent: s.cgroup_parent.clone(),
        namespace: s.namespace.clone(),
    })
}
