//! Credentials and endpoints shared by the QUIC test files.

#![allow(dead_code)] // Each test file uses a different subset.
#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::identity::{ClusterCa, DEFAULT_NODE_LIFETIME, NodeCredentials, NodeKey};
use cloudless_net::quic::{QuicConfig, QuicTransport};

/// The identity of `node` with `role` in `ca`'s cluster.
pub(crate) fn identity(ca: &ClusterCa, role: Role, node: u64) -> PeerIdentity {
    PeerIdentity {
        cluster: ca.cluster().to_owned(),
        role,
        node: NodeId(node),
    }
}

/// Fresh key and a certificate issued at `issued_at`, valid for `lifetime`.
pub(crate) fn issue(
    ca: &ClusterCa,
    role: Role,
    node: u64,
    issued_at: SystemTime,
    lifetime: Duration,
) -> NodeCredentials {
    let key = NodeKey::generate().unwrap();
    let cert = ca
        .issue(
            &key.csr().unwrap(),
            &identity(ca, role, node),
            issued_at,
            lifetime,
        )
        .unwrap();
    NodeCredentials::new(&key, cert, ca.cert().clone()).unwrap()
}

/// Fresh credentials with the default lifetime.
pub(crate) fn creds(ca: &ClusterCa, role: Role, node: u64) -> NodeCredentials {
    issue(ca, role, node, SystemTime::now(), DEFAULT_NODE_LIFETIME)
}

/// A transport on an ephemeral loopback port.
pub(crate) fn bind(c: &NodeCredentials) -> Arc<QuicTransport> {
    let any = "127.0.0.1:0".parse().unwrap();
    Arc::new(QuicTransport::bind(any, c, QuicConfig::default()).unwrap())
}
