//! `Fabric::builder()` validation: every missing block or setting is a typed error naming it.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod fabric_common;

use cloudless::coordinator::CoordinatorConfig;
use cloudless::fabric::{Fabric, FabricError};
use cloudless::runtime::FakeRuntime;
use cloudless_core::ids::NodeId;
use cloudless_core::testing::consensus::MemConsensus;
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::MemNetwork;
use fabric_common::agent_config;

fn missing(r: Result<Fabric, FabricError>) -> &'static str {
    match r {
        Err(e) => e
            .missing_block()
            .unwrap_or_else(|| panic!("expected a missing block, got {e}")),
        Ok(f) => panic!("expected an error, got {f:?}"),
    }
}

fn id(role: Role, n: u64) -> PeerIdentity {
    PeerIdentity {
        cluster: "lab".into(),
        role,
        node: NodeId(n),
    }
}

#[tokio::test]
async fn missing_blocks_are_named() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        Fabric::builder().build(),
        Err(FabricError::NoRole)
    ));

    // Agent role without a runtime.
    let r = Fabric::builder()
        .node(NodeId(1))
        .coordinator(CoordinatorConfig::default())
        .consensus(MemConsensus::new())
        .agent(agent_config(dir.path()))
        .build();
    let err = r.unwrap_err();
    assert_eq!(err.missing_block(), Some("runtime"));
    assert!(
        err.to_string().contains("agent role needs runtime"),
        "{err}"
    );

    // Coordinator role without a consensus: no in-memory default.
    let r = Fabric::builder()
        .node(NodeId(1))
        .coordinator(CoordinatorConfig::default())
        .agent(agent_config(dir.path()))
        .runtime(FakeRuntime::new())
        .build();
    assert_eq!(missing(r), "consensus");

    // No node id and no transport to take it from.
    let r = Fabric::builder()
        .coordinator(CoordinatorConfig::default())
        .consensus(MemConsensus::new())
        .agent(agent_config(dir.path()))
        .runtime(FakeRuntime::new())
        .build();
    assert_eq!(missing(r), "node");

    // A coordinator alone must be reachable: it needs a transport.
    let r = Fabric::builder()
        .node(NodeId(1))
        .coordinator(CoordinatorConfig::default())
        .consensus(MemConsensus::new())
        .build();
    assert_eq!(missing(r), "transport");

    // An agent alone needs a transport and the coordinators' addresses.
    let r = Fabric::builder()
        .node(NodeId(5))
        .agent(agent_config(dir.path()))
        .runtime(FakeRuntime::new())
        .build();
    assert_eq!(missing(r), "transport");
    let net = MemNetwork::new(1);
    let r = Fabric::builder()
        .agent(agent_config(dir.path()))
        .runtime(FakeRuntime::new())
        .transport(net.endpoint(id(Role::Agent, 5)))
        .build();
    assert_eq!(missing(r), "coordinator_addr");
}

#[tokio::test]
async fn defaults_fill_the_rest_and_identities_must_fit() {
    let dir = tempfile::tempdir().unwrap();
    let net = MemNetwork::new(2);

    // Both roles with only consensus + runtime: scheduler, clock, probe are defaulted.
    let f = Fabric::builder()
        .node(NodeId(1))
        .coordinator(CoordinatorConfig::default())
        .consensus(MemConsensus::new())
        .agent(agent_config(dir.path()))
        .runtime(FakeRuntime::new())
        .build()
        .unwrap();
    assert_eq!(f.node(), NodeId(1));

    // The node id comes from the transport.
    let f = Fabric::builder()
        .agent(agent_config(dir.path()))
        .runtime(FakeRuntime::new())
        .transport(net.endpoint(id(Role::Agent, 7)))
        .coordinator_addr(NodeId(1), "mem://1")
        .build()
        .unwrap();
    assert_eq!(f.node(), NodeId(7));

    // ... and must agree with an explicit one.
    let r = Fabric::builder()
        .node(NodeId(8))
        .agent(agent_config(dir.path()))
        .runtime(FakeRuntime::new())
        .transport(net.endpoint(id(Role::Agent, 9)))
        .coordinator_addr(NodeId(1), "mem://1")
        .build();
    assert!(matches!(r, Err(FabricError::Identity(_))), "{r:?}");

    // A coordinator needs a coordinator identity on its transport.
    let r = Fabric::builder()
        .coordinator(CoordinatorConfig::default())
        .consensus(MemConsensus::new())
        .transport(net.endpoint(id(Role::Agent, 10)))
        .build();
    match r {
        Err(FabricError::Identity(m)) => assert!(m.contains("coordinator identity"), "{m}"),
        other => panic!("expected an identity error, got {other:?}"),
    }
}
