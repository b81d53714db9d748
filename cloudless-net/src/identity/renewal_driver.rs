//! The renewal driver: one task per node that renews the node certificate at a jittered point
//! of its lifetime, rotates the transport, and saves the new credentials.
//!
//! ```text
//!  validity(cert) ─▶ renew_at(issued, not_after, jitter) ─▶ sleep ─▶ renew (new key, RPC)
//!        ▲                                                              │
//!        └──── watch::Sender<NodeCredentials> ◀── save (0600) ◀── rotate ┘
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cloudless_core::clock::Clock;
use cloudless_core::ids::NodeId;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::renewal::{renew, renew_at, validity};
use super::{DEFAULT_BACKDATE, NodeCredentials, NodeKey};
use crate::quic::QuicTransport;
use crate::rpc::RpcClient;

/// Settings of the renewal driver.
#[derive(Debug, Clone)]
pub struct RenewalConfig {
    /// The coordinator to renew at.
    pub coordinator: NodeId,
    /// Where to save renewed credentials (`node.pem`, `node.key` 0600); `None` keeps them in
    /// memory only.
    pub dir: Option<PathBuf>,
    /// Seed of the jitter draws.
    pub seed: u64,
    /// Deadline of one renewal call.
    pub call_deadline: Duration,
    /// Shortest wait before retrying a failed renewal.
    pub min_retry: Duration,
}

/// A running renewal driver. Dropping it stops the task.
#[derive(Debug)]
pub struct RenewalDriver {
    current: watch::Receiver<NodeCredentials>,
    task: JoinHandle<()>,
}

impl RenewalDriver {
    /// Starts renewing `creds`, used by `transport`, through `client`.
    pub fn spawn(
        transport: Arc<QuicTransport>,
        client: RpcClient,
        creds: NodeCredentials,
        clock: Arc<dyn Clock>,
        config: RenewalConfig,
    ) -> Self {
        let (tx, current) = watch::channel(creds);
        let task = tokio::spawn(run(transport, client, tx, clock, config));
        Self { current, task }
    }

    /// The credentials in use; changes after each rotation.
    pub fn current(&self) -> watch::Receiver<NodeCredentials> {
        self.current.clone()
    }
}

impl Drop for RenewalDriver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now(clock: &dyn Clock) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(clock.now_ms())
}

async fn run(
    transport: Arc<QuicTransport>,
    client: RpcClient,
    tx: watch::Sender<NodeCredentials>,
    clock: Arc<dyn Clock>,
    config: RenewalConfig,
) {
    let mut rng = ChaCha8Rng::seed_from_u64(config.seed);
    loop {
        let creds = tx.borrow().clone();
        let Ok((not_before, not_after)) = validity(creds.cert()) else {
            tracing::error!("cannot read the validity of our own certificate; renewal stops");
            return;
        };
        // Our CA back-dates certificates; measure the lifetime from the real issue time.
        let issued = (not_before + DEFAULT_BACKDATE).min(not_after);
        let jitter = f64::from(rng.next_u32()) / f64::from(u32::MAX);
        let at = renew_at(issued, not_after, jitter);
        let wait = at.duration_since(now(&*clock)).unwrap_or(Duration::ZERO);
        tokio::time::sleep(wait).await;
        match renew_once(&transport, &client, &creds, &config).await {
            Ok(renewed) => {
                tracing::info!(node = %renewed.identity(), "certificate renewed and rotated");
                let _ = tx.send(renewed);
            }
            Err(e) => {
                // Retry at a tenth of the remaining validity, at least `min_retry`.
                let left = not_after
                    .duration_since(now(&*clock))
                    .unwrap_or(Duration::ZERO);
                let pause = (left / 10).max(config.min_retry);
                tracing::warn!(error = %e, ?pause, "certificate renewal failed; retrying");
                tokio::time::sleep(pause).await;
            }
        }
    }
}

async fn renew_once(
    transport: &QuicTransport,
    client: &RpcClient,
    creds: &NodeCredentials,
    config: &RenewalConfig,
) -> Result<NodeCredentials, Box<dyn std::error::Error + Send + Sync>> {
    let key = NodeKey::generate()?;
    let renewed = renew(
        client,
        config.coordinator,
        creds,
        &key,
        config.call_deadline,
    )
    .await?;
    if let Some(dir) = &config.dir {
        renewed.save(dir)?;
    }
    transport.rotate(&renewed)?;
    Ok(renewed)
}
