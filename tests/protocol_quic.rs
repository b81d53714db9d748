//! The control protocol on real QUIC (loopback, mutual TLS against the cluster CA): an agent
//! joins with a token (key stored 0600, reused on the next start without enrolling again),
//! heartbeats with the certificate it received, and a second agent is refused when it acts
//! for the first.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod protocol_common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloudless::control::{ControlError, ControlPlane};
use cloudless::protocol::join::{IDENTITY_DIR, JoinError, JoinParams, join};
use cloudless::protocol::{CoordinatorAddr, RpcControlConfig, RpcControlPlane, register_control};
use cloudless_core::clock::{Clock, SystemClock};
use cloudless_core::consensus::Consensus;
use cloudless_core::ids::NodeId;
use cloudless_core::state::{Command, CommandEnvelope};
use cloudless_core::testing::consensus::MemConsensus;
use cloudless_core::transport::{PeerIdentity, Role, Transport};
use cloudless_net::identity::enroll::{EnrollConfig, EnrollServer, EnrollService};
use cloudless_net::identity::{
    ClusterCa, DEFAULT_NODE_LIFETIME, JoinToken, NODE_KEY_FILE, NodeCredentials, NodeKey, TokenRole,
};
use cloudless_net::quic::{QuicConfig, QuicTransport};
use cloudless_net::{Router, RpcConfig, RpcEndpoint};
use protocol_common::{Call, Double, ack, node_report};

/// A call's deadline: generous, a handshake on a loaded machine can be slow.
const WAIT: Duration = Duration::from_secs(30);

fn creds(ca: &ClusterCa, role: Role, node: u64) -> NodeCredentials {
    let key = NodeKey::generate().unwrap();
    let id = PeerIdentity {
        cluster: ca.cluster().to_owned(),
        role,
        node: NodeId(node),
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

fn bind(c: &NodeCredentials) -> Arc<QuicTransport> {
    let any = "127.0.0.1:0".parse().unwrap();
    Arc::new(QuicTransport::bind(any, c, QuicConfig::default()).unwrap())
}

/// An agent's transport, RPC endpoint and control plane towards the coordinator.
fn agent(c: &NodeCredentials, coordinator: &CoordinatorAddr) -> (RpcEndpoint, RpcControlPlane) {
    let t: Arc<dyn Transport> = bind(c);
    let ep = RpcEndpoint::start(Arc::clone(&t), Router::new(), RpcConfig::default()).unwrap();
    let cp = RpcControlPlane::new(
        t,
        ep.client(),
        vec![coordinator.clone()],
        RpcControlConfig::default(),
    )
    .unwrap();
    (ep, cp)
}

#[tokio::test]
async fn an_agent_joins_heartbeats_over_mtls_and_another_agent_cannot_act_for_it() {
    // The cluster: CA, consensus (for tokens and node ids), one coordinator with its
    // enrollment endpoint and its cluster transport serving the control protocol.
    let ca = Arc::new(ClusterCa::init("lab", SystemTime::now()).unwrap());
    let consensus = Arc::new(MemConsensus::new());
    let coord_creds = creds(&ca, Role::Coordinator, 1);
    let service = EnrollService::new(
        Arc::clone(&ca),
        consensus.clone(),
        Arc::new(SystemClock),
        DEFAULT_NODE_LIFETIME,
    );
    let enroll_server = EnrollServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &coord_creds,
        Arc::new(service),
        EnrollConfig::default(),
    )
    .unwrap();
    let coord_t = bind(&coord_creds);
    let coordinator = CoordinatorAddr::new(NodeId(1), coord_t.local_addr().unwrap().to_string());
    let double = Arc::new(Double::new());
    let mut router = Router::new();
    register_control(&mut router, double.clone());
    let _server = RpcEndpoint::start(coord_t, router, RpcConfig::default()).unwrap();

    let token = JoinToken::generate(ca.digest()).unwrap();
    let record = token.record(TokenRole::Agent, SystemClock.now_ms(), WAIT * 60, Some(1));
    consensus
        .propose(CommandEnvelope::new(
            SystemClock.now_ms(),
            Command::CreateJoinToken { token: record },
        ))
        .await
        .unwrap();

    // First start: enrolls, stores the key 0600 and the certificate.
    let dir = tempfile::tempdir().unwrap();
    let params = JoinParams {
        data_dir: dir.path().to_owned(),
        token: Some(token.reveal().to_string()),
        coordinator: enroll_server.local_addr().unwrap(),
        name: "edge-1".into(),
        report: node_report(),
        timeout: WAIT,
    };
    let first = join(params.clone()).await.unwrap();
    assert!(first.enrolled);
    let me = first.credentials.identity().clone();
    assert_eq!(me.role, Role::Agent);
    let key_mode = std::fs::metadata(dir.path().join(IDENTITY_DIR).join(NODE_KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600);

    // Later start: reuses the stored identity; the single-use token is not spent again.
    let again = join(JoinParams {
        token: None,
        ..params.clone()
    })
    .await
    .unwrap();
    assert!(!again.enrolled);
    assert_eq!(again.credentials.identity(), &me);
    assert_eq!(again.credentials.cert(), first.credentials.cert());
    let uses = consensus.state().await.unwrap().join_tokens[token.id()].uses;
    assert_eq!(uses, 1);

    // A fresh node without a token cannot join.
    let empty = tempfile::tempdir().unwrap();
    let r = join(JoinParams {
        data_dir: empty.path().to_owned(),
        token: None,
        ..params
    })
    .await;
    assert!(matches!(r, Err(JoinError::TokenRequired)), "{r:?}");

    // The enrolled agent heartbeats with its certificate; the coordinator sees its identity.
    let (_ep1, cp1) = agent(&again.credentials, &coordinator);
    assert_eq!(cp1.heartbeat(me.node, &node_report()).await.unwrap(), ack());
    assert_eq!(
        double.calls(),
        vec![Call::Heartbeat(me.node, node_report())]
    );

    // A second agent with a valid certificate may not act for the first.
    let other = me.node.get() + 1000;
    let (_ep2, cp2) = agent(&creds(&ca, Role::Agent, other), &coordinator);
    let r = cp2.heartbeat(me.node, &node_report()).await;
    assert!(matches!(r, Err(ControlError::PermissionDenied(_))), "{r:?}");
    let r = cp2.assignments(me.node).await;
    assert!(matches!(r, Err(ControlError::PermissionDenied(_))), "{r:?}");
    assert_eq!(
        double.calls().len(),
        1,
        "the refused calls reached the control plane"
    );
    // ... while acting as itself works.
    cp2.heartbeat(NodeId(other), &node_report()).await.unwrap();
    assert_eq!(double.calls().len(), 2);

    // Heartbeat round trip on loopback (debug build; informative, not asserted).
    let mut rtts = Vec::new();
    for _ in 0..200 {
        let t0 = std::time::Instant::now();
        cp1.heartbeat(me.node, &node_report()).await.unwrap();
        rtts.push(t0.elapsed());
    }
    rtts.sort();
    eprintln!(
        "control heartbeat round trip over QUIC loopback: P50 {:?}, P99 {:?} (200 calls)",
        rtts[rtts.len() / 2],
        rtts[rtts.len() * 99 / 100]
    );
}
