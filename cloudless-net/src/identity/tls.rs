//! rustls configurations for the cluster: TLS 1.3 only, the ring provider only, one ALPN.

use std::sync::Arc;

use rustls::client::danger::ServerCertVerifier;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::CertificateDer;

use super::IdentityError;
use super::ca::cluster_of_ca;
use super::verify::{ClusterClientVerifier, ClusterServerVerifier, provider};
use super::{NodeCredentials, RevokedNodes};

/// Turns off session resumption on a server: a resumed TLS 1.3 session is not re-verified.
fn no_server_resumption(config: &mut ServerConfig) {
    config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
    config.send_tls13_tickets = 0;
}

fn tls(e: impl std::fmt::Display) -> IdentityError {
    IdentityError::Tls(e.to_string())
}

/// A server configuration that requires a client certificate of the credentials' cluster and
/// presents the credentials' chain.
pub fn server_config(creds: &NodeCredentials, alpn: &[u8]) -> Result<ServerConfig, IdentityError> {
    server_config_with_revoked(creds, alpn, RevokedNodes::new())
}

/// [`server_config`] that also refuses clients whose node is in `revoked`.
pub fn server_config_with_revoked(
    creds: &NodeCredentials,
    alpn: &[u8],
    revoked: RevokedNodes,
) -> Result<ServerConfig, IdentityError> {
    let verifier = ClusterClientVerifier::new(creds.ca(), &creds.identity().cluster)
        .map_err(tls)?
        .with_revoked(revoked);
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(creds.chain().to_vec(), creds.key().clone_key())
        .map_err(tls)?;
    no_server_resumption(&mut config);
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// A server configuration that asks for no client certificate: only for the enrollment
/// endpoint, where the join token is the credential.
pub fn server_config_without_client_auth(
    creds: &NodeCredentials,
    alpn: &[u8],
) -> Result<ServerConfig, IdentityError> {
    let mut config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .with_no_client_auth()
        .with_single_cert(creds.chain().to_vec(), creds.key().clone_key())
        .map_err(tls)?;
    no_server_resumption(&mut config);
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}

/// A client configuration that verifies servers against `ca` (identities of the CA's cluster)
/// and presents `creds` when given. Without credentials the server refuses the handshake:
/// that case exists for tests and for clients that only probe.
pub fn client_config(
    ca: &CertificateDer<'_>,
    creds: Option<&NodeCredentials>,
    alpn: &[u8],
) -> Result<ClientConfig, IdentityError> {
    client_config_with_revoked(ca, creds, alpn, RevokedNodes::new())
}

/// [`client_config`] that also refuses servers whose node is in `revoked`.
pub fn client_config_with_revoked(
    ca: &CertificateDer<'_>,
    creds: Option<&NodeCredentials>,
    alpn: &[u8],
    revoked: RevokedNodes,
) -> Result<ClientConfig, IdentityError> {
    let cluster = cluster_of_ca(ca)?;
    let verifier = ClusterServerVerifier::new(ca, &cluster)
        .map_err(tls)?
        .with_revoked(revoked);
    client_config_with_verifier(Arc::new(verifier), creds, alpn)
}

/// A client configuration with a custom server verifier (e.g. a pinned CA digest).
pub fn client_config_with_verifier(
    verifier: Arc<dyn ServerCertVerifier>,
    creds: Option<&NodeCredentials>,
    alpn: &[u8],
) -> Result<ClientConfig, IdentityError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(tls)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let mut config = match creds {
        Some(c) => builder
            .with_client_auth_cert(c.chain().to_vec(), c.key().clone_key())
            .map_err(tls)?,
        None => builder.with_no_client_auth(),
    };
    // Every connection gets a full handshake, so certificates (expiry, revocation) are
    // checked each time; resumed sessions would skip the client-certificate check.
    config.resumption = rustls::client::Resumption::disabled();
    config.alpn_protocols = vec![alpn.to_vec()];
    Ok(config)
}
