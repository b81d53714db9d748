//! `MemTransport`: an in-memory network of identified endpoints with seeded, per-message fault
//! injection (drop, delay with jitter, reorder, partition), for tests and the in-process cluster.
//!
//! ```text
//!  MemNetwork::new(seed) ──endpoint(identity)──▶ MemTransport (one per node)
//!
//!  send(to) ─▶ fault decision (seeded ChaCha, under the network lock) ─▶ link task (from→to)
//!             drop? deliver_at = now + delay + jitter (+ reorder hold)     │ min-heap by time,
//!                                                                         ▼ FIFO on ties
//!                                      partition check at delivery ─▶ inbox of `to` (bounded)
//! ```
//!
//! Time is tokio time, so `tokio::time::pause()` makes delays exact and runs deterministic: the
//! same seed and the same sequence of sends give the same fault decisions.
//!
//! Addressing follows the Transport contract: a peer is addressable only over a connection
//! (`connect("mem://<node-id>")` from either side). An endpoint marked dial-out-only (behind
//! NAT) refuses inbound `connect`, so others get `NotConnected` until it dials them.
//! Byte streams are reliable and in order (no per-chunk faults); a partition prevents opening
//! new streams.
//!
//! ```rust
//! use bytes::Bytes;
//! use cloudless_core::ids::NodeId;
//! use cloudless_core::transport::{PeerIdentity, Role, Transport, TransportError};
//! use cloudless_net::{FaultConfig, MemNetwork};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = MemNetwork::new(7); // the seed of every fault decision
//! let id = |role, n| PeerIdentity { cluster: "home".into(), role, node: NodeId(n) };
//! let coordinator = net.endpoint(id(Role::Coordinator, 1));
//! let agent = net.endpoint(id(Role::Agent, 2));
//!
//! // Only a connection makes a peer addressable, from either side.
//! assert!(matches!(
//!     coordinator.send(NodeId(2), Bytes::from_static(b"hi")).await,
//!     Err(TransportError::NotConnected(_))
//! ));
//! let peer = agent.connect(&coordinator.addr()).await?;
//! assert_eq!((peer.role, peer.node), (Role::Coordinator, NodeId(1)));
//!
//! agent.send(peer.node, Bytes::from_static(b"heartbeat")).await?;
//! let inbound = coordinator.recv().await?;
//! assert_eq!(inbound.from, id(Role::Agent, 2)); // who sent it, as the transport proved
//! assert_eq!(inbound.frame, Bytes::from_static(b"heartbeat"));
//!
//! coordinator.send(NodeId(2), Bytes::from_static(b"ack")).await?;
//! assert_eq!(agent.recv().await?.frame, Bytes::from_static(b"ack"));
//!
//! // Faults are switched on per network (or per link), e.g. 10% loss and 5 ms ± 2 ms delay.
//! use std::time::Duration;
//! net.set_faults(FaultConfig::none().with_drop(0.1).with_delay(Duration::from_millis(5), Duration::from_millis(2)))?;
//! # Ok(())
//! # }
//! ```

mod config;
mod link;
mod network;
mod stream;
mod transport;

pub use config::{FaultConfig, MemConfig, MemConfigError};
pub use network::{MemNetwork, MemStats};
pub use stream::MemByteStream;
pub use transport::{MemTransport, SCHEME, addr_of};
