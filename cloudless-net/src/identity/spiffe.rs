//! SPIFFE-like identities in certificates: `spiffe://<cluster>/<role>/<node-id>` as the one URI
//! subject alternative name, and the CA digest that join tokens pin.

use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role};
use rustls_pki_types::CertificateDer;
use sha2::{Digest, Sha256};
use x509_parser::extensions::GeneralName;

use super::IdentityError;

const SCHEME: &str = "spiffe://";

/// SHA-256 of a CA certificate's DER encoding: what a join token pins.
pub type CaDigest = [u8; 32];

/// The digest of a CA certificate.
pub fn ca_digest(ca_der: &[u8]) -> CaDigest {
    Sha256::digest(ca_der).into()
}

/// The DNS name every coordinator certificate of `cluster` carries besides its SPIFFE URI:
/// `api.<cluster>.cloudless.internal`.
///
/// Cloudless's own clients check the SPIFFE identity; generic TLS clients (grpcio, grpcurl,
/// curl) check a DNS name instead, so they connect to a coordinator's API with this name as
/// the TLS server name (`grpc.ssl_target_name_override`, `-authority`, `--resolve`). It names
/// the cluster's API, not a host: any coordinator of the cluster answers to it.
///
/// ```rust
/// use cloudless_net::identity::spiffe::api_server_name;
/// assert_eq!(api_server_name("home-lab"), "api.home-lab.cloudless.internal");
/// ```
pub fn api_server_name(cluster: &str) -> String {
    format!("api.{cluster}.cloudless.internal")
}

/// Checks that `name` can serve as a trust domain: 1..=63 characters of `[a-z0-9-]`, not
/// starting or ending with `-` (a DNS label, so it is unambiguous inside a URI).
pub fn validate_cluster_name(name: &str) -> Result<(), IdentityError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(IdentityError::InvalidClusterName(name.to_owned()))
    }
}

fn parse_role(s: &str) -> Option<Role> {
    match s {
        "coordinator" => Some(Role::Coordinator),
        "agent" => Some(Role::Agent),
        "admin" => Some(Role::Admin),
        _ => None,
    }
}

/// Parses `spiffe://<cluster>/<role>/<node-id>` strictly (no extra path segments, query,
/// port, leading zeros or sign in the id).
pub fn parse_uri(uri: &str) -> Result<PeerIdentity, IdentityError> {
    let bad = |why: &str| IdentityError::BadIdentity(format!("{uri:?}: {why}"));
    let rest = uri
        .strip_prefix(SCHEME)
        .ok_or_else(|| bad("not a spiffe:// URI"))?;
    let mut parts = rest.split('/');
    let (Some(cluster), Some(role), Some(id), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad("expected spiffe://<cluster>/<role>/<node-id>"));
    };
    validate_cluster_name(cluster).map_err(|_| bad("invalid cluster name"))?;
    let role = parse_role(role).ok_or_else(|| bad("unknown role"))?;
    let canonical = !id.is_empty() && (id == "0" || !id.starts_with('0'));
    if !canonical || !id.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("node id must be a decimal number"));
    }
    let node = id.parse::<u64>().map_err(|_| bad("node id out of range"))?;
    Ok(PeerIdentity {
        cluster: cluster.to_owned(),
        role,
        node: NodeId(node),
    })
}

/// The identity in a certificate, which must belong to `cluster`.
///
/// The certificate must carry exactly one URI subject alternative name, and it must be a valid
/// SPIFFE identity of `cluster`. This does not check the signature or validity period: the TLS
/// verifiers do that first.
pub fn identity_from_cert(
    cert: &CertificateDer<'_>,
    cluster: &str,
) -> Result<PeerIdentity, IdentityError> {
    let id = any_identity_from_cert(cert)?;
    if id.cluster != cluster {
        return Err(IdentityError::BadIdentity(format!(
            "{} belongs to cluster {:?}, not {cluster:?}",
            id.uri(),
            id.cluster
        )));
    }
    Ok(id)
}

/// The identity in a certificate, of whatever cluster (see [`identity_from_cert`]).
pub fn any_identity_from_cert(cert: &CertificateDer<'_>) -> Result<PeerIdentity, IdentityError> {
    let (rest, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| IdentityError::MalformedCertificate(e.to_string()))?;
    if !rest.is_empty() {
        return Err(IdentityError::MalformedCertificate(
            "trailing bytes after the certificate".into(),
        ));
    }
    let san = x509
        .subject_alternative_name()
        .map_err(|e| IdentityError::MalformedCertificate(e.to_string()))?
        .ok_or_else(|| IdentityError::BadIdentity("no subject alternative names".into()))?;
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    match uris.as_slice() {
        [one] => parse_uri(one),
        [] => Err(IdentityError::BadIdentity(
            "no URI subject alternative name".into(),
        )),
        _ => Err(IdentityError::BadIdentity(format!(
            "{} URI subject alternative names; exactly one is allowed",
            uris.len()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_round_trips() {
        let id = PeerIdentity {
            cluster: "home-lab".into(),
            role: Role::Agent,
            node: NodeId(42),
        };
        assert_eq!(parse_uri(&id.uri()).ok(), Some(id));
    }

    #[test]
    fn malformed_uris_are_rejected() {
        for uri in [
            "https://c/agent/1",
            "spiffe://c/agent",
            "spiffe://c/agent/1/x",
            "spiffe://c/root/1",
            "spiffe://c/agent/01",
            "spiffe://c/agent/+1",
            "spiffe://c/agent/",
            "spiffe://C/agent/1",
            "spiffe://c:80/agent/1",
            "spiffe://c/agent/18446744073709551616",
            "spiffe:///agent/1",
        ] {
            assert!(parse_uri(uri).is_err(), "{uri} was accepted");
        }
        assert!(parse_uri("spiffe://c/admin/0").is_ok());
    }

    #[test]
    fn cluster_names() {
        for ok in ["a", "home-lab", "x1", &"a".repeat(63)] {
            assert!(validate_cluster_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a.b", "a_b", &"a".repeat(64)] {
            assert!(validate_cluster_name(bad).is_err(), "{bad}");
        }
    }
}
