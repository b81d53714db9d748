//! CA key hand-over on real QUIC (loopback): a coordinator gets the CA key from another
//! coordinator and can then issue certificates the cluster accepts; an agent is refused.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod quic_common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloudless_core::ids::NodeId;
use cloudless_core::transport::{Role, Transport};
use cloudless_net::identity::handover::{HandoverError, fetch_ca, serve_ca_handover};
use cloudless_net::identity::{ClusterCa, IdentityError};
use cloudless_net::{Router, RpcConfig, RpcEndpoint, RpcError, StatusCode};
use quic_common::{bind, creds};

/// A call's deadline: generous, an answer on a loaded machine can be slow (every call here
/// expects an answer; the one that expects a deadline to pass sets its own).
const CALL: Duration = Duration::from_secs(30);

#[tokio::test]
async fn only_coordinators_receive_the_ca_key() {
    let ca = Arc::new(ClusterCa::init("lab", SystemTime::now()).unwrap());
    let first = bind(&creds(&ca, Role::Coordinator, 1));
    let addr = first.local_addr().unwrap().to_string();
    let mut router = Router::new();
    serve_ca_handover(&mut router, ca.clone());
    let _server = RpcEndpoint::start(first.clone(), router, RpcConfig::default()).unwrap();

    let second = bind(&creds(&ca, Role::Coordinator, 2));
    second.connect(&addr).await.unwrap();
    let ep = RpcEndpoint::start(second, Router::new(), RpcConfig::default()).unwrap();
    let copy = fetch_ca(&ep.client(), NodeId(1), ca.cert(), CALL)
        .await
        .unwrap();
    assert_eq!(copy.digest(), ca.digest());
    // The copy issues certificates the first coordinator accepts.
    let agent = bind(&creds(&copy, Role::Agent, 9));
    assert_eq!(agent.connect(&addr).await.unwrap().node, NodeId(1));
    // It saves with a 0600 key, like the original.
    let dir = tempfile::tempdir().unwrap();
    copy.save(dir.path()).unwrap();
    assert_eq!(ClusterCa::load(dir.path()).unwrap().digest(), ca.digest());

    let agent_ep = RpcEndpoint::start(agent, Router::new(), RpcConfig::default()).unwrap();
    let refused = fetch_ca(&agent_ep.client(), NodeId(1), ca.cert(), CALL).await;
    assert!(
        matches!(
            refused,
            Err(HandoverError::Rpc(RpcError::Status {
                code: StatusCode::PermissionDenied,
                ..
            }))
        ),
        "{refused:?}"
    );
}

#[test]
fn a_key_that_does_not_match_the_ca_certificate_is_refused() {
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let other = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    other.save(dir.path()).unwrap();
    let other_key = std::fs::read_to_string(dir.path().join("ca.key")).unwrap();
    assert!(matches!(
        ClusterCa::from_parts(ca.cert().clone(), &other_key),
        Err(IdentityError::Refused(_))
    ));
}
