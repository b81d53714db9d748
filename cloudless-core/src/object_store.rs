//! The `ObjectStore` building block: buckets of versioned, checksummed objects.

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use crate::BoxError;
use crate::storage::{Bucket, BucketSpec, ObjectMeta};

/// An object body: a stream of chunks.
pub type ObjectBody = BoxStream<'static, Result<Bytes, ObjectError>>;

/// Options of a put.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    /// Content type to record.
    pub content_type: String,
    /// If set, the put fails with `ChecksumMismatch` unless the body's SHA-256 (lowercase hex) matches.
    pub expected_sha256: Option<String>,
}

/// A page of a listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    /// Latest versions of the objects, ordered by key.
    pub objects: Vec<ObjectMeta>,
    /// Pass as `start_after` to get the next page; `None` at the end.
    pub next_start_after: Option<String>,
}

/// Errors of [`ObjectStore`] operations.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    /// No such bucket.
    #[error("bucket {0} not found")]
    NoSuchBucket(String),
    /// A bucket with that name exists.
    #[error("bucket {0} already exists")]
    BucketExists(String),
    /// The bucket still holds objects.
    #[error("bucket {0} is not empty")]
    BucketNotEmpty(String),
    /// No such object (or version).
    #[error("object {bucket}/{key} not found")]
    NoSuchObject {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// The body did not match the expected checksum; nothing was stored.
    #[error("checksum mismatch: expected {expected}, got {actual}")]
    ChecksumMismatch {
        /// Expected SHA-256.
        expected: String,
        /// Actual SHA-256.
        actual: String,
    },
    /// A name, key or spec is invalid.
    #[error("invalid: {0}")]
    Invalid(String),
    /// The bucket quota would be exceeded.
    #[error("quota exceeded for bucket {0}")]
    QuotaExceeded(String),
    /// The store cannot serve now (not enough replicas reachable).
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    /// Any other implementation error.
    #[error(transparent)]
    Other(BoxError),
}

/// Stores objects in buckets.
///
/// # Contract
/// - `put` is atomic: readers see the old or the new version, never a mix; a failed put (stream
///   error, checksum mismatch, quota) stores nothing.
/// - Every put of a key creates a new version (increasing, never reused even after `delete`);
///   `get`/`head` without a version return the latest; with `versioning` on, older versions
///   stay readable until `delete`; the recorded `sha256` and `size` match the bytes `get`
///   returns.
/// - `list` returns latest versions ordered by key, filtered by prefix, paged: keys strictly
///   after `start_after`, at most `limit` (> 0, else `Invalid`); following `next_start_after`
///   until `None` visits every matching key exactly once.
/// - Bucket names are DNS-1123 labels; keys are 1..=1024 bytes of UTF-8 without NUL; anything
///   else is `Invalid`.
/// - An unknown bucket is `NoSuchBucket`; an unknown key or version (including `delete` of a
///   missing key) is `NoSuchObject`; creating an existing bucket is `BucketExists`; deleting a
///   bucket that holds objects is `BucketNotEmpty`.
/// - No method panics on any input.
///
/// # Example
///
/// With the in-memory reference store (feature `testing`):
///
/// ```rust
/// # #[cfg(feature = "testing")] {
/// use std::sync::Arc;
///
/// use bytes::Bytes;
/// use cloudless_core::clock::ManualClock;
/// use cloudless_core::object_store::{ObjectStore, PutOptions};
/// use cloudless_core::storage::BucketSpec;
/// use cloudless_core::testing::MemObjectStore;
/// use futures::{StreamExt, TryStreamExt, stream};
///
/// # futures::executor::block_on(async {
/// let store: Arc<dyn ObjectStore> = Arc::new(MemObjectStore::new(Arc::new(ManualClock::new(0))));
/// store.create_bucket("photos", BucketSpec { versioning: true, ..BucketSpec::default() }).await?;
///
/// let body = stream::iter([Ok(Bytes::from_static(b"hello ")), Ok(Bytes::from_static(b"world"))]);
/// let meta = store.put("photos", "a.txt", body.boxed(), PutOptions::default()).await?;
/// assert_eq!(meta.size, 11);
///
/// let (meta, body) = store.get("photos", "a.txt", None).await?;
/// let bytes: Vec<Bytes> = body.try_collect().await?;
/// assert_eq!(bytes.concat(), b"hello world");
/// assert_eq!(meta.sha256.len(), 64);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// # }
/// ```
#[async_trait]
pub trait ObjectStore: Send + Sync + 'static {
    /// Creates a bucket.
    async fn create_bucket(&self, name: &str, spec: BucketSpec) -> Result<Bucket, ObjectError>;
    /// Deletes an empty bucket.
    async fn delete_bucket(&self, name: &str) -> Result<(), ObjectError>;
    /// All buckets, by name.
    async fn list_buckets(&self) -> Result<Vec<Bucket>, ObjectError>;
    /// Stores a new version of `key`.
    async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: ObjectBody,
        options: PutOptions,
    ) -> Result<ObjectMeta, ObjectError>;
    /// Reads an object (latest version when `version` is `None`).
    async fn get(
        &self,
        bucket: &str,
        key: &str,
        version: Option<u64>,
    ) -> Result<(ObjectMeta, ObjectBody), ObjectError>;
    /// Reads an object's metadata.
    async fn head(
        &self,
        bucket: &str,
        key: &str,
        version: Option<u64>,
    ) -> Result<ObjectMeta, ObjectError>;
    /// Lists objects whose key starts with `prefix`, after `start_after`, at most `limit`.
    async fn list(
        &self,
        bucket: &str,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<ListPage, ObjectError>;
    /// Deletes every version of `key`.
    async fn delete(&self, bucket: &str, key: &str) -> Result<(), ObjectError>;
}
