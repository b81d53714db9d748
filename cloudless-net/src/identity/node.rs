//! A node's key pair (generated locally, never sent anywhere) and its credentials: the signed
//! certificate chain plus the key, as TLS needs them.

use std::path::Path;

use cloudless_core::transport::PeerIdentity;
use rcgen::{CertificateParams, DistinguishedName, KeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use super::IdentityError;
use super::ca::{cluster_of_ca, pem};
use super::files::{check_private_mode, read_text, write_private, write_public};
use super::spiffe::identity_from_cert;

/// File name of a node's certificate chain (PEM: leaf, then CA).
pub const NODE_CERT_FILE: &str = "node.pem";
/// File name of a node's private key (PEM, mode 0600).
pub const NODE_KEY_FILE: &str = "node.key";

/// A node's private key (ECDSA P-256). It stays on the node: only CSRs leave it.
pub struct NodeKey {
    key: KeyPair,
}

impl std::fmt::Debug for NodeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NodeKey(..)")
    }
}

impl NodeKey {
    /// Generates a fresh key pair.
    pub fn generate() -> Result<Self, IdentityError> {
        Ok(Self {
            key: KeyPair::generate().map_err(IdentityError::generation)?,
        })
    }

    /// A certificate signing request (DER) over this key. The CA takes only the public key
    /// from it, so it names nothing.
    pub fn csr(&self) -> Result<Vec<u8>, IdentityError> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        let csr = params
            .serialize_request(&self.key)
            .map_err(IdentityError::generation)?;
        Ok(csr.der().to_vec())
    }

    /// Writes the key to `path` with mode 0600.
    pub fn save(&self, path: &Path) -> Result<(), IdentityError> {
        write_private(path, self.key.serialize_pem().as_bytes())
    }

    /// Loads a key written by [`save`](Self::save); refuses a file readable by others.
    pub fn load(path: &Path) -> Result<Self, IdentityError> {
        check_private_mode(path)?;
        let key = KeyPair::from_pem(&read_text(path)?).map_err(|e| IdentityError::file(path, e))?;
        Ok(Self { key })
    }

    fn private_der(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.serialize_der()))
    }
}

/// Everything a node needs to speak mTLS in its cluster.
pub struct NodeCredentials {
    identity: PeerIdentity,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
    ca: CertificateDer<'static>,
}

impl std::fmt::Debug for NodeCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeCredentials")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

impl Clone for NodeCredentials {
    fn clone(&self) -> Self {
        Self {
            identity: self.identity.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            ca: self.ca.clone(),
        }
    }
}

impl NodeCredentials {
    /// Credentials from a key, the certificate the CA issued for it, and the CA certificate.
    /// The identity is read from the certificate and must belong to the CA's cluster.
    pub fn new(
        key: &NodeKey,
        cert: CertificateDer<'static>,
        ca: CertificateDer<'static>,
    ) -> Result<Self, IdentityError> {
        let cluster = cluster_of_ca(&ca)?;
        let identity = identity_from_cert(&cert, &cluster)?;
        Ok(Self {
            identity,
            chain: vec![cert, ca.clone()],
            key: key.private_der(),
            ca,
        })
    }

    /// The identity in the certificate.
    pub fn identity(&self) -> &PeerIdentity {
        &self.identity
    }

    /// The chain presented in TLS: the node certificate, then the CA certificate (so a joiner
    /// that pins the CA by digest can find it).
    pub fn chain(&self) -> &[CertificateDer<'static>] {
        &self.chain
    }

    /// The node certificate.
    pub fn cert(&self) -> &CertificateDer<'static> {
        &self.chain[0]
    }

    /// The CA certificate.
    pub fn ca(&self) -> &CertificateDer<'static> {
        &self.ca
    }

    /// The private key.
    pub fn key(&self) -> &PrivateKeyDer<'static> {
        &self.key
    }

    /// Writes `node.pem` (chain) and `node.key` (0600) into `dir`, which must exist.
    pub fn save(&self, dir: &Path) -> Result<(), IdentityError> {
        write_private(
            &dir.join(NODE_KEY_FILE),
            pem("PRIVATE KEY", self.key.secret_der()).as_bytes(),
        )?;
        let chain: String = self.chain.iter().map(|c| pem("CERTIFICATE", c)).collect();
        write_public(&dir.join(NODE_CERT_FILE), chain.as_bytes())
    }

    /// Loads credentials written by [`save`](Self::save).
    pub fn load(dir: &Path) -> Result<Self, IdentityError> {
        let key_path = dir.join(NODE_KEY_FILE);
        let key = NodeKey::load(&key_path)?;
        let cert_path = dir.join(NODE_CERT_FILE);
        let chain = CertificateDer::pem_slice_iter(read_text(&cert_path)?.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| IdentityError::file(&cert_path, e))?;
        let [cert, ca] = <[CertificateDer<'static>; 2]>::try_from(chain).map_err(|_| {
            IdentityError::file(&cert_path, "expected the node certificate, then the CA")
        })?;
        Self::new(&key, cert, ca)
    }
}
