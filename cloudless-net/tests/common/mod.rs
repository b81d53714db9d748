//! Helpers shared by the integration tests.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role, Transport};
use cloudless_net::mem::{MemNetwork, MemTransport, addr_of};

/// The identity of node `n` in cluster `test`.
pub fn id(n: u64, role: Role) -> PeerIdentity {
    PeerIdentity {
        cluster: "test".into(),
        role,
        node: NodeId(n),
    }
}

/// Two endpoints, the agent `a` (node 1) connected to the coordinator `b` (node 2).
pub async fn connected_pair(net: &MemNetwork) -> (Arc<MemTransport>, Arc<MemTransport>) {
    let a = Arc::new(net.endpoint(id(1, Role::Agent)));
    let b = Arc::new(net.endpoint(id(2, Role::Coordinator)));
    a.connect(&addr_of(NodeId(2))).await.expect("connect");
    (a, b)
}
