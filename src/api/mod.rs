//! The public API server (CLD-REQ-080): gRPC over TLS 1.3 with required client certificates of
//! the cluster CA.
//!
//! ```text
//!  TCP ──rustls (ClusterClientVerifier: cluster CA, SPIFFE identity, revocation)──▶ PeerIdentity
//!      ──tonic (h2, max request size)──▶ Workloads | Nodes | Events | Cluster | Health | Reflection
//!         handler: caller (forwarded-for only from coordinators) ─▶ authz (admin for mutations)
//!                  ─▶ leader? local : forward to the leader's API (or Unavailable + hint)
//!                  ─▶ Consensus (propose / state / watch) ─▶ errors mapped to gRPC codes
//! ```
//!
//! Design record: `docs/design/public-api.md`.

mod auth;
mod cluster;
mod convert;
mod errors;
mod events;
mod gateway;
mod nodes;
mod replicas;
mod server;
mod tls;
mod workloads;

/// The generated messages, servers and clients of `proto/cloudless/v1/api.proto`.
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("cloudless.v1");

    /// The encoded file descriptor set of the API, served by reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] =
        tonic::include_file_descriptor_set!("cloudless_api_descriptor");
}

pub use auth::ApiPeer;
pub use server::{ApiConfig, ApiError, ApiServer, ApiTls, serve};

/// ALPN of the API: plain HTTP/2, so generic gRPC clients connect.
pub const ALPN: &[u8] = b"h2";

/// ALPN of the HTTP/JSON gateway.
pub const GATEWAY_ALPN: &[u8] = b"http/1.1";

/// Metadata key: the field paths of an invalid manifest, comma-separated (InvalidArgument).
pub const FIELD_PATHS_KEY: &str = "cloudless-field-paths";
/// Metadata key: the leader's node id (Unavailable on a member that cannot serve the call).
pub const LEADER_KEY: &str = "cloudless-leader";
/// Metadata key: the leader's API address, when known.
pub const LEADER_ADDR_KEY: &str = "cloudless-leader-addr";
/// Metadata key: the identity a coordinator forwards a call for (accepted only from
/// coordinator certificates).
pub const FORWARDED_FOR_KEY: &str = "cloudless-forwarded-for";

/// Default largest request message accepted (4 MiB; a manifest is at most 1 MiB).
pub const DEFAULT_MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
