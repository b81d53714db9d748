//! A Fabric whose consensus is a `RaftConsensus` member on the Fabric's own transport
//! (`consensus_with` + the raft service on the Fabric's router): both roles in one process run
//! a workload to Running.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod fabric_common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cloudless::coordinator::CoordinatorConfig;
use cloudless::fabric::{Fabric, FabricError};
use cloudless::runtime::FakeRuntime;
use cloudless_core::consensus::Consensus;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::mem::addr_of;
use cloudless_net::{MemNetwork, Router};
use cloudless_store::{RaftConsensus, RaftConsensusConfig, RaftService};
use fabric_common::{agent_config, create_workload, probe, wait_running};

fn coordinator_identity() -> PeerIdentity {
    PeerIdentity {
        cluster: "lab".into(),
        role: Role::Coordinator,
        node: NodeId(1),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raft_member_on_the_fabric_transport_backs_both_roles() {
    let net = MemNetwork::new(11);
    let dir = tempfile::tempdir().unwrap();
    let raft_dir = dir.path().join("raft");
    let service = RaftService::new("lab");
    let mut router = Router::new();
    service.register(&mut router);

    let runtime = FakeRuntime::new();
    let fabric = Fabric::builder()
        .coordinator(CoordinatorConfig::default())
        .router(router)
        .consensus_with(move |transport, client| async move {
            let config = RaftConsensusConfig::new(NodeId(1), "lab", raft_dir);
            let raft = RaftConsensus::start(config, transport, client, &service).await?;
            raft.initialize(BTreeMap::from([(NodeId(1), addr_of(NodeId(1)))]))
                .await?;
            // A fresh single-member cluster elects itself; wait for it before serving.
            let mut metrics = raft.raft().metrics();
            tokio::time::timeout(
                Duration::from_secs(30),
                metrics.wait_for(|m| m.current_leader == Some(1)),
            )
            .await??;
            Ok(Arc::new(raft) as Arc<dyn Consensus>)
        })
        .transport(net.endpoint(coordinator_identity()))
        .agent(agent_config(&dir.path().join("agent")))
        .runtime(runtime)
        .resources(probe())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();

    let consensus = fabric.consensus().unwrap();
    let w = create_workload(consensus.as_ref(), "web").await;
    wait_running(consensus.as_ref(), w).await;
    fabric.shutdown().await;
}

#[tokio::test]
async fn a_failing_consensus_factory_is_a_typed_error_and_needs_a_transport() {
    let dir = tempfile::tempdir().unwrap();
    // Without a transport the factory has nothing to run on.
    let r = Fabric::builder()
        .node(NodeId(1))
        .coordinator(CoordinatorConfig::default())
        .consensus_with(|_, _| async { Err("unused".into()) })
        .agent(agent_config(dir.path()))
        .runtime(FakeRuntime::new())
        .build();
    assert_eq!(r.unwrap_err().missing_block(), Some("transport"));

    let net = MemNetwork::new(12);
    let r = Fabric::builder()
        .coordinator(CoordinatorConfig::default())
        .consensus_with(|_, _| async { Err("disk full".into()) })
        .transport(net.endpoint(coordinator_identity()))
        .build()
        .unwrap()
        .start()
        .await;
    match r {
        Err(FabricError::Consensus(m)) => assert!(m.contains("disk full"), "{m}"),
        other => panic!("expected a consensus error, got {other:?}"),
    }
}
