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

mod config;
mod link;
mod network;
mod stream;
mod transport;

pub use config::{FaultConfig, MemConfig, MemConfigError};
pub use network::{MemNetwork, MemStats};
pub use stream::MemByteStream;
pub use transport::{MemTransport, SCHEME, addr_of};
