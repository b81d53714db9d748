//! # cloudless-net
//!
//! The network layer of Cloudless: protobuf wire types for the core vocabulary, the frame codec,
//! a typed RPC layer that runs over any [`Transport`](cloudless_core::transport::Transport), and
//! [`MemTransport`], the in-memory transport with seeded fault injection.
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
//!
//! # Example
//!
//! A typed call between two nodes of an in-memory network; the same code runs over
//! [`quic::QuicTransport`] (see [`quic`] for two QUIC endpoints, [`identity::ClusterCa`] for
//! issuing their certificates).
//!
//! ```rust
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use cloudless_core::ids::NodeId;
//! use cloudless_core::transport::{PeerIdentity, Role, Transport};
//! use cloudless_net::wire::pb;
//! use cloudless_net::{MemNetwork, Method, Router, RpcConfig, RpcEndpoint, Status, StatusCode};
//!
//! // Declared once, used by both sides.
//! const ASSIGNMENTS: Method<pb::ControlAssignmentsRequest, pb::ControlAssignmentSet> =
//!     Method::idempotent("example.v1.Control/Assignments");
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let net = MemNetwork::new(1);
//! let id = |role, n| PeerIdentity { cluster: "home".into(), role, node: NodeId(n) };
//! let coordinator: Arc<dyn Transport> = Arc::new(net.endpoint(id(Role::Coordinator, 1)));
//! let agent: Arc<dyn Transport> = Arc::new(net.endpoint(id(Role::Agent, 2)));
//!
//! let mut router = Router::new();
//! router.unary(&ASSIGNMENTS, |ctx, req: pb::ControlAssignmentsRequest| async move {
//!     // Handlers see who called, as the transport authenticated it.
//!     if ctx.peer.role != Role::Agent {
//!         return Err(Status::new(StatusCode::PermissionDenied, "agents only"));
//!     }
//!     let node = req.node.map_or(0, |n| n.value);
//!     Ok(pb::ControlAssignmentSet { revision: 40 + node, replicas: Vec::new() })
//! });
//! let _server = RpcEndpoint::start(coordinator, router, RpcConfig::default())?;
//! let client = RpcEndpoint::start(Arc::clone(&agent), Router::new(), RpcConfig::default())?;
//!
//! agent.connect("mem://1").await?;
//! let req = pb::ControlAssignmentsRequest { node: Some(pb::NodeId { value: 2 }) };
//! let set = client.client().call(NodeId(1), &ASSIGNMENTS, req, Duration::from_secs(5)).await?;
//! assert_eq!(set.revision, 42);
//! # Ok(())
//! # }
//! ```

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
