//! The joiner side of enrollment, and the connect helper that pins the CA by digest.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use cloudless_core::node::NodeReport;
use prost::Message;
use rustls_pki_types::CertificateDer;

use super::messages::{EnrollRequest, EnrollResponse, RefusalCode};
use super::{ENROLL_ALPN, MAX_ENROLL_MESSAGE};
use crate::identity::spiffe::{CaDigest, ca_digest};
use crate::identity::token::{JoinToken, TokenRole};
use crate::identity::verify::PinnedCaVerifier;
use crate::identity::{IdentityError, NodeCredentials, NodeKey, tls};
use crate::wire::pb;

/// Errors of [`enroll`] and [`connect_pinned`].
#[derive(Debug, thiserror::Error)]
pub enum EnrollError {
    /// The server presented no CA certificate with the token's digest: nothing was sent.
    #[error("the server's CA does not match the join token's CA digest; nothing was sent")]
    CaMismatch,
    /// The server could not be reached, or the handshake failed for another reason.
    #[error("cannot reach {addr}: {reason}")]
    Unreachable {
        /// Address dialed.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
    /// The coordinator refused the enrollment.
    #[error("enrollment refused ({code:?}): {message}")]
    Refused {
        /// Why, as a code.
        code: RefusalCode,
        /// Detail.
        message: String,
    },
    /// The coordinator's answer is malformed or does not fit the request.
    #[error("bad enrollment answer: {0}")]
    Protocol(String),
    /// Local key or certificate handling failed.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// What a joiner asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollParams {
    /// The node's human name.
    pub name: String,
    /// The role to join as; the token must grant it.
    pub role: TokenRole,
    /// The node's first resource report.
    pub report: NodeReport,
}

/// Dials `addr` with ALPN `alpn`, accepting the server only if its chain contains the CA whose
/// digest is `digest` and its certificate is a coordinator's of that CA. Returns the endpoint
/// (keep it alive with the connection), the connection, and the pinned CA certificate.
pub async fn connect_pinned(
    addr: SocketAddr,
    digest: CaDigest,
    alpn: &[u8],
    timeout: Duration,
) -> Result<(quinn::Endpoint, quinn::Connection, CertificateDer<'static>), EnrollError> {
    let unreachable = |reason: String| EnrollError::Unreachable { addr, reason };
    let verifier = Arc::new(PinnedCaVerifier::new(digest));
    let tls = tls::client_config_with_verifier(verifier.clone(), None, alpn)?;
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls))
        .map_err(|e| unreachable(e.to_string()))?;
    let local: SocketAddr = if addr.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let mut endpoint = quinn::Endpoint::client(local).map_err(|e| unreachable(e.to_string()))?;
    endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connecting = endpoint
        .connect(addr, "cloudless")
        .map_err(|e| unreachable(e.to_string()))?;
    let conn = match tokio::time::timeout(timeout, connecting).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(_)) if verifier.digest_mismatch() => return Err(EnrollError::CaMismatch),
        Ok(Err(e)) => return Err(unreachable(e.to_string())),
        Err(_) => return Err(unreachable("timed out".into())),
    };
    let ca = verifier
        .pinned_ca()
        .ok_or_else(|| EnrollError::Protocol("handshake finished without the pinned CA".into()))?;
    Ok((endpoint, conn, ca))
}

/// Enrolls at the coordinator's enrollment endpoint `addr` with `token`, for `key` (generated
/// locally; only its CSR is sent). Returns credentials ready for
/// [`QuicTransport::bind`](crate::quic::QuicTransport::bind). Saving them (`save`, key 0600)
/// is the caller's choice.
pub async fn enroll(
    addr: SocketAddr,
    token: &JoinToken,
    key: &NodeKey,
    params: EnrollParams,
    timeout: Duration,
) -> Result<NodeCredentials, EnrollError> {
    let (endpoint, conn, ca) =
        connect_pinned(addr, token.ca_digest(), ENROLL_ALPN, timeout).await?;
    let request = EnrollRequest {
        token: token.reveal().to_string(),
        csr: key.csr()?,
        name: params.name.clone(),
        role: params.role.as_str().to_owned(),
        report: Some(pb::NodeReport::from(params.report)),
        renew_cert: Vec::new(),
    };
    let creds = exchange(addr, endpoint, conn, ca, request, key, timeout).await?;
    let id = creds.identity();
    if id.role.to_string() != params.role.as_str() {
        return Err(EnrollError::Protocol(format!(
            "the certificate names {id}, not the requested role"
        )));
    }
    Ok(creds)
}

impl EnrollError {
    /// True when asking again later may succeed: the coordinator could not be reached, or it
    /// answered `Unavailable` (no leader yet, a leader that cannot confirm its quorum). Refused
    /// tokens, taken names, CA mismatches and malformed answers are final.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            EnrollError::Unreachable { .. }
                | EnrollError::Refused {
                    code: RefusalCode::Unavailable,
                    ..
                }
        )
    }
}

/// [`enroll`], asked again while the failure [is transient](EnrollError::is_transient), with
/// pauses growing from 200 ms to 5 s, until `patience` has passed (then the last error).
///
/// A retry never mints a second node: a name registered by an attempt whose answer was lost
/// makes the retry `NameTaken`. It may spend another token use: an attempt that failed after
/// the server recorded its use (the leader changed between the two commands) has spent one, so
/// a single-use token then ends in `TokenRefused` and a multi-use token loses a use per such
/// attempt.
pub async fn enroll_patiently(
    addr: SocketAddr,
    token: &JoinToken,
    key: &NodeKey,
    params: EnrollParams,
    timeout: Duration,
    patience: Duration,
) -> Result<NodeCredentials, EnrollError> {
    let give_up = tokio::time::Instant::now() + patience;
    let mut pause = Duration::from_millis(200);
    loop {
        match enroll(addr, token, key, params.clone(), timeout).await {
            Err(e) if e.is_transient() && tokio::time::Instant::now() + pause < give_up => {
                tracing::info!(%addr, error = %e, retry_in = ?pause, "enrollment not possible yet");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
            }
            other => return other,
        }
    }
}

/// Renews an expired certificate within the grace window at the enrollment endpoint `addr`:
/// proves possession of `key` (the key `old` names) and gets a fresh certificate for the same
/// identity. The server is pinned by the digest of `ca`.
pub async fn renew_offline(
    addr: SocketAddr,
    ca: &CertificateDer<'_>,
    old: &CertificateDer<'_>,
    key: &NodeKey,
    timeout: Duration,
) -> Result<NodeCredentials, EnrollError> {
    let (endpoint, conn, pinned) =
        connect_pinned(addr, ca_digest(ca), ENROLL_ALPN, timeout).await?;
    let request = EnrollRequest {
        csr: key.csr()?,
        renew_cert: old.to_vec(),
        ..EnrollRequest::default()
    };
    let creds = exchange(addr, endpoint, conn, pinned, request, key, timeout).await?;
    let was = crate::identity::spiffe::any_identity_from_cert(old)?;
    if creds.identity() != &was {
        return Err(EnrollError::Protocol(format!(
            "the renewed certificate names {}, not {was}",
            creds.identity()
        )));
    }
    Ok(creds)
}

/// Sends one request, reads the answer, and checks it against the pinned CA.
async fn exchange(
    addr: SocketAddr,
    endpoint: quinn::Endpoint,
    conn: quinn::Connection,
    ca: CertificateDer<'static>,
    request: EnrollRequest,
    key: &NodeKey,
    timeout: Duration,
) -> Result<NodeCredentials, EnrollError> {
    let exchange = async {
        let (mut send, mut recv) = conn.open_bi().await.map_err(|e| e.to_string())?;
        send.write_all(&request.encode_to_vec())
            .await
            .map_err(|e| e.to_string())?;
        send.finish().map_err(|e| e.to_string())?;
        recv.read_to_end(MAX_ENROLL_MESSAGE)
            .await
            .map_err(|e| e.to_string())
    };
    let answer = tokio::time::timeout(timeout, exchange).await;
    conn.close(0u8.into(), b"done");
    endpoint.close(0u8.into(), b"done");
    let bytes = answer
        .map_err(|_| EnrollError::Unreachable {
            addr,
            reason: "timed out waiting for the answer".into(),
        })?
        .map_err(|reason| EnrollError::Unreachable { addr, reason })?;
    let response = EnrollResponse::decode(bytes.as_slice())
        .map_err(|e| EnrollError::Protocol(e.to_string()))?;
    // A refusal code this build does not know (a newer coordinator) is final, never retried.
    let code = RefusalCode::try_from(response.refusal).map_err(|_| {
        EnrollError::Protocol(format!(
            "refused with unknown code {}: {}",
            response.refusal, response.message
        ))
    })?;
    if code != RefusalCode::None {
        return Err(EnrollError::Refused {
            code,
            message: response.message,
        });
    }
    if response.ca != ca.as_ref() {
        return Err(EnrollError::Protocol("the answer names another CA".into()));
    }
    let creds = NodeCredentials::new(key, CertificateDer::from(response.cert), ca)?;
    if creds.identity().node.get() != response.node {
        return Err(EnrollError::Protocol(format!(
            "the certificate names {}, not node {}",
            creds.identity(),
            response.node
        )));
    }
    Ok(creds)
}
