//! The cluster CA: key file mode, save/load, issued certificates and their identities.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::identity::spiffe::api_server_name;
use cloudless_net::identity::{
    CA_KEY_FILE, ClusterCa, DEFAULT_NODE_LIFETIME, IdentityError, NODE_KEY_FILE, NodeCredentials,
    NodeKey, identity_from_cert,
};
use x509_parser::prelude::FromDer;

fn id(cluster: &str, role: Role, node: u64) -> PeerIdentity {
    PeerIdentity {
        cluster: cluster.into(),
        role,
        node: NodeId(node),
    }
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn ca_key_is_0600_and_a_loaded_ca_issues_the_same_chain() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    ca.save(dir.path()).unwrap();
    assert_eq!(mode(&dir.path().join(CA_KEY_FILE)), 0o600);

    let loaded = ClusterCa::load(dir.path()).unwrap();
    assert_eq!(loaded.cluster(), "lab");
    assert_eq!(loaded.digest(), ca.digest());

    // A certificate from the loaded CA verifies under the original CA certificate.
    let key = NodeKey::generate().unwrap();
    let cert = loaded
        .issue(
            &key.csr().unwrap(),
            &id("lab", Role::Agent, 9),
            SystemTime::now(),
            DEFAULT_NODE_LIFETIME,
        )
        .unwrap();
    let creds = NodeCredentials::new(&key, cert, ca.cert().clone()).unwrap();
    assert_eq!(creds.identity(), &id("lab", Role::Agent, 9));
    let (_, leaf) = x509_parser::certificate::X509Certificate::from_der(creds.cert()).unwrap();
    let (_, root) = x509_parser::certificate::X509Certificate::from_der(ca.cert()).unwrap();
    leaf.verify_signature(Some(root.public_key())).unwrap();
}

#[test]
fn a_private_key_readable_by_others_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    ca.save(dir.path()).unwrap();
    let key_path = dir.path().join(CA_KEY_FILE);
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o644)).unwrap();
    assert!(matches!(
        ClusterCa::load(dir.path()),
        Err(IdentityError::File { .. })
    ));
}

#[test]
fn node_credentials_round_trip_with_a_0600_key() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let key = NodeKey::generate().unwrap();
    let cert = ca
        .issue(
            &key.csr().unwrap(),
            &id("lab", Role::Coordinator, 3),
            SystemTime::now(),
            DEFAULT_NODE_LIFETIME,
        )
        .unwrap();
    let creds = NodeCredentials::new(&key, cert, ca.cert().clone()).unwrap();
    creds.save(dir.path()).unwrap();
    assert_eq!(mode(&dir.path().join(NODE_KEY_FILE)), 0o600);
    let loaded = NodeCredentials::load(dir.path()).unwrap();
    assert_eq!(loaded.identity(), creds.identity());
    assert_eq!(loaded.chain(), creds.chain());
}

#[test]
fn issued_certificates_carry_one_spiffe_uri_and_the_lifetime() {
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let key = NodeKey::generate().unwrap();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    let cert = ca
        .issue(
            &key.csr().unwrap(),
            &id("lab", Role::Admin, 0),
            now,
            DEFAULT_NODE_LIFETIME,
        )
        .unwrap();
    assert_eq!(
        identity_from_cert(&cert, "lab").unwrap(),
        id("lab", Role::Admin, 0)
    );
    assert!(matches!(
        identity_from_cert(&cert, "other"),
        Err(IdentityError::BadIdentity(_))
    ));
    let (_, x) = x509_parser::certificate::X509Certificate::from_der(&cert).unwrap();
    let not_before = x.validity().not_before.timestamp();
    let not_after = x.validity().not_after.timestamp();
    assert_eq!(not_after, 1_900_000_000 + 7 * 24 * 3600);
    assert!(not_before < 1_900_000_000, "not back-dated");
    assert!(not_before >= 1_900_000_000 - 3600, "back-dated too far");
}

/// The DNS names in a certificate's subject alternative names.
fn dns_names(cert: &[u8]) -> Vec<String> {
    let (_, x) = x509_parser::certificate::X509Certificate::from_der(cert).unwrap();
    x.subject_alternative_name()
        .unwrap()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn coordinator_certificates_also_carry_the_api_server_name() {
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let issue = |role, node| {
        let key = NodeKey::generate().unwrap();
        ca.issue(
            &key.csr().unwrap(),
            &id("lab", role, node),
            SystemTime::now(),
            DEFAULT_NODE_LIFETIME,
        )
        .unwrap()
    };
    let coordinator = issue(Role::Coordinator, 1);
    assert_eq!(dns_names(&coordinator), vec![api_server_name("lab")]);
    assert_eq!(api_server_name("lab"), "api.lab.cloudless.internal");
    // The DNS name does not change the identity.
    assert_eq!(
        identity_from_cert(&coordinator, "lab").unwrap(),
        id("lab", Role::Coordinator, 1)
    );
    // Agents and admins serve no public API: SPIFFE URI only.
    assert!(dns_names(&issue(Role::Agent, 2)).is_empty());
    assert!(dns_names(&issue(Role::Admin, 0)).is_empty());
}

#[test]
fn the_ca_refuses_foreign_identities_and_bad_csrs() {
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let key = NodeKey::generate().unwrap();
    let csr = key.csr().unwrap();
    let foreign = ca.issue(
        &csr,
        &id("other", Role::Agent, 1),
        SystemTime::now(),
        DEFAULT_NODE_LIFETIME,
    );
    assert!(matches!(foreign, Err(IdentityError::Refused(_))));
    let mut tampered = csr.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 1;
    let bad = ca.issue(
        &tampered,
        &id("lab", Role::Agent, 1),
        SystemTime::now(),
        DEFAULT_NODE_LIFETIME,
    );
    assert!(matches!(bad, Err(IdentityError::InvalidCsr(_))));
    assert!(matches!(
        ClusterCa::init("Not A Name", SystemTime::now()),
        Err(IdentityError::InvalidClusterName(_))
    ));
}

#[test]
fn a_certificate_without_a_spiffe_uri_has_no_identity() {
    let plain = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    assert!(matches!(
        identity_from_cert(plain.cert.der(), "lab"),
        Err(IdentityError::BadIdentity(_))
    ));
}

#[test]
fn servers_issue_no_resumption_tickets() {
    // A resumed TLS 1.3 session skips the client-certificate check (expiry, revocation).
    let ca = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let key = NodeKey::generate().unwrap();
    let me = id("lab", Role::Coordinator, 1);
    let cert = ca
        .issue(
            &key.csr().unwrap(),
            &me,
            SystemTime::now(),
            DEFAULT_NODE_LIFETIME,
        )
        .unwrap();
    let creds = NodeCredentials::new(&key, cert, ca.cert().clone()).unwrap();
    let config = cloudless_net::identity::tls::server_config(&creds, b"x").unwrap();
    assert_eq!(config.send_tls13_tickets, 0);
    assert!(!config.session_storage.can_cache());
}
