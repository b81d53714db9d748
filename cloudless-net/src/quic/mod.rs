//! [`QuicTransport`]: the default [`Transport`](cloudless_core::transport::Transport), on
//! quinn + rustls (TLS 1.3 only, ring, mutual TLS against the cluster CA, ALPN `cloudless/1`).
//!
//! ```text
//!  connect(addr) ─QUIC handshake (mTLS)─▶ both open a frame stream (uni, header "CLDF\x01")
//!                                         and read the peer's: a client the server refused
//!                                         learns it here, as TransportError::Auth
//!  send(node, frame) ─▶ per-connection bounded queue ─▶ writer: u32 len + bytes on our uni
//!  peer reader: len-prefixed frames ─▶ bounded inbox ─▶ recv() -> Inbound{from: cert identity}
//!  open_stream(node) ─▶ bidi QUIC stream, header 'S' ─▶ accept_stream() on the peer
//! ```
//!
//! Two endpoints on loopback, each with a certificate from the same cluster CA:
//!
//! ```rust
//! use std::time::{Duration, SystemTime};
//!
//! use bytes::Bytes;
//! use cloudless_core::ids::NodeId;
//! use cloudless_core::transport::{PeerIdentity, Role, Transport};
//! use cloudless_net::identity::{ClusterCa, DEFAULT_NODE_LIFETIME, NodeCredentials, NodeKey};
//! use cloudless_net::quic::{QuicConfig, QuicTransport};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = SystemTime::now();
//! let ca = ClusterCa::init("home", now)?;
//! let creds = |role, node| -> Result<NodeCredentials, Box<dyn std::error::Error>> {
//!     let key = NodeKey::generate()?;
//!     let id = PeerIdentity { cluster: "home".into(), role, node: NodeId(node) };
//!     let cert = ca.issue(&key.csr()?, &id, now, DEFAULT_NODE_LIFETIME)?;
//!     Ok(NodeCredentials::new(&key, cert, ca.cert().clone())?)
//! };
//!
//! let config = QuicConfig::default().with_idle_timeout(Duration::from_secs(30), Duration::from_secs(5));
//! config.validate()?;
//! let coordinator = QuicTransport::bind("127.0.0.1:0".parse()?, &creds(Role::Coordinator, 1)?, config.clone())?;
//! let agent = QuicTransport::bind("127.0.0.1:0".parse()?, &creds(Role::Agent, 2)?, config)?;
//!
//! // Mutual TLS: each side learns the other's identity from its certificate.
//! let peer = agent.connect(&coordinator.local_addr()?.to_string()).await?;
//! assert_eq!((peer.role, peer.node), (Role::Coordinator, NodeId(1)));
//! agent.send(NodeId(1), Bytes::from_static(b"hello")).await?;
//! let inbound = coordinator.recv().await?;
//! assert_eq!((inbound.from.role, &inbound.frame[..]), (Role::Agent, &b"hello"[..]));
//!
//! agent.close();
//! coordinator.close();
//! # Ok(())
//! # }
//! ```

mod config;
mod error;
mod frames;
mod peers;
mod stream;
mod transport;

pub use config::{QuicConfig, QuicConfigError};
pub use error::QuicError;
pub use stream::QuicByteStream;
pub use transport::{ALPN, QuicTransport};
