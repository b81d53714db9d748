//! The control protocol over `MemTransport` with a test-double `ControlPlane`: round trips of
//! all three calls, authorization by the authenticated identity, NotLeader hints, rotation and
//! recovery when a coordinator is unreachable.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod protocol_common;

use std::sync::Arc;
use std::time::Duration;

use cloudless::control::{ControlError, ControlPlane};
use cloudless::protocol::{
    CoordinatorAddr, HEARTBEAT, REPORT, RpcControlConfig, RpcControlPlane, register_control,
};
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role, Transport};
use cloudless_net::mem::addr_of;
use cloudless_net::wire::pb;
use cloudless_net::{MemNetwork, Router, RpcConfig, RpcEndpoint, RpcError, StatusCode};
use protocol_common::{Call, Double, Mode, ack, assignments, node_report, reports};

const AGENT: u64 = 10;

fn identity(role: Role, n: u64) -> PeerIdentity {
    PeerIdentity {
        cluster: "lab".into(),
        role,
        node: NodeId(n),
    }
}

/// A coordinator endpoint serving `control`.
fn coordinator(net: &MemNetwork, n: u64, control: Arc<Double>) -> RpcEndpoint {
    let t: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Coordinator, n)));
    let mut router = Router::new();
    register_control(&mut router, control);
    RpcEndpoint::start(t, router, RpcConfig::default()).unwrap()
}

/// An endpoint with `role` and its control plane towards `coordinators`.
fn client(
    net: &MemNetwork,
    role: Role,
    n: u64,
    coordinators: &[u64],
) -> (RpcEndpoint, RpcControlPlane) {
    let t: Arc<dyn Transport> = Arc::new(net.endpoint(identity(role, n)));
    let ep = RpcEndpoint::start(Arc::clone(&t), Router::new(), RpcConfig::default()).unwrap();
    let coords = coordinators
        .iter()
        .map(|&c| CoordinatorAddr::new(NodeId(c), addr_of(NodeId(c))))
        .collect();
    let config = RpcControlConfig {
        call_timeout: Duration::from_millis(500),
        max_redirects: 3,
    };
    let cp = RpcControlPlane::new(t, ep.client(), coords, config).unwrap();
    (ep, cp)
}

#[tokio::test(start_paused = true)]
async fn all_three_calls_round_trip_for_the_authenticated_node() {
    let net = MemNetwork::new(1);
    let double = Arc::new(Double::new());
    let _c = coordinator(&net, 1, Arc::clone(&double));
    let (_ep, cp) = client(&net, Role::Agent, AGENT, &[1]);
    let me = NodeId(AGENT);

    assert_eq!(cp.heartbeat(me, &node_report()).await.unwrap(), ack());
    assert_eq!(cp.assignments(me).await.unwrap(), assignments(me));
    cp.report(me, reports()).await.unwrap();
    cp.report(me, Vec::new()).await.unwrap();

    assert_eq!(
        double.calls(),
        vec![
            Call::Heartbeat(me, node_report()),
            Call::Assignments(me),
            Call::Report(me, reports()),
            Call::Report(me, Vec::new()),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn an_agent_acting_for_another_node_is_refused() {
    let net = MemNetwork::new(2);
    let double = Arc::new(Double::new());
    let _c = coordinator(&net, 1, Arc::clone(&double));
    let (_ep, cp) = client(&net, Role::Agent, AGENT, &[1]);

    let other = NodeId(AGENT + 1);
    for r in [
        cp.heartbeat(other, &node_report()).await.map(drop),
        cp.assignments(other).await.map(drop),
        cp.report(other, reports()).await,
    ] {
        assert!(
            matches!(r, Err(ControlError::PermissionDenied(ref m)) if m.contains("may not act for node 11")),
            "{r:?}"
        );
    }
    assert!(double.calls().is_empty(), "the control plane was called");

    // An admin identity never acts as a node, not even "as itself".
    let (_ep, admin) = client(&net, Role::Admin, 20, &[1]);
    let r = admin.heartbeat(NodeId(20), &node_report()).await;
    assert!(matches!(r, Err(ControlError::PermissionDenied(_))), "{r:?}");
    assert!(double.calls().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_request_without_a_node_field_acts_for_the_caller() {
    let net = MemNetwork::new(3);
    let double = Arc::new(Double::new());
    let _c = coordinator(&net, 1, Arc::clone(&double));
    let t: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Agent, AGENT)));
    let ep = RpcEndpoint::start(Arc::clone(&t), Router::new(), RpcConfig::default()).unwrap();
    t.connect(&addr_of(NodeId(1))).await.unwrap();
    let rpc = ep.client();
    let sec = Duration::from_secs(1);

    let req = pb::ControlReport {
        node: None,
        reports: Vec::new(),
    };
    rpc.call(NodeId(1), &REPORT, req, sec).await.unwrap();
    assert_eq!(
        double.calls(),
        vec![Call::Report(NodeId(AGENT), Vec::new())]
    );

    // A malformed report is refused naming the field, before the control plane sees it.
    let req = pb::ControlHeartbeat {
        node: Some(pb::NodeId { value: AGENT }),
        report: None,
    };
    match rpc.call(NodeId(1), &HEARTBEAT, req, sec).await {
        Err(RpcError::Status {
            code: StatusCode::InvalidArgument,
            message,
        }) => assert!(message.contains("report"), "{message}"),
        other => panic!("expected InvalidArgument, got {other:?}"),
    }
    assert_eq!(double.calls().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn not_leader_hints_are_followed_to_the_leader_and_remembered() {
    let net = MemNetwork::new(4);
    let follower = Arc::new(Double::failing(ControlError::NotLeader {
        leader: Some(NodeId(3)),
    }));
    let other = Arc::new(Double::new());
    let leader = Arc::new(Double::new());
    let _c1 = coordinator(&net, 1, Arc::clone(&follower));
    let _c2 = coordinator(&net, 2, Arc::clone(&other));
    let _c3 = coordinator(&net, 3, Arc::clone(&leader));
    let (_ep, cp) = client(&net, Role::Agent, AGENT, &[1, 2, 3]);
    let me = NodeId(AGENT);

    assert_eq!(cp.heartbeat(me, &node_report()).await.unwrap(), ack());
    assert_eq!(follower.calls().len(), 1);
    assert!(
        other.calls().is_empty(),
        "coordinator 2 was skipped by the hint"
    );
    assert_eq!(leader.calls(), vec![Call::Heartbeat(me, node_report())]);
    assert_eq!(cp.current(), NodeId(3));

    // Later calls go straight to the leader.
    cp.assignments(me).await.unwrap();
    cp.report(me, reports()).await.unwrap();
    assert_eq!(follower.calls().len(), 1);
    assert_eq!(leader.calls().len(), 3);

    // No coordinator knows a leader: the agent gets NotLeader (retryable) without a hint.
    for d in [&follower, &other, &leader] {
        d.set_mode(Mode::Fail(ControlError::NotLeader { leader: None }));
    }
    let r = cp.heartbeat(me, &node_report()).await;
    assert_eq!(r, Err(ControlError::NotLeader { leader: None }));
}

#[tokio::test(start_paused = true)]
async fn coordinator_down_is_unavailable_then_calls_recover() {
    let net = MemNetwork::new(5);
    let double = Arc::new(Double::new());
    let coord = coordinator(&net, 1, Arc::clone(&double));
    let (_ep, cp) = client(&net, Role::Agent, AGENT, &[1]);
    let me = NodeId(AGENT);
    cp.heartbeat(me, &node_report()).await.unwrap();

    // The coordinator process goes away.
    drop(coord);
    let r = cp.heartbeat(me, &node_report()).await;
    assert!(matches!(r, Err(ControlError::Unavailable(_))), "{r:?}");

    // It comes back (same node id, fresh process): the next call reconnects and succeeds.
    let _coord = coordinator(&net, 1, Arc::clone(&double));
    assert_eq!(cp.heartbeat(me, &node_report()).await.unwrap(), ack());

    // A partition from the only coordinator: Unavailable; healed: answers again.
    net.partition(&[me], &[NodeId(1)]);
    let r = cp.assignments(me).await;
    assert!(matches!(r, Err(ControlError::Unavailable(_))), "{r:?}");
    net.heal();
    assert_eq!(cp.assignments(me).await.unwrap(), assignments(me));

    // A coordinator answering Unavailable is also just "try later".
    double.set_mode(Mode::Fail(ControlError::Unavailable("electing".into())));
    let r = cp.report(me, reports()).await;
    assert!(
        matches!(r, Err(ControlError::Unavailable(ref m)) if m.contains("electing")),
        "{r:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn an_unreachable_coordinator_is_skipped_for_the_next_one() {
    let net = MemNetwork::new(6);
    let d1 = Arc::new(Double::new());
    let d2 = Arc::new(Double::new());
    let c1 = coordinator(&net, 1, Arc::clone(&d1));
    let _c2 = coordinator(&net, 2, Arc::clone(&d2));
    let (_ep, cp) = client(&net, Role::Agent, AGENT, &[1, 2]);
    let me = NodeId(AGENT);
    cp.heartbeat(me, &node_report()).await.unwrap();
    assert_eq!(cp.current(), NodeId(1));

    drop(c1);
    assert_eq!(cp.heartbeat(me, &node_report()).await.unwrap(), ack());
    assert_eq!(cp.current(), NodeId(2));
    assert_eq!(d2.calls().len(), 1);

    // Refusals are final: they are not retried elsewhere.
    d2.set_mode(Mode::Fail(ControlError::Rejected("unknown node".into())));
    let r = cp.report(me, reports()).await;
    assert!(
        matches!(r, Err(ControlError::Rejected(ref m)) if m.contains("unknown node")),
        "{r:?}"
    );
    d2.set_mode(Mode::Fail(ControlError::PermissionDenied("removed".into())));
    let r = cp.report(me, reports()).await;
    assert!(matches!(r, Err(ControlError::PermissionDenied(_))), "{r:?}");
}

#[test]
fn client_setup_errors_are_typed() {
    use cloudless::protocol::RpcControlConfigError as E;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let net = MemNetwork::new(7);
        let t: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Agent, AGENT)));
        let ep = RpcEndpoint::start(Arc::clone(&t), Router::new(), RpcConfig::default()).unwrap();
        let c = |n| CoordinatorAddr::new(NodeId(n), addr_of(NodeId(n)));
        let mk = |coords, cfg| RpcControlPlane::new(Arc::clone(&t), ep.client(), coords, cfg);
        assert_eq!(
            mk(vec![], RpcControlConfig::default()).unwrap_err(),
            E::NoCoordinators
        );
        assert_eq!(
            mk(vec![c(1), c(2), c(1)], RpcControlConfig::default()).unwrap_err(),
            E::DuplicateCoordinator(1)
        );
        let zero = RpcControlConfig {
            call_timeout: Duration::ZERO,
            ..RpcControlConfig::default()
        };
        assert_eq!(mk(vec![c(1)], zero).unwrap_err(), E::ZeroTimeout);
    });
}
