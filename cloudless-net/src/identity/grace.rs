//! Offline renewal: a node that was offline past its certificate's expiry renews within a
//! grace window by proving possession of its key — its CSR must be signed by the very key its
//! old certificate names. Past the window it re-joins with a token.
//!
//! Replaying a captured request gains nothing: the certificate it yields is bound to a key the
//! replayer does not hold.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cloudless_core::transport::PeerIdentity;
use rcgen::{CertificateSigningRequestParams, PublicKeyData};
use rustls_pki_types::{CertificateDer, CertificateSigningRequestDer};

use super::spiffe::identity_from_cert;
use super::{ClusterCa, IdentityError};

/// Default grace window after expiry.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(30 * 24 * 3600);

impl ClusterCa {
    /// Re-issues `old` (a certificate this CA signed, possibly expired) for the same identity
    /// over the key in `csr`, which must be the key `old` names, if `old` expired less than
    /// `grace` before `now`. The caller checks that the node still exists and is not revoked.
    pub fn reissue(
        &self,
        old: &CertificateDer<'_>,
        csr: &[u8],
        now: SystemTime,
        grace: Duration,
        lifetime: Duration,
    ) -> Result<(PeerIdentity, CertificateDer<'static>), IdentityError> {
        let refused = |why: &str| IdentityError::Refused(why.to_owned());
        let (_, old_x509) = x509_parser::parse_x509_certificate(old.as_ref())
            .map_err(|e| IdentityError::MalformedCertificate(e.to_string()))?;
        let (_, ca_x509) = x509_parser::parse_x509_certificate(self.cert().as_ref())
            .map_err(|e| IdentityError::MalformedCertificate(e.to_string()))?;
        old_x509
            .verify_signature(Some(ca_x509.public_key()))
            .map_err(|_| refused("the old certificate was not issued by this CA"))?;
        let identity = identity_from_cert(old, self.cluster())?;
        let not_after = u64::try_from(old_x509.validity().not_after.timestamp())
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
            .map_err(|_| refused("invalid validity period"))?;
        if not_after
            .checked_add(grace)
            .is_none_or(|deadline| now > deadline)
        {
            return Err(refused(
                "the certificate expired longer ago than the grace window; re-join with a token",
            ));
        }
        let request =
            CertificateSigningRequestParams::from_der(&CertificateSigningRequestDer::from(csr))
                .map_err(|e| IdentityError::InvalidCsr(e.to_string()))?;
        if request.public_key.der_bytes() != old_x509.public_key().subject_public_key.data.as_ref()
        {
            return Err(refused(
                "the request is not signed by the key of the old certificate",
            ));
        }
        let cert = self.issue(csr, &identity, now, lifetime)?;
        Ok((identity, cert))
    }
}
