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
