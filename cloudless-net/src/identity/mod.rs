//! Cluster identity: the cluster CA, node certificates with SPIFFE-like identities, the rustls
//! verifiers that enforce them, and join tokens.
//!
//! ```text
//!  ClusterCa::init ──▶ CA cert + key (0600)      NodeKey::generate ──▶ key (0600) + CSR
//!        │                                                               │
//!        └──── issue(CSR, spiffe://<cluster>/<role>/<node-id>) ◀─────────┘
//!                    │
//!                    ▼
//!  NodeCredentials { chain: [leaf, CA], key } ──▶ tls::{server_config, client_config}
//!                                                  (TLS 1.3 only, ring, mTLS, ALPN)
//!  peer cert chain ──▶ spiffe::identity_from_cert ──▶ PeerIdentity
//! ```
//!
//! Every private key is written to a 0600 file and never logged. Join tokens are stored
//! hashed only ([`token`]); the joiner pins the CA by its digest ([`verify::PinnedCaVerifier`]).

pub mod authz;
mod base32;
mod ca;
pub mod enroll;
mod error;
mod files;
pub mod grace;
pub mod handover;
pub mod lock;
mod node;
pub mod renewal;
pub mod renewal_driver;
mod revocation;
pub mod spiffe;
pub mod tls;
pub mod token;
pub mod verify;

pub use ca::{CA_CERT_FILE, CA_KEY_FILE, ClusterCa, DEFAULT_BACKDATE, DEFAULT_NODE_LIFETIME};
pub use error::IdentityError;
pub use files::write_private;
pub use node::{NODE_CERT_FILE, NODE_KEY_FILE, NodeCredentials, NodeKey};
pub use revocation::RevokedNodes;
pub use spiffe::{CaDigest, ca_digest, identity_from_cert};
pub use token::{JoinToken, TokenError, TokenRole};
