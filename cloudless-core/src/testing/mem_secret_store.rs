//! `MemSecretStore`: the in-memory reference [`SecretStore`], for tests and simulations only.
//!
//! **Test-only cryptography.** Core pulls in no cipher and no RNG, so this store stands in with
//! SHA-256 alone: data keys and token strings are `SHA-256(domain ‖ seed ‖ counter)`, and values
//! are sealed by XOR with a SHA-256 keystream of their data key. That keeps plaintext out of the
//! store's memory and makes `rotate` really re-key, but it is neither authenticated nor secret
//! against anyone who knows the seed. Never use it outside tests.
//!
//! Tokens are bound to a secret, an audience and an expiry on the injected [`Clock`]. The store
//! keeps only a SHA-256 digest of each bearer string, never the string itself. Every operation
//! except `audit` appends one [`AuditRecord`] whose detail never holds a value or a token string.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::mem_secret_seal::{Sealed, seal, unseal};
use crate::clock::Clock;
use crate::ids::{NodeId, validate_dns_label};
use crate::secret::SecretMeta;
use crate::secret_store::{
    AuditRecord, SecretError, SecretStore, SecretToken, SecretValue, TokenGrant,
};

/// The in-memory reference secret store. Cheap to clone; clones share the data.
#[derive(Clone)]
pub struct MemSecretStore {
    clock: Arc<dyn Clock>,
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    seed: u64,
    counter: u64,
    secrets: BTreeMap<(String, String), Entry>,
    // Token id -> record; bearer digest -> token id.
    tokens: BTreeMap<String, TokenRecord>,
    by_digest: BTreeMap<String, String>,
    audit: Vec<AuditRecord>,
}

struct Entry {
    meta: SecretMeta,
    data_key: Zeroizing<[u8; 32]>,
    sealed: BTreeMap<String, Sealed>,
}

struct TokenRecord {
    namespace: String,
    name: String,
    audience: NodeId,
    expires_at_ms: u64,
    // Why the token no longer works (revoked, secret deleted), if it does not.
    dead: Option<&'static str>,
}

type Values = BTreeMap<String, SecretValue>;

impl Inner {
    /// `SHA-256(domain ‖ seed ‖ counter)`, a fresh 32-byte value per call.
    fn derive(&mut self, domain: &str) -> Zeroizing<[u8; 32]> {
        self.counter = self.counter.wrapping_add(1);
        let mut h = Sha256::new();
        h.update(domain.as_bytes());
        h.update(self.seed.to_be_bytes());
        h.update(self.counter.to_be_bytes());
        Zeroizing::new(h.finalize().into())
    }

    fn entry(&self, namespace: &str, name: &str) -> Result<&Entry, SecretError> {
        let key = (namespace.to_owned(), name.to_owned());
        self.secrets
            .get(&key)
            .ok_or_else(|| SecretError::NotFound(format!("{namespace}/{name}")))
    }
}

impl MemSecretStore {
    /// An empty store reading time from `clock`; `seed` makes its data keys and tokens
    /// reproducible (and therefore guessable by whoever knows it: tests only).
    pub fn new(clock: Arc<dyn Clock>, seed: u64) -> Self {
        let inner = Inner {
            seed,
            counter: 0,
            secrets: BTreeMap::new(),
            tokens: BTreeMap::new(),
            by_digest: BTreeMap::new(),
            audit: Vec::new(),
        };
        Self {
            clock,
            inner: Arc::new(Mutex::new(inner)),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs one operation under the lock and audits it: the operation's name and detail when it
    /// succeeds, `deny` with the error when it fails. `subject` may be refined by `op`.
    fn audited<T>(
        &self,
        action: &str,
        mut subject: String,
        op: impl FnOnce(&mut Inner, u64, &mut String) -> Result<(T, String), SecretError>,
    ) -> Result<T, SecretError> {
        let now = self.clock.now_ms();
        let mut inner = self.lock();
        let res = op(&mut inner, now, &mut subject);
        let (action, detail) = match &res {
            Ok((_, detail)) => (action.to_owned(), detail.clone()),
            Err(e) => ("deny".to_owned(), format!("{action}: {e}")),
        };
        inner.audit.push(AuditRecord {
            at_ms: now,
            action,
            subject,
            detail,
        });
        res.map(|(value, _)| value)
    }
}

impl fmt::Debug for MemSecretStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemSecretStore")
            .field("secrets", &inner.secrets.len())
            .field("tokens", &inner.tokens.len())
            .field("audit_records", &inner.audit.len())
            .finish_non_exhaustive()
    }
}

fn check_names(namespace: &str, name: &str) -> Result<(), SecretError> {
    validate_dns_label(namespace).map_err(|e| SecretError::Invalid(format!("namespace: {e}")))?;
    validate_dns_label(name).map_err(|e| SecretError::Invalid(format!("name: {e}")))
}

fn seal_all(data_key: &[u8; 32], values: &Values) -> BTreeMap<String, Sealed> {
    values
        .iter()
        .map(|(k, v)| (k.clone(), seal(data_key, k, &v.0)))
        .collect()
}

fn unseal_all(entry: &Entry) -> Values {
    entry
        .sealed
        .iter()
        .map(|(k, s)| (k.clone(), SecretValue(unseal(&entry.data_key, k, s))))
        .collect()
}

fn refused(why: &str) -> SecretError {
    SecretError::TokenRefused(why.to_owned())
}

#[async_trait]
impl SecretStore for MemSecretStore {
    async fn put(
        &self,
        namespace: &str,
        name: &str,
        values: Values,
    ) -> Result<SecretMeta, SecretError> {
        self.audited("put", format!("{namespace}/{name}"), |inner, now, _| {
            check_names(namespace, name)?;
            if values.keys().any(String::is_empty) {
                return Err(SecretError::Invalid("value keys must not be empty".into()));
            }
            let data_key = inner.derive("cloudless-test-dek");
            let sealed = seal_all(&data_key, &values);
            let keys: Vec<String> = values.keys().cloned().collect();
            let key = (namespace.to_owned(), name.to_owned());
            let meta = match inner.secrets.get(&key) {
                Some(old) => SecretMeta {
                    keys,
                    version: old.meta.version.saturating_add(1),
                    updated_at_ms: now,
                    ..old.meta.clone()
                },
                None => SecretMeta {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    keys,
                    version: 1,
                    created_at_ms: now,
                    updated_at_ms: now,
                },
            };
            let detail = format!("version {}, keys {:?}", meta.version, meta.keys);
            inner.secrets.insert(
                key,
                Entry {
                    meta: meta.clone(),
                    data_key,
                    sealed,
                },
            );
            Ok((meta, detail))
        })
    }

    async fn meta(&self, namespace: &str, name: &str) -> Result<SecretMeta, SecretError> {
        self.audited("meta", format!("{namespace}/{name}"), |inner, _, _| {
            let meta = inner.entry(namespace, name)?.meta.clone();
            Ok((meta, String::new()))
        })
    }

    async fn list(&self, namespace: &str) -> Result<Vec<SecretMeta>, SecretError> {
        self.audited("list", namespace.to_owned(), |inner, _, _| {
            let metas: Vec<SecretMeta> = inner
                .secrets
                .iter()
                .filter(|((ns, _), _)| ns == namespace)
                .map(|(_, e)| e.meta.clone())
                .collect();
            let detail = format!("{} secrets", metas.len());
            Ok((metas, detail))
        })
    }

    async fn rotate(&self, namespace: &str, name: &str) -> Result<SecretMeta, SecretError> {
        self.audited("rotate", format!("{namespace}/{name}"), |inner, now, _| {
            let values = unseal_all(inner.entry(namespace, name)?);
            let data_key = inner.derive("cloudless-test-dek");
            let sealed = seal_all(&data_key, &values);
            let key = (namespace.to_owned(), name.to_owned());
            let entry = inner
                .secrets
                .get_mut(&key)
                .ok_or_else(|| SecretError::NotFound(key.1.clone()))?;
            entry.meta.version = entry.meta.version.saturating_add(1);
            entry.meta.updated_at_ms = now;
            entry.data_key = data_key;
            entry.sealed = sealed;
            Ok((
                entry.meta.clone(),
                format!("version {}", entry.meta.version),
            ))
        })
    }

    async fn delete(&self, namespace: &str, name: &str) -> Result<(), SecretError> {
        self.audited("delete", format!("{namespace}/{name}"), |inner, _, _| {
            let key = (namespace.to_owned(), name.to_owned());
            if inner.secrets.remove(&key).is_none() {
                return Err(SecretError::NotFound(format!("{namespace}/{name}")));
            }
            let mut invalidated = 0;
            for token in inner.tokens.values_mut() {
                if token.namespace == namespace && token.name == name && token.dead.is_none() {
                    token.dead = Some("secret deleted");
                    invalidated += 1;
                }
            }
            Ok(((), format!("{invalidated} tokens invalidated")))
        })
    }

    async fn issue_token(
        &self,
        namespace: &str,
        name: &str,
        audience: NodeId,
        ttl_ms: u64,
    ) -> Result<SecretToken, SecretError> {
        self.audited("issue", format!("{namespace}/{name}"), |inner, now, _| {
            inner.entry(namespace, name)?;
            if ttl_ms == 0 {
                return Err(SecretError::Invalid("token ttl must be positive".into()));
            }
            let bearer = format!("cst_{}", hex::encode(*inner.derive("cloudless-test-token")));
            let id = format!("tok-{}", inner.counter);
            let expires_at_ms = now.saturating_add(ttl_ms);
            let record = TokenRecord {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                audience,
                expires_at_ms,
                dead: None,
            };
            inner
                .by_digest
                .insert(hex::encode(Sha256::digest(&bearer)), id.clone());
            inner.tokens.insert(id.clone(), record);
            let detail = format!("token {id} for {audience}, expires at {expires_at_ms}");
            Ok((
                SecretToken {
                    id,
                    token: bearer,
                    expires_at_ms,
                },
                detail,
            ))
        })
    }

    async fn redeem(
        &self,
        token: &str,
        audience: NodeId,
    ) -> Result<(TokenGrant, Values), SecretError> {
        self.audited("redeem", "token".to_owned(), |inner, now, subject| {
            let digest = hex::encode(Sha256::digest(token.as_bytes()));
            let id = inner
                .by_digest
                .get(&digest)
                .cloned()
                .ok_or_else(|| refused("unknown token"))?;
            *subject = id.clone();
            let t = inner
                .tokens
                .get(&id)
                .ok_or_else(|| refused("unknown token"))?;
            if let Some(why) = t.dead {
                return Err(refused(why));
            }
            if t.audience != audience {
                return Err(refused(&format!(
                    "issued to {}, presented by {audience}",
                    t.audience
                )));
            }
            if now >= t.expires_at_ms {
                return Err(refused("expired"));
            }
            let grant = TokenGrant {
                id: id.clone(),
                namespace: t.namespace.clone(),
                name: t.name.clone(),
                audience,
                expires_at_ms: t.expires_at_ms,
            };
            let values = unseal_all(inner.entry(&grant.namespace, &grant.name)?);
            *subject = format!("{}/{}", grant.namespace, grant.name);
            Ok(((grant, values), format!("token {id} by {audience}")))
        })
    }

    async fn revoke_token(&self, id: &str) -> Result<(), SecretError> {
        self.audited("revoke", id.to_owned(), |inner, _, _| {
            let t = inner
                .tokens
                .get_mut(id)
                .ok_or_else(|| SecretError::NotFound(id.to_owned()))?;
            t.dead = Some("revoked");
            Ok(((), format!("token for {}/{}", t.namespace, t.name)))
        })
    }

    async fn audit(&self) -> Result<Vec<AuditRecord>, SecretError> {
        Ok(self.lock().audit.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::testing::secret_store::{conformance, values};

    fn store(clock: &ManualClock) -> MemSecretStore {
        MemSecretStore::new(Arc::new(clock.clone()), 42)
    }

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        conformance(|clock| store(&clock)).await;
    }

    #[tokio::test]
    async fn token_expires_on_the_manual_clock() {
        let clock = ManualClock::new(10_000);
        let s = store(&clock);
        s.put("ns", "db", values(&[("pw", "hunter2")]))
            .await
            .unwrap();
        let t = s.issue_token("ns", "db", NodeId(1), 500).await.unwrap();
        assert_eq!(t.expires_at_ms, 10_500);
        clock.advance_ms(499);
        let (grant, vals) = s.redeem(&t.token, NodeId(1)).await.unwrap();
        assert_eq!(
            (grant.name.as_str(), vals["pw"].0.as_slice()),
            ("db", &b"hunter2"[..])
        );
        clock.advance_ms(1);
        let err = s.redeem(&t.token, NodeId(1)).await.unwrap_err();
        assert!(
            matches!(&err, SecretError::TokenRefused(why) if why == "expired"),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn audience_mismatch_and_revocation_are_refused_and_audited() {
        let clock = ManualClock::new(0);
        let s = store(&clock);
        s.put("ns", "db", values(&[("pw", "hunter2")]))
            .await
            .unwrap();
        let t = s.issue_token("ns", "db", NodeId(1), 1_000).await.unwrap();
        let err = s.redeem(&t.token, NodeId(2)).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "token refused: issued to n1, presented by n2"
        );
        s.revoke_token(&t.id).await.unwrap();
        let err = s.redeem(&t.token, NodeId(1)).await.unwrap_err();
        assert_eq!(err.to_string(), "token refused: revoked");
        let log = s.audit().await.unwrap();
        let lines: Vec<String> = log
            .iter()
            .map(|r| format!("{} {} {} {}", r.at_ms, r.action, r.subject, r.detail))
            .collect();
        assert_eq!(
            lines,
            [
                "0 put ns/db version 1, keys [\"pw\"]",
                "0 issue ns/db token tok-2 for n1, expires at 1000",
                "0 deny tok-2 redeem: token refused: issued to n1, presented by n2",
                "0 revoke tok-2 token for ns/db",
                "0 deny tok-2 redeem: token refused: revoked",
            ]
        );
    }

    #[tokio::test]
    async fn values_are_sealed_and_rotation_rekeys() {
        let clock = ManualClock::new(0);
        let s = store(&clock);
        s.put("ns", "db", values(&[("pw", "hunter2-hunter2")]))
            .await
            .unwrap();
        let sealed = |s: &MemSecretStore| {
            let inner = s.lock();
            let entry = &inner.secrets[&("ns".to_owned(), "db".to_owned())];
            entry.sealed["pw"].clone()
        };
        let before = sealed(&s);
        assert_ne!(before, b"hunter2-hunter2");
        s.rotate("ns", "db").await.unwrap();
        assert_ne!(sealed(&s), before);
        let t = s.issue_token("ns", "db", NodeId(1), 10).await.unwrap();
        assert_eq!(
            s.redeem(&t.token, NodeId(1)).await.unwrap().1["pw"].0,
            b"hunter2-hunter2"
        );
    }

    #[tokio::test]
    async fn same_seed_gives_same_tokens_other_seed_does_not() {
        let clock = ManualClock::new(0);
        let mut tokens = Vec::new();
        for seed in [1, 1, 2] {
            let s = MemSecretStore::new(Arc::new(clock.clone()), seed);
            s.put("ns", "db", values(&[("k", "v")])).await.unwrap();
            tokens.push(
                s.issue_token("ns", "db", NodeId(1), 10)
                    .await
                    .unwrap()
                    .token,
            );
        }
        assert_eq!(tokens[0], tokens[1]);
        assert_ne!(tokens[0], tokens[2]);
        assert_eq!(tokens[0].len(), 4 + 64);
    }
}
