//! Untrusted inputs to identity code never panic: token text, certificates, CSRs and
//! enrollment requests built from arbitrary bytes.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

use std::sync::OnceLock;
use std::time::SystemTime;

use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::identity::enroll::EnrollRequest;
use cloudless_net::identity::spiffe::parse_uri;
use cloudless_net::identity::{ClusterCa, DEFAULT_NODE_LIFETIME, JoinToken, identity_from_cert};
use proptest::prelude::*;
use prost::Message;
use rustls_pki_types::CertificateDer;

fn ca() -> &'static ClusterCa {
    static CA: OnceLock<ClusterCa> = OnceLock::new();
    CA.get_or_init(|| ClusterCa::init("lab", SystemTime::now()).unwrap())
}

proptest! {
    #[test]
    fn token_parsing_never_panics(s in "\\PC{0,200}") {
        let _ = JoinToken::parse(&s);
    }

    #[test]
    fn token_like_text_round_trips_when_accepted(
        digest in "[0-9a-fA-F]{60,66}",
        id in "[a-z2-9-]{6,10}",
        secret in "[a-z2-9]{30,34}",
    ) {
        let text = format!("CLD1-{digest}-{id}-{secret}");
        if let Ok(t) = JoinToken::parse(&text) {
            prop_assert_eq!(&*t.reveal(), text.as_str());
        }
    }

    #[test]
    fn spiffe_parsing_never_panics(s in "spiffe://\\PC{0,60}") {
        if let Ok(id) = parse_uri(&s) {
            prop_assert_eq!(id.uri(), s);
        }
    }

    #[test]
    fn certificate_and_csr_parsing_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        prop_assert!(identity_from_cert(&CertificateDer::from(bytes.clone()), "lab").is_err());
        let me = PeerIdentity { cluster: "lab".into(), role: Role::Agent, node: NodeId(1) };
        prop_assert!(ca().issue(&bytes, &me, SystemTime::now(), DEFAULT_NODE_LIFETIME).is_err());
        let _ = EnrollRequest::decode(bytes.as_slice());
    }

    #[test]
    fn damaged_certificates_never_panic(pos in 0usize..4096, bit in 0u8..8) {
        let key = cloudless_net::identity::NodeKey::generate().unwrap();
        let me = PeerIdentity { cluster: "lab".into(), role: Role::Agent, node: NodeId(3) };
        let cert = ca().issue(&key.csr().unwrap(), &me, SystemTime::now(), DEFAULT_NODE_LIFETIME).unwrap();
        let mut bytes = cert.to_vec();
        let i = pos % bytes.len();
        bytes[i] ^= 1 << bit;
        // Parsing a damaged certificate must not panic; signature checks belong to TLS.
        let _ = identity_from_cert(&CertificateDer::from(bytes), "lab");
    }
}
