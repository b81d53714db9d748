//! The whole stack on real QUIC (127.0.0.1, mutual TLS): a coordinator Fabric with an
//! enrollment endpoint; an agent joins with a token, then runs as an agent Fabric on its
//! enrolled certificate and runs a workload to Running.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod fabric_common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloudless::coordinator::CoordinatorConfig;
use cloudless::fabric::Fabric;
use cloudless::protocol::join::{JoinParams, join};
use cloudless::runtime::FakeRuntime;
use cloudless_core::clock::{Clock, SystemClock};
use cloudless_core::consensus::Consensus;
use cloudless_core::ids::NodeId;
use cloudless_core::node::{NodeReport, Platform};
use cloudless_core::resources::Resources;
use cloudless_core::state::{Command, CommandEnvelope};
use cloudless_core::testing::consensus::MemConsensus;
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::identity::enroll::{EnrollConfig, EnrollServer, EnrollService};
use cloudless_net::identity::{
    ClusterCa, DEFAULT_NODE_LIFETIME, JoinToken, NodeCredentials, NodeKey, TokenRole,
};
use cloudless_net::quic::{QuicConfig, QuicTransport};
use fabric_common::{agent_config, create_workload, probe, wait_running};

fn coordinator_creds(ca: &ClusterCa) -> NodeCredentials {
    let key = NodeKey::generate().unwrap();
    let id = PeerIdentity {
        cluster: ca.cluster().to_owned(),
        role: Role::Coordinator,
        node: NodeId(1),
    };
    let cert = ca
        .issue(
            &key.csr().unwrap(),
            &id,
            SystemTime::now(),
            DEFAULT_NODE_LIFETIME,
        )
        .unwrap();
    NodeCredentials::new(&key, cert, ca.cert().clone()).unwrap()
}

fn bind(c: &NodeCredentials) -> QuicTransport {
    QuicTransport::bind("127.0.0.1:0".parse().unwrap(), c, QuicConfig::default()).unwrap()
}

fn report() -> NodeReport {
    let r = Resources {
        cpu_millis: 4000,
        memory_mib: 8192,
        ..Resources::ZERO
    };
    NodeReport {
        platform: Platform::linux_amd64(),
        region: String::new(),
        zone: "home-1".into(),
        labels: Default::default(),
        capacity: r,
        allocatable: r,
        power: Default::default(),
        reliability: Default::default(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enrolled_agent_fabric_runs_a_workload_from_a_coordinator_fabric_over_quic() {
    let ca = Arc::new(ClusterCa::init("lab", SystemTime::now()).unwrap());
    let consensus = MemConsensus::new();
    let creds = coordinator_creds(&ca);
    let service = EnrollService::new(
        Arc::clone(&ca),
        Arc::new(consensus.clone()),
        Arc::new(SystemClock),
        DEFAULT_NODE_LIFETIME,
    );
    let enroll_server = EnrollServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &creds,
        Arc::new(service),
        EnrollConfig::default(),
    )
    .unwrap();
    let transport = bind(&creds);
    let cluster_addr = transport.local_addr().unwrap().to_string();
    let coordinator = Fabric::builder()
        .coordinator(CoordinatorConfig::default())
        .consensus(consensus.clone())
        .transport(transport)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();

    let token = JoinToken::generate(ca.digest()).unwrap();
    let record = token.record(
        TokenRole::Agent,
        SystemClock.now_ms(),
        Duration::from_secs(600),
        Some(1),
    );
    consensus
        .propose(CommandEnvelope::new(
            SystemClock.now_ms(),
            Command::CreateJoinToken { token: record },
        ))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let joined = join(JoinParams {
        data_dir: dir.path().to_owned(),
        token: Some(token.reveal().to_string()),
        coordinator: enroll_server.local_addr().unwrap(),
        name: "edge-1".into(),
        report: report(),
        timeout: Duration::from_secs(30),
    })
    .await
    .unwrap();
    let me = joined.credentials.identity().node;

    let runtime = FakeRuntime::new();
    let agent = Fabric::builder()
        .agent(agent_config(dir.path()))
        .runtime(runtime.clone())
        .resources(probe())
        .transport(bind(&joined.credentials))
        .coordinator_addr(NodeId(1), cluster_addr)
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    assert_eq!(agent.node(), me);

    let w = create_workload(&consensus, "web").await;
    wait_running(&consensus, w).await;
    let state = consensus.state().await.unwrap();
    let replica = state.replicas.values().find(|r| r.workload == w).unwrap();
    assert_eq!(replica.node, me);

    agent.shutdown().await;
    coordinator.shutdown().await;
}
