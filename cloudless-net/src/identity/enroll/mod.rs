//! Enrollment: a joiner trades a join token and a CSR for a node certificate.
//!
//! ```text
//!  joiner                                         coordinator (enrollment endpoint, own port,
//!  NodeKey::generate (0600) ─ CSR                  ALPN cloudless-enroll/1, no client cert)
//!  QUIC+TLS, PinnedCaVerifier(token digest) ─────▶ presents [coordinator cert, CA]
//!     (nothing is sent unless the CA matches)
//!  EnrollRequest{token, csr, name, role, report} ─▶ UseJoinToken ─▶ role check ─▶ RegisterNode
//!                                                  ─▶ ClusterCa::issue(spiffe://c/<role>/<id>)
//!  NodeCredentials ◀──── EnrollResponse{cert, ca} ◀┘
//! ```
//!
//! The enrollment endpoint is a separate QUIC endpoint that only ever reads one bounded
//! request and writes one response per connection: no Transport, RPC method or stream is
//! reachable through it, so the cluster port keeps requiring a client certificate.

mod client;
mod messages;
mod server;

pub use client::{
    EnrollError, EnrollParams, connect_pinned, enroll, enroll_patiently, renew_offline,
};
pub use messages::{EnrollRequest, EnrollResponse, RefusalCode};
pub use server::{EnrollConfig, EnrollServer, EnrollService, Refusal};

/// ALPN of the enrollment endpoint.
pub const ENROLL_ALPN: &[u8] = b"cloudless-enroll/1";
/// Largest enrollment request or response accepted, in bytes.
pub const MAX_ENROLL_MESSAGE: usize = 64 * 1024;
