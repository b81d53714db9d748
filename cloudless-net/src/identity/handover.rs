//! Handing the CA key to a joining coordinator, over the authenticated cluster transport.
//!
//! Every coordinator keeps the CA key (0600) so any of them can enroll and renew. A coordinator
//! that joined with a token calls [`FETCH_CA_KEY`] on an existing coordinator; only a
//! coordinator identity (from its TLS certificate) gets an answer.

use std::sync::Arc;
use std::time::Duration;

use cloudless_core::ids::NodeId;
use rustls_pki_types::CertificateDer;

use super::authz::require_coordinator;
use super::{ClusterCa, IdentityError};
use crate::rpc::{Method, Router, RpcClient, RpcError};

/// Request of [`FETCH_CA_KEY`] (empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct CaKeyRequest {}

/// Answer of [`FETCH_CA_KEY`]. Its `Debug` never shows the key.
#[derive(Clone, PartialEq, prost::Message)]
#[prost(skip_debug)]
pub struct CaKeyResponse {
    /// The CA private key, PEM.
    #[prost(string, tag = "1")]
    pub key_pem: String,
}

impl std::fmt::Debug for CaKeyResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CaKeyResponse(..)")
    }
}

/// The hand-over method, served by coordinators to coordinators only.
pub const FETCH_CA_KEY: Method<CaKeyRequest, CaKeyResponse> =
    Method::idempotent("cloudless.v1.Identity/FetchCaKey");

/// Serves [`FETCH_CA_KEY`] on `router`.
pub fn serve_ca_handover(router: &mut Router, ca: Arc<ClusterCa>) {
    router.unary(&FETCH_CA_KEY, move |ctx, _req: CaKeyRequest| {
        let ca = Arc::clone(&ca);
        async move {
            require_coordinator(&ctx.peer)?;
            tracing::warn!(peer = %ctx.peer, "handing the CA key to a coordinator");
            Ok(CaKeyResponse {
                key_pem: ca.key_pem().to_string(),
            })
        }
    });
}

/// Errors of [`fetch_ca`].
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// The call failed or was refused.
    #[error(transparent)]
    Rpc(#[from] RpcError),
    /// The key does not fit the CA certificate.
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// Fetches the CA key from `coordinator` and returns the full CA for `ca_cert` (the CA this
/// node already trusts). Save it with [`ClusterCa::save`] (key 0600).
pub async fn fetch_ca(
    client: &RpcClient,
    coordinator: NodeId,
    ca_cert: &CertificateDer<'_>,
    deadline: Duration,
) -> Result<ClusterCa, HandoverError> {
    let resp = client
        .call(coordinator, &FETCH_CA_KEY, CaKeyRequest {}, deadline)
        .await?;
    let key = zeroize::Zeroizing::new(resp.key_pem);
    Ok(ClusterCa::from_parts(ca_cert.clone().into_owned(), &key)?)
}
