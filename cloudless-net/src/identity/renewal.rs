//! Certificate renewal over the authenticated cluster transport, and when to renew.
//!
//! A node renews while its certificate is still valid: it generates a new key, sends a CSR on
//! the RPC method [`RENEW`], and the coordinator issues a certificate for the *caller's own*
//! identity (taken from the TLS certificate of the connection, never from the request). The
//! node then swaps credentials with `QuicTransport::rotate`; open connections keep running.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cloudless_core::clock::Clock;
use cloudless_core::ids::NodeId;
use rustls_pki_types::CertificateDer;

use super::{ClusterCa, IdentityError, NodeCredentials, NodeKey};
use crate::rpc::{Method, Router, RpcClient, RpcError, Status};

/// Request of [`RENEW`]: a CSR over the node's new key.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RenewRequest {
    /// DER certificate signing request.
    #[prost(bytes = "vec", tag = "1")]
    pub csr: Vec<u8>,
}

/// Answer of [`RENEW`]: the new certificate.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RenewResponse {
    /// DER certificate for the caller's identity.
    #[prost(bytes = "vec", tag = "1")]
    pub cert: Vec<u8>,
}

/// The renewal method, served by coordinators. Not idempotent: each call signs a new
/// certificate.
pub const RENEW: Method<RenewRequest, RenewResponse> = Method::new("cloudless.v1.Identity/Renew");

/// Serves [`RENEW`] on `router`: certificates of `lifetime` for the calling node's identity.
pub fn serve_renewal(
    router: &mut Router,
    ca: Arc<ClusterCa>,
    clock: Arc<dyn Clock>,
    lifetime: Duration,
) {
    router.unary(&RENEW, move |ctx, req: RenewRequest| {
        let (ca, clock) = (Arc::clone(&ca), Arc::clone(&clock));
        async move {
            let now = UNIX_EPOCH + Duration::from_millis(clock.now_ms());
            let cert = ca
                .issue(&req.csr, &ctx.peer, now, lifetime)
                .map_err(|e| match e {
                    IdentityError::InvalidCsr(_) | IdentityError::Refused(_) => {
                        Status::invalid_argument(e.to_string())
                    }
                    other => Status::unavailable(other.to_string()),
                })?;
            tracing::info!(node = %ctx.peer, "renewed certificate");
            Ok(RenewResponse {
                cert: cert.to_vec(),
            })
        }
    });
}

/// Errors of [`renew`].
#[derive(Debug, thiserror::Error)]
pub enum RenewError {
    /// The call failed or was refused.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The new certificate does not fit (another identity or CA).
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Renews `current` at `coordinator` with `new_key` (generated locally). The new certificate
/// must name the same identity.
pub async fn renew(
    client: &RpcClient,
    coordinator: NodeId,
    current: &NodeCredentials,
    new_key: &NodeKey,
    deadline: Duration,
) -> Result<NodeCredentials, RenewError> {
    let req = RenewRequest {
        csr: new_key.csr()?,
    };
    let resp = client.call(coordinator, &RENEW, req, deadline).await?;
    let creds = NodeCredentials::new(
        new_key,
        CertificateDer::from(resp.cert),
        current.ca().clone(),
    )?;
    if creds.identity() != current.identity() {
        return Err(IdentityError::BadIdentity(format!(
            "renewed certificate names {}, not {}",
            creds.identity(),
            current.identity()
        ))
        .into());
    }
    Ok(creds)
}

/// When to renew a certificate valid from `not_before` to `not_after`: at `50% + 30% * jitter`
/// of its lifetime, `jitter` in `[0, 1]` (drawn by the caller from a seeded RNG), so a fleet
/// enrolled together does not renew together.
pub fn renew_at(not_before: SystemTime, not_after: SystemTime, jitter: f64) -> SystemTime {
    let life = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    let fraction = 0.5 + 0.3 * jitter.clamp(0.0, 1.0);
    not_before + life.mul_f64(fraction)
}

/// The validity period of a certificate.
pub fn validity(cert: &CertificateDer<'_>) -> Result<(SystemTime, SystemTime), IdentityError> {
    let (_, x509) = x509_parser::parse_x509_certificate(cert.as_ref())
        .map_err(|e| IdentityError::MalformedCertificate(e.to_string()))?;
    let at = |t: i64| {
        u64::try_from(t)
            .map(|s| UNIX_EPOCH + Duration::from_secs(s))
            .map_err(|_| IdentityError::MalformedCertificate("validity before 1970".into()))
    };
    Ok((
        at(x509.validity().not_before.timestamp())?,
        at(x509.validity().not_after.timestamp())?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renewal_falls_between_half_and_four_fifths_of_the_lifetime() {
        let start = UNIX_EPOCH + Duration::from_secs(1_000);
        let end = start + Duration::from_secs(1_000);
        let secs = |t: SystemTime| t.duration_since(start).unwrap().as_secs();
        assert_eq!(secs(renew_at(start, end, 0.0)), 500);
        assert_eq!(secs(renew_at(start, end, 1.0)), 800);
        assert_eq!(secs(renew_at(start, end, 0.5)), 650);
        assert_eq!(secs(renew_at(start, end, 7.0)), 800, "jitter is clamped");
        assert_eq!(
            renew_at(end, start, 0.5),
            end,
            "an inverted period renews at once"
        );
    }
}
