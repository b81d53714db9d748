//! Starting and stopping an RPC endpoint on a transport.

use std::sync::Arc;

use cloudless_core::transport::Transport;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::client::RpcClient;
use super::config::{RpcConfig, RpcConfigError};
use super::dispatch::{Dispatcher, read_loop};
use super::router::Router;
use crate::codec::{FrameCodec, LEN_PREFIX};

/// A running RPC endpoint: serves `router` and makes calls, over one transport. Must be
/// started inside a tokio runtime. Dropping it stops its tasks and aborts running handlers.
pub struct RpcEndpoint {
    client: RpcClient,
    tasks: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for RpcEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcEndpoint")
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl RpcEndpoint {
    /// Starts the reader and dispatcher tasks. The endpoint owns the transport's `recv` from
    /// now on (the Transport contract allows one consumer).
    pub fn start(
        transport: Arc<dyn Transport>,
        router: Router,
        config: RpcConfig,
    ) -> Result<Self, RpcConfigError> {
        config.validate()?;
        let codec = FrameCodec::new(transport.max_frame_size().saturating_sub(LEN_PREFIX));
        let (cmd_tx, cmd_rx) = mpsc::channel(config.queue_capacity);
        let (inbound_tx, inbound_rx) = mpsc::channel(config.queue_capacity);
        let client = RpcClient::new(
            cmd_tx.clone(),
            Arc::clone(&transport),
            codec,
            config.clone(),
        );
        let dispatcher = Dispatcher::new(
            Arc::clone(&transport),
            codec,
            config,
            Arc::new(router),
            cmd_tx,
        );
        let tasks = vec![
            tokio::spawn(read_loop(transport, inbound_tx)),
            tokio::spawn(dispatcher.run(cmd_rx, inbound_rx)),
        ];
        Ok(Self { client, tasks })
    }

    /// A handle for making calls.
    pub fn client(&self) -> RpcClient {
        self.client.clone()
    }
}

impl Drop for RpcEndpoint {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}
