//! Errors of identity operations (CA, certificates, credential files).

use std::path::PathBuf;

/// Errors of the cluster CA, node keys and certificates, and credential files.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// The cluster name is not a valid trust domain.
    #[error(
        "invalid cluster name {0:?}: use 1..=63 characters of [a-z0-9-], not starting or ending with '-'"
    )]
    InvalidClusterName(String),
    /// A certificate could not be parsed.
    #[error("malformed certificate: {0}")]
    MalformedCertificate(String),
    /// A certificate does not carry exactly one valid SPIFFE identity of the expected cluster.
    #[error("certificate identity rejected: {0}")]
    BadIdentity(String),
    /// A certificate signing request could not be parsed or its signature is invalid.
    #[error("invalid certificate signing request: {0}")]
    InvalidCsr(String),
    /// The CA refuses to issue this certificate (e.g. an identity of another cluster).
    #[error("refused to issue: {0}")]
    Refused(String),
    /// A credential file is missing, unreadable or malformed.
    #[error("credential file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// Certificate generation or signing failed.
    #[error("certificate generation failed: {0}")]
    Generation(String),
    /// The CA key is locked and the passphrase does not open it.
    #[error("the CA key is locked: wrong passphrase, or the locked key belongs to another CA")]
    Locked,
    /// Building a TLS configuration failed.
    #[error("TLS configuration: {0}")]
    Tls(String),
}

impl IdentityError {
    pub(crate) fn file(path: impl Into<PathBuf>, reason: impl std::fmt::Display) -> Self {
        Self::File {
            path: path.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn generation(e: impl std::fmt::Display) -> Self {
        Self::Generation(e.to_string())
    }
}
