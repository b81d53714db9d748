//! `MemObjectStore`: the in-memory reference [`ObjectStore`], for tests and simulations only.
//!
//! Buckets and object versions live in one map behind a mutex that is never held across an
//! `.await`. A put buffers its whole body first, hashes it, checks the expected checksum and the
//! quota, and only then inserts the version under the lock — so a failed put stores nothing and
//! a reader sees the old or the new version, never a mix.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use crate::clock::Clock;
use crate::ids::validate_dns_label;
use crate::object_store::{ListPage, ObjectBody, ObjectError, ObjectStore, PutOptions};
use crate::storage::{Bucket, BucketSpec, ObjectMeta};

/// Size of the chunks `get` streams a body in.
const CHUNK: usize = 64 * 1024;
/// Longest key, in bytes.
const MAX_KEY_LEN: usize = 1024;
/// Bytes in one unit of a bucket quota (`Storage` counts GiB).
const GIB: u64 = 1 << 30;

/// The in-memory reference object store. Cheap to clone; clones share the data.
#[derive(Clone)]
pub struct MemObjectStore {
    clock: Arc<dyn Clock>,
    quota_unit_bytes: u64,
    inner: Arc<Mutex<Inner>>,
}

#[derive(Default)]
struct Inner {
    buckets: BTreeMap<String, MemBucket>,
    // One counter for the whole store: versions of a key increase and are never reused, even
    // after the key is deleted and written again.
    last_version: u64,
}

struct MemBucket {
    info: Bucket,
    // Versions of each key, oldest first; never empty.
    objects: BTreeMap<String, Vec<Stored>>,
}

struct Stored {
    meta: ObjectMeta,
    data: Bytes,
}

impl MemBucket {
    fn used_bytes(&self) -> u64 {
        self.objects.values().flatten().map(|s| s.meta.size).sum()
    }
}

impl MemObjectStore {
    /// An empty store whose timestamps come from `clock`.
    pub fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            quota_unit_bytes: GIB,
            inner: Arc::new(Mutex::new(Inner::default())),
        }
    }

    /// Counts one unit of a bucket quota (normally 1 GiB) as `bytes`, so tests can exceed a
    /// quota without allocating gigabytes. Test-only knob.
    pub fn with_quota_unit_bytes(mut self, bytes: u64) -> Self {
        self.quota_unit_bytes = bytes;
        self
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panicking test thread must not make every later call panic too.
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl fmt::Debug for MemObjectStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("MemObjectStore")
            .field("buckets", &inner.buckets.len())
            .field("last_version", &inner.last_version)
            .finish_non_exhaustive()
    }
}

fn check_bucket_name(name: &str) -> Result<(), ObjectError> {
    validate_dns_label(name).map_err(|e| ObjectError::Invalid(format!("bucket name: {e}")))
}

fn check_key(key: &str) -> Result<(), ObjectError> {
    if key.is_empty() || key.len() > MAX_KEY_LEN {
        return Err(ObjectError::Invalid(format!(
            "key must be 1..={MAX_KEY_LEN} bytes (got {})",
            key.len()
        )));
    }
    if key.contains('\0') {
        return Err(ObjectError::Invalid("key must not contain NUL".into()));
    }
    Ok(())
}

fn no_such_object(bucket: &str, key: &str) -> ObjectError {
    ObjectError::NoSuchObject {
        bucket: bucket.to_owned(),
        key: key.to_owned(),
    }
}

fn find_version<'a>(
    bucket: &'a MemBucket,
    name: &str,
    key: &str,
    version: Option<u64>,
) -> Result<&'a Stored, ObjectError> {
    let versions = bucket
        .objects
        .get(key)
        .ok_or_else(|| no_such_object(name, key))?;
    let found = match version {
        None => versions.last(),
        Some(v) => versions.iter().find(|s| s.meta.version == v),
    };
    found.ok_or_else(|| no_such_object(name, key))
}

fn body_of(data: Bytes) -> ObjectBody {
    let chunks: Vec<Result<Bytes, ObjectError>> =
        data.chunks(CHUNK).map(|c| Ok(data.slice_ref(c))).collect();
    futures::stream::iter(chunks).boxed()
}

#[async_trait]
impl ObjectStore for MemObjectStore {
    async fn create_bucket(&self, name: &str, spec: BucketSpec) -> Result<Bucket, ObjectError> {
        check_bucket_name(name)?;
        if spec.replication == 0 {
            return Err(ObjectError::Invalid(
                "replication must be at least 1".into(),
            ));
        }
        let mut inner = self.lock();
        if inner.buckets.contains_key(name) {
            return Err(ObjectError::BucketExists(name.to_owned()));
        }
        let info = Bucket {
            name: name.to_owned(),
            spec,
            created_at_ms: self.clock.now_ms(),
        };
        let bucket = MemBucket {
            info: info.clone(),
            objects: BTreeMap::new(),
        };
        inner.buckets.insert(name.to_owned(), bucket);
        Ok(info)
    }

    async fn delete_bucket(&self, name: &str) -> Result<(), ObjectError> {
        let mut inner = self.lock();
        let bucket = inner
            .buckets
            .get(name)
            .ok_or_else(|| ObjectError::NoSuchBucket(name.to_owned()))?;
        if !bucket.objects.is_empty() {
            return Err(ObjectError::BucketNotEmpty(name.to_owned()));
        }
        inner.buckets.remove(name);
        Ok(())
    }

    async fn list_buckets(&self) -> Result<Vec<Bucket>, ObjectError> {
        Ok(self
            .lock()
            .buckets
            .values()
            .map(|b| b.info.clone())
            .collect())
    }

    async fn put(
        &self,
        bucket: &str,
        key: &str,
        mut body: ObjectBody,
        options: PutOptions,
    ) -> Result<ObjectMeta, ObjectError> {
        check_key(key)?;
        if !self.lock().buckets.contains_key(bucket) {
            return Err(ObjectError::NoSuchBucket(bucket.to_owned()));
        }
        // Buffer and hash the whole body before touching the store: atomicity by construction.
        let mut buf = BytesMut::new();
        let mut hasher = Sha256::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            hasher.update(&chunk);
            buf.extend_from_slice(&chunk);
        }
        let sha256 = hex::encode(hasher.finalize());
        if let Some(expected) = options.expected_sha256
            && !expected.eq_ignore_ascii_case(&sha256)
        {
            return Err(ObjectError::ChecksumMismatch {
                expected,
                actual: sha256,
            });
        }
        let data = buf.freeze();
        let size = data.len() as u64;

        let mut inner = self.lock();
        let next_version = inner.last_version.saturating_add(1);
        let now = self.clock.now_ms();
        let b = inner
            .buckets
            .get_mut(bucket)
            .ok_or_else(|| ObjectError::NoSuchBucket(bucket.to_owned()))?;
        let versioning = b.info.spec.versioning;
        if let Some(quota) = b.info.spec.quota {
            let limit = quota.gib().saturating_mul(self.quota_unit_bytes);
            let replaced = match b.objects.get(key) {
                Some(v) if !versioning => v.iter().map(|s| s.meta.size).sum(),
                _ => 0,
            };
            let after = b.used_bytes().saturating_sub(replaced).saturating_add(size);
            if after > limit {
                return Err(ObjectError::QuotaExceeded(bucket.to_owned()));
            }
        }
        let meta = ObjectMeta {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            version: next_version,
            size,
            sha256,
            content_type: options.content_type,
            created_at_ms: now,
        };
        let versions = b.objects.entry(key.to_owned()).or_default();
        if !versioning {
            versions.clear();
        }
        versions.push(Stored {
            meta: meta.clone(),
            data,
        });
        inner.last_version = next_version;
        Ok(meta)
    }

    async fn get(
        &self,
        bucket: &str,
        key: &str,
        version: Option<u64>,
    ) -> Result<(ObjectMeta, ObjectBody), ObjectError> {
        let inner = self.lock();
        let b = inner
            .buckets
            .get(bucket)
            .ok_or_else(|| ObjectError::NoSuchBucket(bucket.into()))?;
        let stored = find_version(b, bucket, key, version)?;
        Ok((stored.meta.clone(), body_of(stored.data.clone())))
    }

    async fn head(
        &self,
        bucket: &str,
        key: &str,
        version: Option<u64>,
    ) -> Result<ObjectMeta, ObjectError> {
        let inner = self.lock();
        let b = inner
            .buckets
            .get(bucket)
            .ok_or_else(|| ObjectError::NoSuchBucket(bucket.into()))?;
        Ok(find_version(b, bucket, key, version)?.meta.clone())
    }

    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, ObjectError> {
        if limit == 0 {
            return Err(ObjectError::Invalid("list limit must be at least 1".into()));
        }
        let inner = self.lock();
        let b = inner
            .buckets
            .get(bucket)
            .ok_or_else(|| ObjectError::NoSuchBucket(bucket.into()))?;
        let mut matching = b
            .objects
            .iter()
            .filter(|(k, _)| k.starts_with(prefix) && start_after.is_none_or(|a| k.as_str() > a))
            .filter_map(|(_, versions)| versions.last().map(|s| s.meta.clone()));
        let objects: Vec<ObjectMeta> = matching.by_ref().take(limit).collect();
        let more = matching.next().is_some();
        let next_start_after = if more {
            objects.last().map(|m| m.key.clone())
        } else {
            None
        };
        Ok(ListPage {
            objects,
            next_start_after,
        })
    }

    async fn delete(&self, bucket: &str, key: &str) -> Result<(), ObjectError> {
        let mut inner = self.lock();
        let b = inner
            .buckets
            .get_mut(bucket)
            .ok_or_else(|| ObjectError::NoSuchBucket(bucket.into()))?;
        b.objects
            .remove(key)
            .map(|_| ())
            .ok_or_else(|| no_such_object(bucket, key))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::quantity::Storage;
    use crate::testing::object_store::{body_of, conformance, read_body};

    fn store() -> MemObjectStore {
        MemObjectStore::new(Arc::new(ManualClock::new(1_000)))
    }

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        conformance(store).await;
    }

    #[tokio::test]
    async fn checksum_mismatch_stores_nothing() {
        let s = store();
        s.create_bucket("b", BucketSpec::default()).await.unwrap();
        let opts = PutOptions {
            expected_sha256: Some("ab".repeat(32)),
            ..PutOptions::default()
        };
        let err = s
            .put("b", "k", body_of(&[b"hello"]), opts)
            .await
            .unwrap_err();
        let ObjectError::ChecksumMismatch { actual, .. } = err else {
            panic!("got {err:?}")
        };
        assert_eq!(actual, hex::encode(Sha256::digest(b"hello")));
        assert!(matches!(
            s.head("b", "k", None).await,
            Err(ObjectError::NoSuchObject { .. })
        ));
        // The failed put did not consume a version number either.
        assert_eq!(
            s.put("b", "k", body_of(&[b"x"]), PutOptions::default())
                .await
                .unwrap()
                .version,
            1
        );
    }

    #[tokio::test]
    async fn quota_counts_retained_versions() {
        let s = store().with_quota_unit_bytes(10);
        let spec = BucketSpec {
            quota: Some(Storage(1)),
            versioning: true,
            ..BucketSpec::default()
        };
        s.create_bucket("q", spec).await.unwrap();
        s.put("q", "a", body_of(&[b"123456"]), PutOptions::default())
            .await
            .unwrap();
        let err = s
            .put("q", "a", body_of(&[b"12345"]), PutOptions::default())
            .await
            .unwrap_err();
        assert!(
            matches!(err, ObjectError::QuotaExceeded(ref b) if b == "q"),
            "{err:?}"
        );
        let (meta, body) = s.get("q", "a", None).await.unwrap();
        assert_eq!(
            (meta.version, read_body(body).await.as_ref()),
            (1, &b"123456"[..])
        );
        // Without versioning an overwrite frees the bytes it replaces.
        let spec = BucketSpec {
            quota: Some(Storage(1)),
            ..BucketSpec::default()
        };
        s.create_bucket("p", spec).await.unwrap();
        for body in [&b"1234567890"[..], b"0987654321"] {
            s.put("p", "a", body_of(&[body]), PutOptions::default())
                .await
                .unwrap();
        }
    }

    #[tokio::test]
    async fn timestamps_come_from_the_clock() {
        let clock = ManualClock::new(5_000);
        let s = MemObjectStore::new(Arc::new(clock.clone()));
        assert_eq!(
            s.create_bucket("t", BucketSpec::default())
                .await
                .unwrap()
                .created_at_ms,
            5_000
        );
        clock.advance_ms(7);
        let meta = s
            .put("t", "k", body_of(&[b"x"]), PutOptions::default())
            .await
            .unwrap();
        assert_eq!(meta.created_at_ms, 5_007);
        assert!(format!("{s:?}").starts_with("MemObjectStore"));
    }
}
