//! The `Transport` building block: authenticated delivery of framed messages and byte streams
//! between identified peers (DESIGN §8).
//!
//! ```text
//!  connect(addr) ──TLS──▶ PeerIdentity          (dialer learns who it reached)
//!  send(NodeId, frame) ─────────────────────▶ recv() -> Inbound { from: PeerIdentity, frame }
//!  open_stream(NodeId) ─────────────────────▶ accept_stream() -> (PeerIdentity, ByteStream)
//! ```
//!
//! Peers are addressed by `NodeId`, not socket address: a coordinator answers an agent behind
//! NAT over the connection the agent opened.

use std::fmt;

use async_trait::async_trait;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::BoxError;
use crate::ids::NodeId;

/// The role in a peer's certificate (`spiffe://<cluster>/<role>/<node-id>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Role {
    /// A control-plane member.
    Coordinator,
    /// A worker node.
    Agent,
    /// An operator's client.
    Admin,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Coordinator => "coordinator",
            Role::Agent => "agent",
            Role::Admin => "admin",
        })
    }
}

/// Who a peer is, as proven by its certificate (or by construction in the in-memory transport).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct PeerIdentity {
    /// Cluster name.
    pub cluster: String,
    /// Role.
    pub role: Role,
    /// Node id.
    pub node: NodeId,
}

impl PeerIdentity {
    /// The SPIFFE-like URI: `spiffe://<cluster>/<role>/<node-id>`.
    pub fn uri(&self) -> String {
        format!(
            "spiffe://{}/{}/{}",
            self.cluster,
            self.role,
            self.node.get()
        )
    }
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri())
    }
}

/// A message that arrived, with the authenticated sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inbound {
    /// The sender, as authenticated by the transport.
    pub from: PeerIdentity,
    /// The frame.
    pub frame: Bytes,
}

/// Errors of [`Transport`] operations.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// No live connection to that peer (e.g. an agent behind NAT that has not dialed in).
    #[error("not connected to {0}")]
    NotConnected(NodeId),
    /// The peer could not be reached at that address.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        /// Address dialed.
        addr: String,
        /// Why.
        reason: String,
    },
    /// The peer was not authenticated or not authorized.
    #[error("authentication failed: {0}")]
    Auth(String),
    /// The frame exceeds the transport's size limit.
    #[error("frame of {size} bytes exceeds the limit of {limit} bytes")]
    FrameTooLarge {
        /// Frame size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// The connection broke while sending or receiving.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The transport was closed.
    #[error("transport closed")]
    Closed,
    /// Any other implementation error.
    #[error(transparent)]
    Other(BoxError),
}

/// One direction-pair of a byte stream: ordered, reliable chunks until `finish`.
#[async_trait]
pub trait ByteStream: Send + 'static {
    /// Sends a chunk.
    async fn send(&mut self, chunk: Bytes) -> Result<(), TransportError>;
    /// Signals that no more chunks will be sent.
    async fn finish(&mut self) -> Result<(), TransportError>;
    /// The next chunk from the peer; `None` after the peer finished.
    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError>;
}

/// Authenticated, connection-oriented delivery between identified peers.
///
/// # Contract
/// - **Identity**: every inbound message and stream carries the sender's authenticated
///   identity; nothing is delivered from an unauthenticated peer.
/// - **Addressing**: after `connect`, and after a peer connects to us, the peer is addressable by
///   its `NodeId` while the connection lives; otherwise `send` fails with `NotConnected`.
/// - **Frames**: `send` delivers the frame whole or not at all; frames between one pair of peers
///   arrive in send order unless the implementation documents reordering (fault injection).
///   Oversized frames fail with `FrameTooLarge` without affecting the connection.
/// - **Backpressure**: queues are bounded; `send` waits (or fails) rather than growing memory.
/// - `recv` and `accept_stream` are for one consumer each (the RPC layer demultiplexes).
///
/// # Example
///
/// Code above the transport addresses peers by [`NodeId`] and sees who sent what;
/// `cloudless_net::MemTransport` and `cloudless_net::QuicTransport` implement it.
///
/// ```rust
/// use bytes::Bytes;
/// use cloudless_core::ids::NodeId;
/// use cloudless_core::transport::{Role, Transport, TransportError};
///
/// /// Dials `addr`, sends `ping` and returns the first frame a coordinator sends back.
/// async fn ping(t: &dyn Transport, addr: &str) -> Result<Bytes, TransportError> {
///     let peer = t.connect(addr).await?;
///     t.send(peer.node, Bytes::from_static(b"ping")).await?;
///     loop {
///         let inbound = t.recv().await?;
///         if inbound.from.role == Role::Coordinator {
///             return Ok(inbound.frame);
///         }
///     }
/// }
/// ```
/// - No method panics on any input.
#[async_trait]
pub trait Transport: Send + Sync + 'static {
    /// This endpoint's identity.
    fn local(&self) -> &PeerIdentity;
    /// Dials `addr`, authenticates, and returns the peer's identity.
    async fn connect(&self, addr: &str) -> Result<PeerIdentity, TransportError>;
    /// Sends one frame to `to`.
    async fn send(&self, to: NodeId, frame: Bytes) -> Result<(), TransportError>;
    /// The next inbound frame.
    async fn recv(&self) -> Result<Inbound, TransportError>;
    /// Opens a byte stream to `to`.
    async fn open_stream(&self, to: NodeId) -> Result<Box<dyn ByteStream>, TransportError>;
    /// The next byte stream a peer opened to us.
    async fn accept_stream(&self) -> Result<(PeerIdentity, Box<dyn ByteStream>), TransportError>;
    /// Peers with a live connection, by id.
    fn connected_peers(&self) -> Vec<PeerIdentity>;
    /// The largest frame `send` accepts.
    fn max_frame_size(&self) -> usize;
}
