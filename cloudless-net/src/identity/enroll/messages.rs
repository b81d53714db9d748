//! Enrollment messages (protobuf, `cloudless.v1` field-numbering rules: append-only).
//!
//! ```text
//! message EnrollRequest  { string token = 1; bytes csr = 2; string name = 3; string role = 4;
//!                          NodeReport report = 5; bytes renew_cert = 6; }
//! message EnrollResponse { bytes cert = 1; bytes ca = 2; uint64 node = 3;
//!                          RefusalCode refusal = 4; string message = 5; }
//! ```

use crate::wire::pb;

/// What a joiner sends: its token, a CSR over its locally generated key, its name, the role
/// it asks for (`agent` or `coordinator`) and its first resource report.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EnrollRequest {
    /// The join token text.
    #[prost(string, tag = "1")]
    pub token: String,
    /// DER certificate signing request.
    #[prost(bytes = "vec", tag = "2")]
    pub csr: Vec<u8>,
    /// The node's human name (unique in the cluster).
    #[prost(string, tag = "3")]
    pub name: String,
    /// Requested role.
    #[prost(string, tag = "4")]
    pub role: String,
    /// Initial resource report.
    #[prost(message, optional, tag = "5")]
    pub report: Option<pb::NodeReport>,
    /// Offline renewal instead of a join: the node's old (possibly expired) certificate; the
    /// CSR must then be signed by that certificate's key, and no token is needed.
    #[prost(bytes = "vec", tag = "6")]
    pub renew_cert: Vec<u8>,
}

/// Why an enrollment was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum RefusalCode {
    /// Not refused.
    None = 0,
    /// The request is malformed (bad token text, CSR, name, role or report).
    BadRequest = 1,
    /// The token is unknown, tampered with, expired, used up or revoked.
    TokenRefused = 2,
    /// The token grants another role than the one requested.
    RoleMismatch = 3,
    /// A node with that name already exists.
    NameTaken = 4,
    /// The cluster cannot serve the request now; retry later.
    Unavailable = 5,
    /// An offline renewal was refused (past the grace window, revoked, unknown node, or the
    /// CSR is not signed by the old certificate's key).
    RenewalRefused = 6,
}

/// The coordinator's answer: the certificate and CA, or a refusal.
#[derive(Clone, PartialEq, prost::Message)]
pub struct EnrollResponse {
    /// DER node certificate (empty when refused).
    #[prost(bytes = "vec", tag = "1")]
    pub cert: Vec<u8>,
    /// DER CA certificate (empty when refused).
    #[prost(bytes = "vec", tag = "2")]
    pub ca: Vec<u8>,
    /// The minted node id.
    #[prost(uint64, tag = "3")]
    pub node: u64,
    /// Why it was refused; `None` on success.
    #[prost(enumeration = "RefusalCode", tag = "4")]
    pub refusal: i32,
    /// Human-readable detail of a refusal.
    #[prost(string, tag = "5")]
    pub message: String,
}
