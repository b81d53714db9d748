//! rustls certificate verifiers for the cluster.
//!
//! - [`ClusterClientVerifier`] (server side): the client chain must lead to the cluster CA
//!   (webpki, client-auth usage, validity period) and carry one SPIFFE identity of the cluster.
//! - [`ClusterServerVerifier`] (client side): the same for the server. Nodes are dialed by
//!   address and learn the peer's identity from its certificate, so no DNS name is checked.
//! - [`PinnedCaVerifier`] (a joiner without a CA yet): the server must present, in its chain, a
//!   CA certificate whose SHA-256 equals the digest from the join token, and its certificate
//!   must chain to that CA and name a coordinator of that CA's cluster.
//!
//! Identity failures map to `ApplicationVerificationFailure`, so they abort the handshake like
//! any other certificate error (the peer sees a TLS alert, never a half-open connection).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use cloudless_core::transport::Role;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms, verify_tls13_signature};
use rustls::server::ParsedCertificate;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, Error, PeerIncompatible,
    RootCertStore, SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::RevokedNodes;
use super::ca::cluster_of_ca;
use super::spiffe::{CaDigest, ca_digest, identity_from_cert};

fn identity_rejected() -> Error {
    Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure)
}

fn tls12_refused() -> Result<HandshakeSignatureValid, Error> {
    // The configurations are TLS 1.3 only; a TLS 1.2 signature never reaches us.
    Err(Error::PeerIncompatible(
        PeerIncompatible::Tls13RequiredForQuic,
    ))
}

/// The ring provider: the one crypto provider of the workspace.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots_of(ca: &CertificateDer<'_>) -> Result<RootCertStore, Error> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone().into_owned())?;
    Ok(roots)
}

/// Verifies client certificates against the cluster CA and the cluster's SPIFFE identities.
#[derive(Debug)]
pub struct ClusterClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    cluster: String,
    revoked: RevokedNodes,
}

impl ClusterClientVerifier {
    /// A verifier trusting only `ca`, accepting identities of `cluster`.
    pub fn new(ca: &CertificateDer<'_>, cluster: &str) -> Result<Self, Error> {
        let inner = rustls::server::WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots_of(ca)?),
            provider(),
        )
        .build()
        .map_err(|e| Error::General(e.to_string()))?;
        Ok(Self {
            inner,
            cluster: cluster.to_owned(),
            revoked: RevokedNodes::new(),
        })
    }

    /// Also refuses the nodes in `revoked` (consulted on every handshake).
    pub fn with_revoked(mut self, revoked: RevokedNodes) -> Self {
        self.revoked = revoked;
        self
    }
}

impl ClientCertVerifier for ClusterClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)?;
        let id = identity_from_cert(end_entity, &self.cluster).map_err(|_| identity_rejected())?;
        if self.revoked.is_revoked(id.node) {
            return Err(Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Verifies server certificates against the cluster CA and the cluster's SPIFFE identities.
#[derive(Debug)]
pub struct ClusterServerVerifier {
    roots: RootCertStore,
    cluster: String,
    algorithms: WebPkiSupportedAlgorithms,
    revoked: RevokedNodes,
}

impl ClusterServerVerifier {
    /// A verifier trusting only `ca`, accepting identities of `cluster`.
    pub fn new(ca: &CertificateDer<'_>, cluster: &str) -> Result<Self, Error> {
        Ok(Self {
            roots: roots_of(ca)?,
            cluster: cluster.to_owned(),
            algorithms: provider().signature_verification_algorithms,
            revoked: RevokedNodes::new(),
        })
    }

    /// Also refuses the nodes in `revoked` (consulted on every handshake).
    pub fn with_revoked(mut self, revoked: RevokedNodes) -> Self {
        self.revoked = revoked;
        self
    }
}

impl ServerCertVerifier for ClusterServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        let id = identity_from_cert(end_entity, &self.cluster).map_err(|_| identity_rejected())?;
        if self.revoked.is_revoked(id.node) {
            return Err(Error::InvalidCertificate(CertificateError::Revoked));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Verifies a server by the CA digest from a join token, before the joiner sends anything.
///
/// After a successful handshake, [`pinned_ca`](Self::pinned_ca) returns the CA certificate
/// that matched. [`digest_mismatch`](Self::digest_mismatch) tells a failed handshake caused by
/// a CA other than the pinned one from other failures.
#[derive(Debug)]
pub struct PinnedCaVerifier {
    digest: CaDigest,
    algorithms: WebPkiSupportedAlgorithms,
    mismatch: AtomicBool,
    matched: std::sync::Mutex<Option<CertificateDer<'static>>>,
}

impl PinnedCaVerifier {
    /// A verifier pinning the CA whose certificate has SHA-256 `digest`.
    pub fn new(digest: CaDigest) -> Self {
        Self {
            digest,
            algorithms: provider().signature_verification_algorithms,
            mismatch: AtomicBool::new(false),
            matched: std::sync::Mutex::new(None),
        }
    }

    /// True once a server presented no CA certificate with the pinned digest.
    pub fn digest_mismatch(&self) -> bool {
        self.mismatch.load(Ordering::SeqCst)
    }

    /// The CA certificate that matched the pin, after a successful handshake.
    pub fn pinned_ca(&self) -> Option<CertificateDer<'static>> {
        self.matched.lock().ok().and_then(|m| m.clone())
    }
}

impl ServerCertVerifier for PinnedCaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|c| ca_digest(c.as_ref()) == self.digest)
        else {
            self.mismatch.store(true, Ordering::SeqCst);
            return Err(Error::InvalidCertificate(CertificateError::UnknownIssuer));
        };
        let cert = ParsedCertificate::try_from(end_entity)?;
        verify_server_cert_signed_by_trust_anchor(
            &cert,
            &roots_of(ca)?,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        let cluster = cluster_of_ca(ca).map_err(|_| identity_rejected())?;
        let server = identity_from_cert(end_entity, &cluster).map_err(|_| identity_rejected())?;
        if server.role != Role::Coordinator {
            return Err(identity_rejected());
        }
        if let Ok(mut m) = self.matched.lock() {
            *m = Some(ca.clone().into_owned());
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        tls12_refused()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
