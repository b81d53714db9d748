//! Typed RPC over any [`Transport`](cloudless_core::transport::Transport).
//!
//! Every envelope travels as one length-prefixed frame ([`crate::codec`]). Before its first
//! call to a peer, a caller exchanges `Hello`/`HelloAck` carrying protocol versions; an
//! incompatible peer fails the call with [`RpcError::VersionMismatch`] naming both versions
//! (see [`version::compatible`]: coordinators accept agents one minor behind). Servers refuse
//! requests from peers without an accepted hello.
//!
//! ```text
//!  RpcClient::call ──Register──▶ Dispatcher ◀──Inbound── reader task ◀── Transport::recv
//!        │ send(Request)             │ Response/StreamItem/StreamEnd → caller by (peer, id)
//!        ▼                           │ Request → Router → handler task (aborted on Cancel)
//!    Transport::send ◀──────────────┘ Hello/HelloAck → version check
//! ```

mod client;
mod config;
mod dispatch;
mod endpoint;
mod error;
mod hello;
mod method;
mod router;
mod serve;
mod status;
pub mod version;

pub use client::{CallStream, RpcClient};
pub use config::{RetryPolicy, RpcConfig, RpcConfigError};
pub use endpoint::RpcEndpoint;
pub use error::RpcError;
pub use method::Method;
pub use router::{RequestContext, Router};
pub use status::{Status, StatusCode};
pub use version::ProtocolVersion;
