//! Certificate rotation on real QUIC (loopback): a node whose certificate is about to expire
//! renews over the cluster transport and rotates under continuous RPC load with zero failed
//! requests; after the old certificate expired, new handshakes use the renewed one.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod quic_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use cloudless_core::clock::SystemClock;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role, Transport, TransportError};
use cloudless_net::identity::renewal::{renew, serve_renewal, validity};
use cloudless_net::identity::{ClusterCa, NodeCredentials, NodeKey};
use cloudless_net::wire::pb;
use cloudless_net::{Method, Router, RpcConfig, RpcEndpoint};
use quic_common::bind;

const INC: Method<pb::NodeId, pb::NodeId> = Method::idempotent("test.v1.Echo/Inc");
const LIFETIME: Duration = Duration::from_secs(60);
/// A call's deadline: generous, a call on a loaded machine can be slow (and a failed call
/// fails the rotation test).
const DEADLINE: Duration = Duration::from_secs(30);

/// Credentials for `node` that expire `left` from now.
fn creds_expiring(ca: &ClusterCa, role: Role, node: u64, left: Duration) -> NodeCredentials {
    let key = NodeKey::generate().unwrap();
    let id = PeerIdentity {
        cluster: ca.cluster().to_owned(),
        role,
        node: NodeId(node),
    };
    let issued = SystemTime::now() - (LIFETIME - left);
    let cert = ca
        .issue(&key.csr().unwrap(), &id, issued, LIFETIME)
        .unwrap();
    NodeCredentials::new(&key, cert, ca.cert().clone()).unwrap()
}

#[tokio::test]
async fn rotation_under_load_drops_no_request() {
    let ca = Arc::new(ClusterCa::init("lab", SystemTime::now()).unwrap());
    let coordinator = bind(&creds_expiring(&ca, Role::Coordinator, 1, LIFETIME));
    let addr = coordinator.local_addr().unwrap().to_string();
    let mut router = Router::new();
    router.unary(&INC, |_ctx, req: pb::NodeId| async move {
        Ok(pb::NodeId {
            value: req.value + 1,
        })
    });
    serve_renewal(&mut router, ca.clone(), Arc::new(SystemClock), LIFETIME);
    let _server = RpcEndpoint::start(coordinator.clone(), router, RpcConfig::default()).unwrap();

    // Ten seconds: the first handshake and the renewal happen well before the expiry even on
    // a loaded machine; the test then waits the expiry out.
    let old = creds_expiring(&ca, Role::Agent, 7, Duration::from_secs(10));
    let (_, old_not_after) = validity(old.cert()).unwrap();
    let agent = bind(&old);
    agent.connect(&addr).await.unwrap();
    let endpoint = RpcEndpoint::start(agent.clone(), Router::new(), RpcConfig::default()).unwrap();
    let client = endpoint.client();

    // Continuous load until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (client, stop, ok, failed) = (client.clone(), stop.clone(), ok.clone(), failed.clone());
        tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::SeqCst) {
                match client
                    .call(NodeId(1), &INC, pb::NodeId { value: i }, DEADLINE)
                    .await
                {
                    Ok(r) if r.value == i + 1 => ok.fetch_add(1, Ordering::SeqCst),
                    _ => failed.fetch_add(1, Ordering::SeqCst),
                };
                i += 1;
            }
        })
    };
    let wait_calls = |n: u64| {
        let ok = ok.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            let start = ok.load(Ordering::SeqCst);
            while ok.load(Ordering::SeqCst) < start + n {
                assert!(tokio::time::Instant::now() < deadline, "load stalled");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    wait_calls(50).await;

    // Renew with a fresh key while the load runs, then rotate.
    let new_key = NodeKey::generate().unwrap();
    let renewed = renew(&client, NodeId(1), &old, &new_key, DEADLINE)
        .await
        .unwrap();
    assert_eq!(renewed.identity(), old.identity());
    let (_, new_not_after) = validity(renewed.cert()).unwrap();
    assert!(new_not_after > old_not_after + Duration::from_secs(30));
    agent.rotate(&renewed).unwrap();
    wait_calls(50).await;
    stop.store(true, Ordering::SeqCst);
    load.await.unwrap();
    assert_eq!(
        failed.load(Ordering::SeqCst),
        0,
        "requests failed during rotation"
    );

    // Once the old certificate has expired, a fresh handshake works only with the new one.
    while SystemTime::now() <= old_not_after + Duration::from_secs(1) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    agent.disconnect(NodeId(1));
    let r = client
        .call(NodeId(1), &INC, pb::NodeId { value: 1 }, DEADLINE)
        .await;
    assert_eq!(r.unwrap().value, 2);
    let stale = bind(&old);
    let refused = stale.connect(&addr).await;
    assert!(
        matches!(refused, Err(TransportError::Auth(_))),
        "{refused:?}"
    );

    // Rotating to another node's credentials is refused.
    let other = creds_expiring(&ca, Role::Agent, 8, LIFETIME);
    assert!(agent.rotate(&other).is_err());
}

#[tokio::test]
async fn the_renewal_driver_renews_rotates_and_saves_on_its_own() {
    use cloudless_net::identity::renewal_driver::{RenewalConfig, RenewalDriver};
    use std::os::unix::fs::PermissionsExt;

    let ca = Arc::new(ClusterCa::init("lab", SystemTime::now()).unwrap());
    let coordinator = bind(&creds_expiring(&ca, Role::Coordinator, 1, LIFETIME));
    let addr = coordinator.local_addr().unwrap().to_string();
    let mut router = Router::new();
    serve_renewal(&mut router, ca.clone(), Arc::new(SystemClock), LIFETIME);
    let _server = RpcEndpoint::start(coordinator.clone(), router, RpcConfig::default()).unwrap();

    // Issued now, valid for ten seconds (the first handshake happens well before the expiry even
    // on a loaded machine): the driver renews 5–8 s from now.
    let key = NodeKey::generate().unwrap();
    let me = PeerIdentity {
        cluster: "lab".into(),
        role: Role::Agent,
        node: NodeId(7),
    };
    let cert = ca
        .issue(
            &key.csr().unwrap(),
            &me,
            SystemTime::now(),
            Duration::from_secs(10),
        )
        .unwrap();
    let old = NodeCredentials::new(&key, cert, ca.cert().clone()).unwrap();
    let agent = bind(&old);
    agent.connect(&addr).await.unwrap();
    let endpoint = RpcEndpoint::start(agent.clone(), Router::new(), RpcConfig::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let driver = RenewalDriver::spawn(
        agent.clone(),
        endpoint.client(),
        old.clone(),
        Arc::new(SystemClock),
        RenewalConfig {
            coordinator: NodeId(1),
            dir: Some(dir.path().to_owned()),
            seed: 7,
            call_deadline: DEADLINE,
            min_retry: Duration::from_millis(100),
        },
    );
    let mut current = driver.current();
    tokio::time::timeout(Duration::from_secs(30), current.changed())
        .await
        .expect("no renewal")
        .unwrap();
    let renewed = current.borrow().clone();
    assert_eq!(renewed.identity(), old.identity());
    let (_, end) = validity(renewed.cert()).unwrap();
    assert!(end > SystemTime::now() + Duration::from_secs(30));
    let saved = NodeCredentials::load(dir.path()).unwrap();
    assert_eq!(saved.cert(), renewed.cert());
    let mode = std::fs::metadata(dir.path().join("node.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
