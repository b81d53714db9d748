//! A running Fabric: both roles in one process, and a coordinator process plus an agent
//! process over `MemTransport`, each running a workload to Running. Shutdown leaves the
//! agent's containers running.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod fabric_common;

use cloudless::coordinator::CoordinatorConfig;
use cloudless::fabric::Fabric;
use cloudless::runtime::FakeRuntime;
use cloudless_core::consensus::Consensus;
use cloudless_core::ids::NodeId;
use cloudless_core::runtime::{ContainerState, Runtime};
use cloudless_core::testing::consensus::MemConsensus;
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::MemNetwork;
use cloudless_net::mem::addr_of;
use fabric_common::{agent_config, create_workload, probe, wait_running};

fn id(role: Role, n: u64) -> PeerIdentity {
    PeerIdentity {
        cluster: "lab".into(),
        role,
        node: NodeId(n),
    }
}

async fn running_containers(rt: &FakeRuntime) -> usize {
    rt.list()
        .await
        .unwrap()
        .iter()
        .filter(|c| c.state == ContainerState::Running)
        .count()
}

#[tokio::test(start_paused = true)]
async fn both_roles_in_one_process_run_a_workload() {
    let dir = tempfile::tempdir().unwrap();
    let consensus = MemConsensus::new();
    let runtime = FakeRuntime::new();
    let fabric = Fabric::builder()
        .node(NodeId(1))
        .coordinator(CoordinatorConfig::default())
        .consensus(consensus.clone())
        .agent(agent_config(dir.path()))
        .runtime(runtime.clone())
        .resources(probe())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    assert!(fabric.coordinator().is_some() && fabric.agent().is_some());
    assert!(fabric.object_store().is_none() && fabric.secret_store().is_none());

    let w = create_workload(&consensus, "web").await;
    wait_running(&consensus, w).await;
    assert_eq!(running_containers(&runtime).await, 1);

    fabric.shutdown().await;
    assert_eq!(
        running_containers(&runtime).await,
        1,
        "stopping the agent stopped its container"
    );
}

#[tokio::test(start_paused = true)]
async fn a_coordinator_process_and_an_agent_process_over_mem_transport_run_a_workload() {
    let net = MemNetwork::new(7);
    let consensus = MemConsensus::new();
    let coordinator = Fabric::builder()
        .coordinator(CoordinatorConfig::default())
        .consensus(consensus.clone())
        .transport(net.endpoint(id(Role::Coordinator, 1)))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    assert_eq!(coordinator.node(), NodeId(1));
    assert!(coordinator.agent().is_none());

    let dir = tempfile::tempdir().unwrap();
    let runtime = FakeRuntime::new();
    let agent = Fabric::builder()
        .agent(agent_config(dir.path()))
        .runtime(runtime.clone())
        .resources(probe())
        .transport(net.endpoint(id(Role::Agent, 5)))
        .coordinator_addr(NodeId(1), addr_of(NodeId(1)))
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    assert!(agent.coordinator().is_none());

    let w = create_workload(&consensus, "web").await;
    wait_running(&consensus, w).await;
    let state = consensus.state().await.unwrap();
    let replica = state.replicas.values().find(|r| r.workload == w).unwrap();
    assert_eq!(replica.node, NodeId(5), "placed on the remote agent");
    assert!(state.nodes.contains_key(&NodeId(5)));
    assert_eq!(running_containers(&runtime).await, 1);
    let snapshot = agent.agent_snapshot().unwrap();
    assert!(snapshot.control_reachable);
    assert!(snapshot.heartbeats_acked > 0);

    agent.shutdown().await;
    assert_eq!(running_containers(&runtime).await, 1);
    coordinator.shutdown().await;
}
