//! Refused peers on real QUIC (loopback): no client certificate, another CA, another cluster's
//! identity, expired certificates. Plus reconnect after a peer restart.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role, Transport, TransportError};
use cloudless_net::identity::verify::{ClusterServerVerifier, provider};
use cloudless_net::identity::{ClusterCa, DEFAULT_NODE_LIFETIME, NodeCredentials, NodeKey, tls};
use cloudless_net::quic::{ALPN, QuicConfig, QuicTransport};
use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, Issuer, KeyPair, SanType};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

const DAY: Duration = Duration::from_secs(24 * 3600);

fn id(cluster: &str, role: Role, node: u64) -> PeerIdentity {
    PeerIdentity {
        cluster: cluster.into(),
        role,
        node: NodeId(node),
    }
}

fn creds_at(ca: &ClusterCa, role: Role, node: u64, now: SystemTime) -> NodeCredentials {
    let key = NodeKey::generate().unwrap();
    let cert = ca
        .issue(
            &key.csr().unwrap(),
            &id(ca.cluster(), role, node),
            now,
            DEFAULT_NODE_LIFETIME,
        )
        .unwrap();
    NodeCredentials::new(&key, cert, ca.cert().clone()).unwrap()
}

fn creds(ca: &ClusterCa, role: Role, node: u64) -> NodeCredentials {
    creds_at(ca, role, node, SystemTime::now())
}

fn any_addr() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn config() -> QuicConfig {
    QuicConfig {
        connect_timeout: Duration::from_secs(30),
        ..QuicConfig::default()
    }
}

fn bind(creds: &NodeCredentials) -> QuicTransport {
    QuicTransport::bind(any_addr(), creds, config()).unwrap()
}

/// A dialer whose client TLS is `client` (its own server side is irrelevant here).
fn dialer(server_creds: &NodeCredentials, client: rustls::ClientConfig) -> QuicTransport {
    let server = tls::server_config(server_creds, ALPN).unwrap();
    let me = server_creds.identity().clone();
    QuicTransport::bind_with_tls(any_addr(), me, server, client, config()).unwrap()
}

async fn assert_refused(client: &QuicTransport, server: &QuicTransport) {
    let addr = server.local_addr().unwrap().to_string();
    let got = client.connect(&addr).await;
    assert!(matches!(got, Err(TransportError::Auth(_))), "{got:?}");
    assert!(client.connected_peers().is_empty());
    assert!(server.connected_peers().is_empty());
}

#[tokio::test]
async fn a_client_without_a_certificate_gets_an_auth_error() {
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let server = bind(&creds(&ca, Role::Coordinator, 1));
    let no_cert = tls::client_config(ca.cert(), None, ALPN).unwrap();
    let client = dialer(&creds(&ca, Role::Agent, 2), no_cert);
    assert_refused(&client, &server).await;
}

#[tokio::test]
async fn a_client_certificate_from_another_ca_gets_an_auth_error() {
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let rogue = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let server = bind(&creds(&ca, Role::Coordinator, 1));
    // The rogue client trusts our CA for the server, but its own certificate is the rogue's.
    let rogue_creds = creds(&rogue, Role::Agent, 2);
    let verifier = ClusterServerVerifier::new(ca.cert(), "lab").unwrap();
    let client_tls =
        tls::client_config_with_verifier(Arc::new(verifier), Some(&rogue_creds), ALPN).unwrap();
    let client = dialer(&rogue_creds, client_tls);
    assert_refused(&client, &server).await;
    // And a node of the rogue CA refuses our server's certificate.
    let plain_rogue = bind(&rogue_creds);
    assert_refused(&plain_rogue, &server).await;
}

#[tokio::test]
async fn a_certificate_naming_another_cluster_is_refused() {
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let server = bind(&creds(&ca, Role::Coordinator, 1));
    // Sign, with our CA's key, a certificate for spiffe://other/agent/5.
    let dir = tempfile::tempdir().unwrap();
    ca.save(dir.path()).unwrap();
    let ca_key =
        KeyPair::from_pem(&std::fs::read_to_string(dir.path().join("ca.key")).unwrap()).unwrap();
    let issuer = Issuer::from_ca_cert_der(ca.cert(), ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI("spiffe://other/agent/5".try_into().unwrap())];
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ClientAuth,
        ExtendedKeyUsagePurpose::ServerAuth,
    ];
    let cert = params.signed_by(&key, &issuer).unwrap();
    let chain = vec![cert.der().clone(), ca.cert().clone()];
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let verifier = ClusterServerVerifier::new(ca.cert(), "lab").unwrap();
    let mut client_tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key_der)
        .unwrap();
    client_tls.alpn_protocols = vec![ALPN.to_vec()];
    let client = dialer(&creds(&ca, Role::Agent, 2), client_tls);
    assert_refused(&client, &server).await;
}

#[tokio::test]
async fn expired_certificates_are_refused_both_ways() {
    let ca = ClusterCa::init("lab", SystemTime::now() - 30 * DAY).unwrap();
    let month_ago = SystemTime::now() - 30 * DAY;
    let server = bind(&creds(&ca, Role::Coordinator, 1));
    let expired_client = bind(&creds_at(&ca, Role::Agent, 2, month_ago));
    assert_refused(&expired_client, &server).await;
    let expired_server = bind(&creds_at(&ca, Role::Coordinator, 3, month_ago));
    let client = bind(&creds(&ca, Role::Agent, 4));
    assert_refused(&client, &expired_server).await;
}

async fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn send_redials_a_restarted_peer() {
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let coord_creds = creds(&ca, Role::Coordinator, 1);
    let agent = bind(&creds(&ca, Role::Agent, 2));
    let server = bind(&coord_creds);
    let addr = server.local_addr().unwrap();
    agent.connect(&addr.to_string()).await.unwrap();
    agent
        .send(NodeId(1), Bytes::from_static(b"one"))
        .await
        .unwrap();
    assert_eq!(&server.recv().await.unwrap().frame[..], b"one");

    drop(server);
    wait_until("agent notices the restart", || {
        agent.connected_peers().is_empty()
    })
    .await;
    // The same node comes back on the same address.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let server = loop {
        match QuicTransport::bind(addr, &coord_creds, config()) {
            Ok(t) => break t,
            Err(e) => {
                assert!(tokio::time::Instant::now() < deadline, "rebind: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    agent
        .send(NodeId(1), Bytes::from_static(b"two"))
        .await
        .unwrap();
    let m = server.recv().await.unwrap();
    assert_eq!((&m.frame[..], m.from.node), (&b"two"[..], NodeId(2)));
    // A peer that only dialed us is not re-dialed: it is simply not connected.
    drop(agent);
    wait_until("server notices", || server.connected_peers().is_empty()).await;
    let got = server.send(NodeId(2), Bytes::from_static(b"x")).await;
    assert!(
        matches!(got, Err(TransportError::NotConnected(_))),
        "{got:?}"
    );
}
