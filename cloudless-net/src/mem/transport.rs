//! `MemTransport`: one endpoint of a [`MemNetwork`](super::MemNetwork).

use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{ByteStream, Inbound, PeerIdentity, Transport, TransportError};
use tokio::sync::{Mutex, mpsc};

use super::network::{Accepted, NetInner};
use super::stream::MemByteStream;

/// The address scheme of in-memory endpoints: `mem://<node-id>` (the number, or `n<number>`).
pub const SCHEME: &str = "mem://";

/// One node's endpoint on an in-memory network. Dropping it removes the endpoint (a crash):
/// its connections close and frames in flight to it are lost.
pub struct MemTransport {
    net: Arc<NetInner>,
    identity: PeerIdentity,
    generation: u64,
    // Single-consumer receivers (Transport contract): the async mutex only serialises
    // concurrent callers of `recv`/`accept_stream`; no shared state is behind it.
    inbox: Mutex<mpsc::Receiver<Inbound>>,
    accept: Mutex<mpsc::Receiver<Accepted>>,
}

impl std::fmt::Debug for MemTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemTransport")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl MemTransport {
    pub(super) fn new(
        net: Arc<NetInner>,
        identity: PeerIdentity,
        generation: u64,
        inbox: mpsc::Receiver<Inbound>,
        accept: mpsc::Receiver<Accepted>,
    ) -> Self {
        Self {
            net,
            identity,
            generation,
            inbox: Mutex::new(inbox),
            accept: Mutex::new(accept),
        }
    }

    /// This endpoint's address, `mem://<node-id>`.
    pub fn addr(&self) -> String {
        addr_of(self.identity.node)
    }
}

/// The address of `node` on an in-memory network.
pub fn addr_of(node: NodeId) -> String {
    format!("{SCHEME}{}", node.get())
}

fn parse_addr(addr: &str) -> Result<NodeId, TransportError> {
    let bad = |reason: &str| TransportError::Unreachable {
        addr: addr.to_owned(),
        reason: reason.to_owned(),
    };
    let rest = addr
        .strip_prefix(SCHEME)
        .ok_or_else(|| bad("expected mem://<node-id>"))?;
    let digits = rest.strip_prefix('n').unwrap_or(rest);
    digits
        .parse::<u64>()
        .map(NodeId)
        .map_err(|_| bad("expected mem://<node-id>"))
}

impl Drop for MemTransport {
    fn drop(&mut self) {
        self.net.remove(self.identity.node, self.generation);
    }
}

#[async_trait]
impl Transport for MemTransport {
    fn local(&self) -> &PeerIdentity {
        &self.identity
    }

    async fn connect(&self, addr: &str) -> Result<PeerIdentity, TransportError> {
        let to = parse_addr(addr)?;
        self.net.connect(self.identity.node, to, addr)
    }

    async fn send(&self, to: NodeId, frame: Bytes) -> Result<(), TransportError> {
        let limit = self.net.config.max_frame_size;
        if frame.len() > limit {
            return Err(TransportError::FrameTooLarge {
                size: frame.len(),
                limit,
            });
        }
        match self.net.admit(&self.identity, to, frame)? {
            Some((link, msg)) => link
                .send(msg)
                .await
                .map_err(|_| TransportError::NotConnected(to)),
            None => Ok(()),
        }
    }

    async fn recv(&self) -> Result<Inbound, TransportError> {
        self.inbox
            .lock()
            .await
            .recv()
            .await
            .ok_or(TransportError::Closed)
    }

    async fn open_stream(&self, to: NodeId) -> Result<Box<dyn ByteStream>, TransportError> {
        let queue = self.net.stream_target(self.identity.node, to)?;
        let c = &self.net.config;
        let (ours, theirs) = MemByteStream::pair(c.stream_capacity, c.max_frame_size);
        queue
            .send((self.identity.clone(), Box::new(theirs)))
            .await
            .map_err(|_| TransportError::NotConnected(to))?;
        Ok(Box::new(ours))
    }

    async fn accept_stream(&self) -> Result<(PeerIdentity, Box<dyn ByteStream>), TransportError> {
        self.accept
            .lock()
            .await
            .recv()
            .await
            .ok_or(TransportError::Closed)
    }

    fn connected_peers(&self) -> Vec<PeerIdentity> {
        self.net.peers_of(self.identity.node)
    }

    fn max_frame_size(&self) -> usize {
        self.net.config.max_frame_size
    }
}
