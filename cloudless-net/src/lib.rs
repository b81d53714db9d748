//! # cloudless-net
//!
//! The network layer of Cloudless: protobuf wire types for the core vocabulary, the frame codec,
//! a typed RPC layer that runs over any [`Transport`](cloudless_core::transport::Transport), and
//! [`MemTransport`](mem::MemTransport), the in-memory transport with seeded fault injection.
//!
//! ```text
//!  core value ──From──▶ wire::pb (prost) ──encode──▶ payload bytes
//!                                                       │
//!  RpcClient::call ──▶ Envelope{Request} ──codec::encode_frame──▶ Transport::send
//!                                                                      │
//!  peer: Transport::recv ──▶ reader task ──▶ dispatcher (one task: calls by id, handlers,
//!        hello state) ──▶ Router handler(PeerIdentity, Req) ──▶ Envelope{Response} ──▶ back
//! ```
//!
//! Untrusted bytes are only ever decoded through [`codec`] and [`wire`], which return typed
//! errors and never panic.
//!
//! [`quic::QuicTransport`] is the default transport (QUIC, mutual TLS 1.3 against the cluster
//! CA). [`identity`] holds the cluster CA, node certificates with SPIFFE identities, the TLS
//! verifiers, join tokens, enrollment, renewal, revocation and authorization helpers.

pub mod codec;
pub mod fuzzing;
pub mod mem;
pub mod rpc;
pub mod wire;

pub use codec::{CodecError, FrameCodec, FrameDecoder};
pub use mem::{FaultConfig, MemConfig, MemNetwork, MemTransport};
pub use rpc::{Method, Router, RpcClient, RpcConfig, RpcEndpoint, RpcError, Status, StatusCode};

pub use wire::WireError;
pub mod identity;
pub mod quic;
