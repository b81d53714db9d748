//! The `SecretStore` building block: secrets encrypted at rest, delivered with short-lived,
//! audience-bound tokens (CLD-REQ-063).

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use zeroize::Zeroize;

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
        // `zeroize` writes through volatile stores the optimizer cannot elide, and wipes the
        // spare capacity too, before the allocation is released.
        self.0.zeroize();
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
        f.debug_struct("SecretToken")
            .field("id", &self.id)
            .field("expires_at_ms", &self.expires_at_ms)
            .finish_non_exhaustive()
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
    /// Action: the operation that succeeded (`put`, `meta`, `list`, `rotate`, `delete`, `issue`,
    /// `redeem`, `revoke`), or `deny` for one that was refused or failed (the detail names the
    /// operation and why).
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
/// - Namespaces and names are DNS-1123 labels and value keys are non-empty, else `Invalid`;
///   `meta`, `rotate`, `delete` and `issue_token` of an unknown secret fail with `NotFound`.
/// - `put` replaces all keys of a secret and bumps its version; `rotate` re-encrypts under a
///   fresh data key and bumps the version; values are unchanged by `rotate`.
/// - `issue_token` binds a token to one secret, one audience node and a TTL (`ttl_ms` > 0, else
///   `Invalid`; an unknown secret is `NotFound`); the token expires at `now + ttl_ms` on the
///   store's clock. `redeem` returns the secret's current values only for that audience, only
///   while `now < expires_at_ms`, and only while neither the token was revoked nor the secret
///   deleted; otherwise it fails with `TokenRefused`. Token strings are unguessable.
/// - `revoke_token` of an unknown id fails with `NotFound`.
/// - Every operation except `audit` itself, allowed or denied, appends at least one audit record;
///   records never hold values or token strings.
/// - `Debug` and `Display` output (of the store, its values, tokens and errors) never contain
///   secret values or token strings.
/// - No method panics on any input.
///
/// # Example
///
/// A secret stored, then delivered to one node with a token (in-memory reference store,
/// feature `testing`):
///
/// ```rust
/// # #[cfg(feature = "testing")] {
/// use std::collections::BTreeMap;
/// use std::sync::Arc;
///
/// use cloudless_core::clock::ManualClock;
/// use cloudless_core::ids::NodeId;
/// use cloudless_core::secret_store::{SecretError, SecretStore, SecretValue};
/// use cloudless_core::testing::MemSecretStore;
///
/// # futures::executor::block_on(async {
/// let store: Arc<dyn SecretStore> = Arc::new(MemSecretStore::new(Arc::new(ManualClock::new(0)), 7));
/// let values = BTreeMap::from([("password".to_owned(), SecretValue(b"hunter2".to_vec()))]);
/// store.put("shop", "db", values).await?;
///
/// let token = store.issue_token("shop", "db", NodeId(4), 60_000).await?;
/// let (grant, values) = store.redeem(&token.token, NodeId(4)).await?;
/// assert_eq!((grant.name.as_str(), grant.audience), ("db", NodeId(4)));
/// assert_eq!(values["password"].0, b"hunter2");
///
/// // The token is bound to its audience: another node cannot use it.
/// assert!(store.redeem(&token.token, NodeId(5)).await.is_err());
/// # Ok::<(), SecretError>(())
/// # }).unwrap();
/// # }
/// ```
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Creates or replaces a secret.
    async fn put(
        &self,
        namespace: &str,
        name: &str,
        values: BTreeMap<String, SecretValue>,
    ) -> Result<SecretMeta, SecretError>;
    /// Metadata of a secret.
    async fn meta(&self, namespace: &str, name: &str) -> Result<SecretMeta, SecretError>;
    /// Secrets in a namespace, by name.
    async fn list(&self, namespace: &str) -> Result<Vec<SecretMeta>, SecretError>;
    /// Re-encrypts a secret under a new data key.
    async fn rotate(&self, namespace: &str, name: &str) -> Result<SecretMeta, SecretError>;
    /// Deletes a secret (and invalidates its tokens).
    async fn delete(&self, namespace: &str, name: &str) -> Result<(), SecretError>;
    /// Issues a delivery token for `audience`, valid `ttl_ms`.
    async fn issue_token(
        &self,
        namespace: &str,
        name: &str,
        audience: NodeId,
        ttl_ms: u64,
    ) -> Result<SecretToken, SecretError>;
    /// Presents a token as `audience`; returns the grant and the values.
    async fn redeem(
        &self,
        token: &str,
        audience: NodeId,
    ) -> Result<(TokenGrant, BTreeMap<String, SecretValue>), SecretError>;
    /// Revokes a token by id.
    async fn revoke_token(&self, id: &str) -> Result<(), SecretError>;
    /// Audit records, oldest first.
    async fn audit(&self) -> Result<Vec<AuditRecord>, SecretError>;
}
