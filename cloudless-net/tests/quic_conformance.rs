//! QuicTransport on 127.0.0.1 passes the public Transport conformance suite, and the typed RPC
//! layer runs over it unchanged.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod quic_common;

use std::time::{Duration, SystemTime};

use cloudless_core::ids::NodeId;
use cloudless_core::testing::transport::{TransportPair, conformance};
use cloudless_core::transport::{Role, Transport};
use cloudless_net::identity::ClusterCa;
use cloudless_net::rpc::ProtocolVersion;
use cloudless_net::wire::pb;
use cloudless_net::{Method, Router, RpcConfig, RpcEndpoint, RpcError};
use futures::StreamExt;
use quic_common::{bind, creds};

#[tokio::test]
async fn quic_transport_conforms() {
    let ca = ClusterCa::init("conformance", SystemTime::now()).unwrap();
    let (agent, coordinator) = (creds(&ca, Role::Agent, 1), creds(&ca, Role::Coordinator, 2));
    let suite = conformance(|| {
        let a = bind(&agent);
        let b = bind(&coordinator);
        let b_addr = b.local_addr().unwrap().to_string();
        async move { TransportPair { a, b, b_addr } }
    });
    tokio::time::timeout(Duration::from_secs(60), suite)
        .await
        .expect("suite stalled");
}

/// A call's deadline: generous, an answer on a loaded machine can be slow (every call here
/// expects an answer; the one that expects a deadline to pass sets its own).
const CALL: Duration = Duration::from_secs(30);
const INC: Method<pb::NodeId, pb::NodeId> = Method::idempotent("test.v1.Echo/Inc");
const WHOAMI: Method<pb::NodeId, pb::NodeId> = Method::new("test.v1.Echo/WhoAmI");
const SLOW: Method<pb::NodeId, pb::NodeId> = Method::new("test.v1.Echo/Slow");
const COUNT: Method<pb::NodeId, pb::NodeId> = Method::new("test.v1.Echo/Count");

fn router() -> Router {
    let mut r = Router::new();
    r.unary(&INC, |_ctx, req: pb::NodeId| async move {
        Ok(pb::NodeId {
            value: req.value + 1,
        })
    });
    r.unary(&WHOAMI, |ctx, _req: pb::NodeId| async move {
        Ok(pb::NodeId {
            value: ctx.peer.node.get(),
        })
    });
    r.unary(&SLOW, |_ctx, req: pb::NodeId| async move {
        tokio::time::sleep(Duration::from_secs(req.value)).await;
        Ok(req)
    });
    r.server_streaming(&COUNT, |_ctx, req: pb::NodeId| {
        futures::stream::iter((0..req.value).map(|i| Ok(pb::NodeId { value: i })))
    });
    r
}

#[tokio::test]
async fn typed_rpc_runs_over_quic() {
    let ca = ClusterCa::init("rpc", SystemTime::now()).unwrap();
    let agent = bind(&creds(&ca, Role::Agent, 7));
    let coordinator = bind(&creds(&ca, Role::Coordinator, 1));
    let addr = coordinator.local_addr().unwrap().to_string();
    let server = RpcEndpoint::start(coordinator.clone(), router(), RpcConfig::default()).unwrap();
    let client_ep = RpcEndpoint::start(agent.clone(), router(), RpcConfig::default()).unwrap();
    let who = agent.connect(&addr).await.unwrap();
    assert_eq!(who.role, Role::Coordinator);
    let client = client_ep.client();

    // A round trip; the server sees the caller's certificate identity.
    let out = client
        .call(who.node, &INC, pb::NodeId { value: 41 }, CALL)
        .await
        .unwrap();
    assert_eq!(out.value, 42);
    let me = client
        .call(who.node, &WHOAMI, pb::NodeId { value: 0 }, CALL)
        .await;
    assert_eq!(me.unwrap().value, 7);

    // The coordinator calls back over the connection the agent opened.
    let back = server
        .client()
        .call(NodeId(7), &WHOAMI, pb::NodeId { value: 0 }, CALL)
        .await
        .unwrap();
    assert_eq!(back.value, 1);

    // Deadline exceeded.
    let slow = client
        .call(
            who.node,
            &SLOW,
            pb::NodeId { value: 30 },
            Duration::from_millis(200),
        )
        .await;
    assert!(matches!(slow, Err(RpcError::DeadlineExceeded)), "{slow:?}");

    // A server stream delivers every item, then ends.
    let items: Vec<u64> = client
        .call_stream(who.node, &COUNT, pb::NodeId { value: 50 }, CALL)
        .await
        .unwrap()
        .map(|r| r.unwrap().value)
        .collect()
        .await;
    assert_eq!(items, (0..50).collect::<Vec<_>>());
}

#[tokio::test]
async fn an_incompatible_protocol_version_is_rejected_over_quic() {
    let ca = ClusterCa::init("rpc", SystemTime::now()).unwrap();
    let agent = bind(&creds(&ca, Role::Agent, 7));
    let coordinator = bind(&creds(&ca, Role::Coordinator, 1));
    let addr = coordinator.local_addr().unwrap().to_string();
    let _server = RpcEndpoint::start(coordinator.clone(), router(), RpcConfig::default()).unwrap();
    let newer = RpcConfig::default().with_version(ProtocolVersion::new(2, 0));
    let client_ep = RpcEndpoint::start(agent.clone(), router(), newer).unwrap();
    agent.connect(&addr).await.unwrap();
    let got = client_ep
        .client()
        .call(NodeId(1), &INC, pb::NodeId { value: 1 }, CALL)
        .await;
    assert!(
        matches!(got, Err(RpcError::VersionMismatch { .. })),
        "{got:?}"
    );
}

#[tokio::test]
async fn a_dropped_call_is_cancelled_on_the_server() {
    let ca = ClusterCa::init("rpc", SystemTime::now()).unwrap();
    let agent = bind(&creds(&ca, Role::Agent, 7));
    let coordinator = bind(&creds(&ca, Role::Coordinator, 1));
    let addr = coordinator.local_addr().unwrap().to_string();
    let (started_tx, mut started) = tokio::sync::mpsc::unbounded_channel();
    let (dropped_tx, mut dropped) = tokio::sync::mpsc::unbounded_channel();
    let mut r = Router::new();
    r.unary(&SLOW, move |_ctx, req: pb::NodeId| {
        let (started_tx, dropped_tx) = (started_tx.clone(), dropped_tx.clone());
        async move {
            struct Guard(tokio::sync::mpsc::UnboundedSender<()>);
            impl Drop for Guard {
                fn drop(&mut self) {
                    let _ = self.0.send(());
                }
            }
            let _guard = Guard(dropped_tx);
            let _ = started_tx.send(());
            tokio::time::sleep(Duration::from_secs(req.value)).await;
            Ok(req)
        }
    });
    let _server = RpcEndpoint::start(coordinator.clone(), r, RpcConfig::default()).unwrap();
    let client_ep = RpcEndpoint::start(agent.clone(), Router::new(), RpcConfig::default()).unwrap();
    agent.connect(&addr).await.unwrap();
    let client = client_ep.client();
    let call = tokio::spawn(async move {
        client
            .call(NodeId(1), &SLOW, pb::NodeId { value: 60 }, CALL * 4)
            .await
    });
    started.recv().await.unwrap();
    call.abort();
    // The handler is aborted: its guard drops long before its 60 s sleep would end.
    tokio::time::timeout(CALL, dropped.recv())
        .await
        .expect("the server handler was not cancelled")
        .unwrap();
}
