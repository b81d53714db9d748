//! MemTransport (without faults) passes the public Transport conformance suite.

use std::sync::Arc;
use std::time::Duration;

use cloudless_core::ids::NodeId;
use cloudless_core::testing::transport::{TransportPair, conformance};
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::mem::{MemNetwork, addr_of};

fn id(n: u64, role: Role) -> PeerIdentity {
    PeerIdentity {
        cluster: "conformance".into(),
        role,
        node: NodeId(n),
    }
}

#[tokio::test(start_paused = true)]
async fn mem_transport_conforms() {
    let mut seed = 0;
    let suite = conformance(move || {
        seed += 1;
        let net = MemNetwork::new(seed);
        async move {
            TransportPair {
                a: Arc::new(net.endpoint(id(1, Role::Agent))),
                b: Arc::new(net.endpoint(id(2, Role::Coordinator))),
                b_addr: addr_of(NodeId(2)),
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(60), suite)
        .await
        .expect("suite stalled");
}
