//! TLS for registry pulls: rustls on the workspace's one crypto provider (ring), trusting the
//! system's root certificates plus an optional CA file configured for the registry. TLS 1.3
//! only (rustls is built without TLS 1.2 in this workspace).

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::registry_auth::RegistryError;

/// The system's root certificates, read once per process (`SSL_CERT_FILE`/`SSL_CERT_DIR` or the
/// distribution's bundle); certificates that do not parse are skipped.
fn system_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let found = rustls_native_certs::load_native_certs();
        for e in &found.errors {
            tracing::debug!("system root certificates: {e}");
        }
        found.certs
    })
}

/// Reads the PEM certificates of `ca_file` (at least one).
fn ca_certs(registry: &str, ca_file: &Path) -> Result<Vec<CertificateDer<'static>>, RegistryError> {
    let bad = |reason: String| RegistryError::Config {
        registry: registry.to_owned(),
        reason: format!("ca_file {}: {reason}", ca_file.display()),
    };
    let certs = CertificateDer::pem_file_iter(ca_file)
        .map_err(|e| bad(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no PEM certificate in the file".to_owned()));
    }
    Ok(certs)
}

/// The client configuration for `registry`: system roots plus the certificates of `ca_file`.
/// With `require_roots`, a configuration trusting nothing is an error (for a plain-HTTP
/// registry it only matters if its token realm is HTTPS).
pub(crate) fn client_config(
    registry: &str,
    ca_file: Option<&Path>,
    require_roots: bool,
) -> Result<rustls::ClientConfig, RegistryError> {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(system_roots().iter().cloned());
    if let Some(file) = ca_file {
        for cert in ca_certs(registry, file)? {
            roots.add(cert).map_err(|e| RegistryError::Config {
                registry: registry.to_owned(),
                reason: format!("ca_file {}: {e}", file.display()),
            })?;
        }
    }
    if require_roots && roots.is_empty() {
        return Err(RegistryError::Config {
            registry: registry.to_owned(),
            reason: "no trusted root certificates: the system has none and no ca_file is \
                     configured"
                .to_owned(),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| RegistryError::Config {
            registry: registry.to_owned(),
            reason: format!("TLS: {e}"),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_errors_name_the_registry_and_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        let err = client_config("reg.example:5000", Some(&empty), true).expect_err("no certs");
        let text = err.to_string();
        assert!(text.contains("reg.example:5000"), "{text}");
        assert!(text.contains("empty.pem"), "{text}");
        let err =
            client_config("r", Some(&dir.path().join("missing.pem")), true).expect_err("missing");
        assert!(err.to_string().contains("missing.pem"), "{err}");
    }
}
