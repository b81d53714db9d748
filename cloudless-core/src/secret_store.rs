//! The `SecretStore` building block: secrets encrypted at rest, delivered with short-lived,
//! audience-bound tokens (CLD-REQ-063).

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::BoxError;
use crate::ids::NodeId;
use crate::secret::SecretMeta;

/// Secret bytes. `Debug` never prints them.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretValue(pub Vec<u8>);

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretValue(<{} bytes redacted>)", self.0.len())
    }
}

impl Drop for SecretValue {
    fn drop(&mut self) {
        // Best effort: overwrite before the allocation is released.
        for b in self.0.iter_mut() {
            // SAFETY-free volatile-ish wipe: a plain write the optimizer may elide is still
            // better than nothing; the default store uses a zeroizing type internally.
            *b = 0;
        }
    }
}

/// A delivery token: lets `audience` fetch one secret until `expires_at_ms`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretToken {
    /// Token id (for revocation and audit).
    pub id: String,
    /// The bearer string presented when fetching.
    pub token: String,
    /// Expiry (ms since the Unix epoch).
    pub expires_at_ms: u64,
}

impl fmt::Debug for SecretToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretToken").field("id", &self.id).field("expires_at_ms", &self.expires_at_ms).finish_non_exhaustive()
    }
}

/// What a valid token grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenGrant {
    /// Token id.
    pub id: String,
    /// Namespace of the secret.
    pub namespace: String,
    /// Name of the secret.
    pub name: String,
    /// The node it was issued to.
    pub audience: NodeId,
    /// Expiry (ms since the Unix epoch).
    pub expires_at_ms: u64,
}

/// An audit record: who did what to which secret, when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// When (ms since the Unix epoch).
    pub at_ms: u64,
    /// Action: `put`, `get`, `rotate`, `delete`, `issue`, `redeem`, `revoke`, `deny`.
    pub action: String,
    /// `namespace/name` of the secret, or the token id.
    pub subject: String,
    /// Detail (never a secret value).
    pub detail: String,
}

/// Errors of [`SecretStore`] operations.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// No such secret.
    #[error("secret {0} not found")]
    NotFound(String),
    /// The token is unknown, expired, revoked, or presented by the wrong audience.
    #[error("token refused: {0}")]
    TokenRefused(String),
    /// A name or value is invalid.
    #[error("invalid: {0}")]
    Invalid(String),
    /// Decryption failed (wrong key or tampered data).
    #[error("decryption failed for {0}")]
    Decrypt(String),
    /// The store is locked (key not available).
    #[error("secret store locked")]
    Locked,
    /// Any other implementation error.
    #[error(transparent)]
    Other(BoxError),
}

/// Stores secrets encrypted at rest and hands them out by token.
///
/// # Contract
/// - Values are encrypted at rest with a per-secret data key; nothing readable is persisted.
/// - `put` replaces all keys of a secret and bumps its version; `rotate` re-encrypts under a
///   fresh data key and bumps the version; values are unchanged by `rotate`.
/// - `issue_token` binds a token to one secret, one audience node and a TTL; `redeem` returns
///   the values only for that audience before expiry and while not revoked.
/// - Every operation, allowed or denied, leaves an audit record; records never hold values.
/// - `Debug` output never contains secret values or token strings.
/// - No method panics on any input.
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Creates or replaces a secret.
    async fn put(&self, namespace: &str, name: &str, values: BTreeMap<String, SecretValue>) -> Result<SecretMeta, SecretError>;
    /// Metadata of a secret.
    async fn meta(&self, namespace: &str, name: &str) -> Result<SecretMeta, SecretError>;
    /// Secrets in a namespace, by name.
    async fn list(&self, namespace: &str) -> Result<Vec<SecretMeta>, SecretError>;
    /// Re-encrypts a secret under a new data key.
    async fn rotate(&self, namespace: &str, name: &str) -> Result<SecretMeta, SecretError>;
    /// Deletes a secret (and invalidates its tokens).
    async fn delete(&self, namespace: &str, name: &str) -> Result<(), SecretError>;
    /// Issues a delivery token for `audience`, valid `ttl_ms`.
    async fn issue_token(&self, namespace: &str, name: &str, audience: NodeId, ttl_ms: u64) -> Result<SecretToken, SecretError>;
    /// Presents a token as `audience`; returns the grant and the values.
    async fn redeem(&self, token: &str, audience: NodeId) -> Result<(TokenGrant, BTreeMap<String, SecretValue>), SecretError>;
    /// Revokes a token by id.
    async fn revoke_token(&self, id: &str) -> Result<(), SecretError>;
    /// Audit records, oldest first.
    async fn audit(&self) -> Result<Vec<AuditRecord>, SecretError>;
}
