//! Authorization and revocation on real QUIC (loopback): a second agent cannot act for the
//! first; admin-only calls refuse nodes; a revoked node loses its connection and cannot
//! reconnect.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod quic_common;

use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{Role, Transport, TransportError};
use cloudless_net::identity::ClusterCa;
use cloudless_net::identity::authz::{require_admin, require_self};
use cloudless_net::wire::pb;
use cloudless_net::{Method, Router, RpcConfig, RpcEndpoint, RpcError, StatusCode};
use quic_common::{bind, creds};

/// A call's deadline: generous, an answer on a loaded machine can be slow (every call here
/// expects an answer; the one that expects a deadline to pass sets its own).
const CALL: Duration = Duration::from_secs(30);
const HEARTBEAT: Method<pb::NodeId, pb::NodeId> = Method::new("test.v1.Agent/Heartbeat");
const DRAIN: Method<pb::NodeId, pb::NodeId> = Method::new("test.v1.Admin/Drain");

fn router() -> Router {
    let mut r = Router::new();
    // The request names the node the caller claims to act for.
    r.unary(&HEARTBEAT, |ctx, req: pb::NodeId| async move {
        require_self(&ctx.peer, NodeId(req.value))?;
        Ok(req)
    });
    r.unary(&DRAIN, |ctx, req: pb::NodeId| async move {
        require_admin(&ctx.peer)?;
        Ok(req)
    });
    r
}

fn denied<T: std::fmt::Debug>(r: Result<T, RpcError>) {
    match r {
        Err(RpcError::Status {
            code: StatusCode::PermissionDenied,
            ..
        }) => {}
        other => panic!("expected PermissionDenied, got {other:?}"),
    }
}

#[tokio::test]
async fn an_agent_may_only_act_as_itself_and_admin_calls_need_an_admin() {
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let coordinator = bind(&creds(&ca, Role::Coordinator, 1));
    let addr = coordinator.local_addr().unwrap().to_string();
    let _server = RpcEndpoint::start(coordinator.clone(), router(), RpcConfig::default()).unwrap();

    let mut clients = Vec::new();
    for (role, n) in [(Role::Agent, 10), (Role::Agent, 11), (Role::Admin, 0)] {
        let t = bind(&creds(&ca, role, n));
        t.connect(&addr).await.unwrap();
        let ep = RpcEndpoint::start(t, Router::new(), RpcConfig::default()).unwrap();
        clients.push(ep);
    }
    let (first, second, admin) = (
        clients[0].client(),
        clients[1].client(),
        clients[2].client(),
    );
    let me = pb::NodeId { value: 10 };
    assert_eq!(
        first.call(NodeId(1), &HEARTBEAT, me, CALL).await.unwrap(),
        me
    );
    denied(second.call(NodeId(1), &HEARTBEAT, me, CALL).await);
    denied(admin.call(NodeId(1), &HEARTBEAT, me, CALL).await);
    denied(first.call(NodeId(1), &DRAIN, me, CALL).await);
    assert_eq!(admin.call(NodeId(1), &DRAIN, me, CALL).await.unwrap(), me);
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn a_revoked_node_loses_its_connection_and_cannot_reconnect() {
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let coordinator = bind(&creds(&ca, Role::Coordinator, 1));
    let addr = coordinator.local_addr().unwrap().to_string();
    let agent = bind(&creds(&ca, Role::Agent, 5));
    let other = bind(&creds(&ca, Role::Agent, 6));
    agent.connect(&addr).await.unwrap();
    other.connect(&addr).await.unwrap();
    agent
        .send(NodeId(1), Bytes::from_static(b"hi"))
        .await
        .unwrap();
    assert_eq!(coordinator.recv().await.unwrap().from.node, NodeId(5));

    coordinator.revoke(NodeId(5));
    wait_until("the agent sees its connection closed", || {
        agent.connected_peers().is_empty()
    })
    .await;
    // A send re-dials and is refused; so is an explicit connect.
    let sent = agent.send(NodeId(1), Bytes::from_static(b"again")).await;
    assert!(matches!(sent, Err(TransportError::Auth(_))), "{sent:?}");
    let again = agent.connect(&addr).await;
    assert!(matches!(again, Err(TransportError::Auth(_))), "{again:?}");
    let peers: Vec<NodeId> = coordinator
        .connected_peers()
        .iter()
        .map(|p| p.node)
        .collect();
    assert_eq!(peers, [NodeId(6)], "only the other agent stays connected");
    // The coordinator cannot reach the revoked node either.
    let back = coordinator.send(NodeId(5), Bytes::from_static(b"x")).await;
    assert!(
        matches!(back, Err(TransportError::NotConnected(_))),
        "{back:?}"
    );
    other
        .send(NodeId(1), Bytes::from_static(b"ok"))
        .await
        .unwrap();
    assert_eq!(coordinator.recv().await.unwrap().from.node, NodeId(6));
}
