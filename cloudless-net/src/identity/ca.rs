//! The cluster CA: a self-signed root (rcgen, ECDSA P-256) that signs node certificates.

use std::path::Path;
use std::time::{Duration, SystemTime};

use cloudless_core::transport::{PeerIdentity, Role};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateSigningRequestParams, DistinguishedName,
    DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};
use time::OffsetDateTime;
use x509_parser::prelude::FromDer;

use super::IdentityError;
use super::files::{check_private_mode, read_text, write_private, write_public};
use super::spiffe::{CaDigest, api_server_name, ca_digest, validate_cluster_name};

/// File name of the CA certificate (PEM) in a CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key (PEM, mode 0600) in a CA directory.
pub const CA_KEY_FILE: &str = "ca.key";
/// Default lifetime of a node certificate.
pub const DEFAULT_NODE_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// How far node certificates are back-dated, so a device whose clock runs a little behind
/// accepts them at once.
pub const DEFAULT_BACKDATE: Duration = Duration::from_secs(5 * 60);
/// Lifetime of the CA certificate.
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
const CA_COMMON_NAME: &str = "Cloudless cluster CA";

/// The cluster's root CA. Holds the CA private key: keep it on coordinators only.
///
/// Issuing a node certificate: the node generates its key and CSR, the CA signs the identity
/// it decides (never the names the CSR asks for):
///
/// ```rust
/// use std::time::SystemTime;
///
/// use cloudless_core::ids::NodeId;
/// use cloudless_core::transport::{PeerIdentity, Role};
/// use cloudless_net::identity::{ClusterCa, DEFAULT_NODE_LIFETIME, NodeCredentials, NodeKey, identity_from_cert};
///
/// # fn main() -> Result<(), cloudless_net::identity::IdentityError> {
/// let now = SystemTime::now();
/// let ca = ClusterCa::init("home", now)?;
///
/// let key = NodeKey::generate()?; // on the node; the private key never leaves it
/// let identity = PeerIdentity { cluster: "home".into(), role: Role::Agent, node: NodeId(7) };
/// let cert = ca.issue(&key.csr()?, &identity, now, DEFAULT_NODE_LIFETIME)?;
///
/// assert_eq!(identity.uri(), "spiffe://home/agent/7");
/// assert_eq!(identity_from_cert(&cert, "home")?, identity);
/// let creds = NodeCredentials::new(&key, cert, ca.cert().clone())?;
/// assert_eq!(creds.identity(), &identity);
///
/// // A CA signs identities of its own cluster only.
/// let stranger = PeerIdentity { cluster: "other".into(), ..identity };
/// assert!(ca.issue(&key.csr()?, &stranger, now, DEFAULT_NODE_LIFETIME).is_err());
/// # Ok(())
/// # }
/// ```
pub struct ClusterCa {
    cluster: String,
    cert: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for ClusterCa {
    // Never print the key.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCa")
            .field("cluster", &self.cluster)
            .field("digest", &hex::encode(self.digest()))
            .finish_non_exhaustive()
    }
}

/// Fills `buf` from the operating system's secure random source (through ring, the one crypto
/// provider of the workspace).
pub(crate) fn fill_random(buf: &mut [u8]) -> Result<(), IdentityError> {
    rustls::crypto::ring::default_provider()
        .secure_random
        .fill(buf)
        .map_err(|_| IdentityError::Generation("no secure randomness available".into()))
}

fn random_serial() -> Result<SerialNumber, IdentityError> {
    let mut b = [0u8; 16];
    fill_random(&mut b)?;
    // A positive INTEGER: clear the top bit.
    b[0] &= 0x7f;
    Ok(SerialNumber::from_slice(&b))
}

fn at(t: SystemTime) -> OffsetDateTime {
    OffsetDateTime::from(t)
}

/// `t - d`, clamped at the Unix epoch.
fn minus(t: SystemTime, d: Duration) -> SystemTime {
    t.checked_sub(d).unwrap_or(SystemTime::UNIX_EPOCH)
}

/// `t + d`, or an error if that is not representable.
fn plus(t: SystemTime, d: Duration) -> Result<SystemTime, IdentityError> {
    t.checked_add(d)
        .ok_or_else(|| IdentityError::Refused("validity period out of range".into()))
}

impl ClusterCa {
    /// Creates a new root CA for `cluster`, valid for ten years from `now` (back-dated a few
    /// minutes).
    pub fn init(cluster: &str, now: SystemTime) -> Result<Self, IdentityError> {
        validate_cluster_name(cluster)?;
        let key = KeyPair::generate().map_err(IdentityError::generation)?;
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, CA_COMMON_NAME);
        dn.push(DnType::OrganizationName, cluster);
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = at(minus(now, DEFAULT_BACKDATE));
        params.not_after = at(plus(now, CA_LIFETIME)?);
        params.serial_number = Some(random_serial()?);
        let cert = params
            .self_signed(&key)
            .map_err(IdentityError::generation)?;
        Ok(Self {
            cluster: cluster.to_owned(),
            cert: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The cluster name (the trust domain of every identity this CA issues).
    pub fn cluster(&self) -> &str {
        &self.cluster
    }

    /// The CA certificate.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.cert
    }

    /// SHA-256 of the CA certificate's DER: what join tokens pin.
    pub fn digest(&self) -> CaDigest {
        ca_digest(&self.cert)
    }

    /// Writes `ca.pem` and `ca.key` (mode 0600) into `dir`, which must exist.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        write_private(
            &dir.join(CA_KEY_FILE),
            self.issuer.key().serialize_pem().as_bytes(),
        )?;
        write_public(
            &dir.join(CA_CERT_FILE),
            pem("CERTIFICATE", &self.cert).as_bytes(),
        )
    }

    /// Loads a CA saved by [`save`](Self::save). Refuses a key file readable by others.
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert = CertificateDer::from_pem_slice(read_text(&cert_path)?.as_bytes())
            .map_err(|e| IdentityError::file(&cert_path, e))?;
        check_private_mode(&key_path)?;
        let key = KeyPair::from_pem(&read_text(&key_path)?)
            .map_err(|e| IdentityError::file(&key_path, e))?;
        let cluster = cluster_of_ca(&cert)?;
        let issuer =
            Issuer::from_ca_cert_der(&cert, key).map_err(|e| IdentityError::file(&cert_path, e))?;
        Ok(Self {
            cluster,
            cert,
            issuer,
        })
    }

    /// The CA private key as PEM, for handing to a joining coordinator over mTLS. Wiped on drop.
    pub(crate) fn key_pem(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(self.issuer.key().serialize_pem())
    }

    /// A CA from its certificate and the PEM of its private key; the key must be the one the
    /// certificate names.
    pub fn from_parts(cert: CertificateDer<'static>, key_pem: &str) -> Result<Self, IdentityError> {
        let key = KeyPair::from_pem(key_pem).map_err(|e| IdentityError::Refused(e.to_string()))?;
        let (_, x509) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref())
            .map_err(|e| IdentityError::MalformedCertificate(e.to_string()))?;
        if x509.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
            return Err(IdentityError::Refused(
                "the key does not belong to the CA certificate".into(),
            ));
        }
        let cluster = cluster_of_ca(&cert)?;
        let issuer = Issuer::from_ca_cert_der(&cert, key)
            .map_err(|e| IdentityError::MalformedCertificate(e.to_string()))?;
        Ok(Self {
            cluster,
            cert,
            issuer,
        })
    }

    /// Issues a node certificate for `identity` over the public key in `csr_der`, valid from
    /// `now - DEFAULT_BACKDATE` to `now + lifetime`.
    ///
    /// Only the CSR's public key is used (its signature must verify); every name and
    /// extension comes from `identity`. Nodes get both server and client authentication;
    /// admins only client authentication.
    pub fn issue(
        &self,
        csr_der: &[u8],
        identity: &PeerIdentity,
        now: SystemTime,
        lifetime: Duration,
    ) -> Result<CertificateDer<'static>, IdentityError> {
        if identity.cluster != self.cluster {
            return Err(IdentityError::Refused(format!(
                "{} is not an identity of cluster {:?}",
                identity.uri(),
                self.cluster
            )));
        }
        let csr =
            CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr_der))
                .map_err(|e| IdentityError::InvalidCsr(e.to_string()))?;
        let uri = identity.uri();
        let mut params = CertificateParams::default();
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, uri.as_str());
        params.distinguished_name = dn;
        params.subject_alt_names = vec![SanType::URI(
            uri.as_str().try_into().map_err(IdentityError::generation)?,
        )];
        if identity.role == Role::Coordinator {
            // Coordinators serve the public API: generic TLS clients check a DNS name.
            params.subject_alt_names.push(SanType::DnsName(
                api_server_name(&identity.cluster)
                    .try_into()
                    .map_err(IdentityError::generation)?,
            ));
        }
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match identity.role {
            Role::Admin => vec![ExtendedKeyUsagePurpose::ClientAuth],
            Role::Agent | Role::Coordinator => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        };
        params.not_before = at(minus(now, DEFAULT_BACKDATE));
        params.not_after = at(plus(now, lifetime)?);
        params.serial_number = Some(random_serial()?);
        params.use_authority_key_identifier_extension = true;
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(IdentityError::generation)?;
        Ok(cert.der().clone())
    }
}

/// Checks that `csr_der` is a well-formed CSR with a valid signature.
pub(crate) fn validate_csr(csr_der: &[u8]) -> Result<(), IdentityError> {
    CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr_der))
        .map(|_| ())
        .map_err(|e| IdentityError::InvalidCsr(e.to_string()))
}

/// The cluster name recorded in a CA certificate (its organization name).
pub(crate) fn cluster_of_ca(cert: &CertificateDer<'_>) -> Result<String, IdentityError> {
    let (_, x509) = x509_parser::certificate::X509Certificate::from_der(cert.as_ref())
        .map_err(|e| IdentityError::MalformedCertificate(e.to_string()))?;
    let cluster = x509
        .subject()
        .iter_organization()
        .next()
        .and_then(|o| o.as_str().ok())
        .ok_or_else(|| {
            IdentityError::MalformedCertificate("CA certificate names no cluster".into())
        })?
        .to_owned();
    validate_cluster_name(&cluster)?;
    Ok(cluster)
}

/// PEM-encodes one DER object.
pub(crate) fn pem(label: &str, der: &[u8]) -> String {
    let b64 = base64_encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn base64_encode(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_known_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64_encode(input.as_bytes()), want);
        }
    }
}
