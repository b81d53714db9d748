//! Conformance suite for the [`ObjectStore`] contract.
//!
//! ```
//! use std::sync::Arc;
//! use cloudless_core::clock::ManualClock;
//! use cloudless_core::testing::mem_object_store::MemObjectStore;
//!
//! futures::executor::block_on(cloudless_core::testing::object_store::conformance(|| {
//!     MemObjectStore::new(Arc::new(ManualClock::new(0)))
//! }));
//! ```
//!
//! Each check runs on a fresh store from `make` and panics with the contract point it broke.
//! Quotas are not checked here: a quota counts whole GiB, too much for a unit test; each
//! implementation tests its own quota accounting.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::check;
use crate::object_store::{ObjectBody, ObjectError, ObjectStore, PutOptions};
use crate::storage::{BucketSpec, ObjectMeta};

const SUITE: &str = "ObjectStore";

/// Runs every check of the [`ObjectStore`] contract, each on a fresh store from `make`.
pub async fn conformance<S: ObjectStore>(make: impl Fn() -> S) {
    buckets(&make()).await;
    put_get_roundtrip(&make()).await;
    versions(&make()).await;
    failed_puts_store_nothing(&make()).await;
    listing(&make()).await;
    names_and_keys(&make()).await;
    missing_things(&make()).await;
}

/// A body made of `chunks`.
pub fn body_of(chunks: &[&[u8]]) -> ObjectBody {
    let owned: Vec<Result<Bytes, ObjectError>> = chunks
        .iter()
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    futures::stream::iter(owned).boxed()
}

/// Reads a whole body, panicking on a stream error.
pub async fn read_body(mut body: ObjectBody) -> Bytes {
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        buf.extend_from_slice(&check::ok(SUITE, "reading a body", chunk));
    }
    buf.freeze()
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

fn versioned() -> BucketSpec {
    BucketSpec {
        versioning: true,
        ..BucketSpec::default()
    }
}

async fn put<S: ObjectStore>(s: &S, bucket: &str, key: &str, data: &[u8]) -> ObjectMeta {
    let res = s
        .put(bucket, key, body_of(&[data]), PutOptions::default())
        .await;
    check::ok(SUITE, &format!("put {bucket}/{key}"), res)
}

async fn get<S: ObjectStore>(
    s: &S,
    bucket: &str,
    key: &str,
    v: Option<u64>,
) -> (ObjectMeta, Bytes) {
    let (meta, body) = check::ok(
        SUITE,
        &format!("get {bucket}/{key}"),
        s.get(bucket, key, v).await,
    );
    (meta, read_body(body).await)
}

async fn buckets<S: ObjectStore>(s: &S) {
    let b = check::ok(
        SUITE,
        "create_bucket",
        s.create_bucket("alpha", versioned()).await,
    );
    check::that(
        SUITE,
        "create_bucket returns the name and spec",
        b.name == "alpha" && b.spec.versioning,
    );
    check::ok(
        SUITE,
        "create second bucket",
        s.create_bucket("beta", BucketSpec::default()).await,
    );
    let names: Vec<String> = check::ok(SUITE, "list_buckets", s.list_buckets().await)
        .into_iter()
        .map(|b| b.name)
        .collect();
    check::that(
        SUITE,
        "list_buckets lists both buckets by name",
        names == ["alpha", "beta"],
    );
    let again = s.create_bucket("alpha", BucketSpec::default()).await;
    check::err(
        SUITE,
        "create an existing bucket",
        "BucketExists",
        again,
        |e| matches!(e, ObjectError::BucketExists(_)),
    );
    put(s, "alpha", "k", b"x").await;
    check::err(
        SUITE,
        "delete a non-empty bucket",
        "BucketNotEmpty",
        s.delete_bucket("alpha").await,
        |e| matches!(e, ObjectError::BucketNotEmpty(_)),
    );
    check::ok(SUITE, "delete the object", s.delete("alpha", "k").await);
    check::ok(
        SUITE,
        "delete an emptied bucket",
        s.delete_bucket("alpha").await,
    );
    check::err(
        SUITE,
        "delete a deleted bucket",
        "NoSuchBucket",
        s.delete_bucket("alpha").await,
        |e| matches!(e, ObjectError::NoSuchBucket(_)),
    );
}

async fn put_get_roundtrip<S: ObjectStore>(s: &S) {
    check::ok(
        SUITE,
        "create_bucket",
        s.create_bucket("data", BucketSpec::default()).await,
    );
    let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let (a, b) = big.split_at(70_001);
    let opts = PutOptions {
        content_type: "application/octet-stream".into(),
        expected_sha256: None,
    };
    let meta = check::ok(
        SUITE,
        "multi-chunk put",
        s.put("data", "big", body_of(&[a, b, b"", b"!"]), opts)
            .await,
    );
    let mut whole = big.clone();
    whole.push(b'!');
    check::that(
        SUITE,
        "put records the size of the body",
        meta.size == whole.len() as u64,
    );
    check::that(
        SUITE,
        "put records the SHA-256 (lowercase hex) of the body",
        meta.sha256 == sha256_hex(&whole),
    );
    check::that(
        SUITE,
        "put records the content type",
        meta.content_type == "application/octet-stream",
    );
    let (got_meta, got) = get(s, "data", "big", None).await;
    check::that(SUITE, "get returns the bytes put", got == whole);
    check::that(
        SUITE,
        "get returns the metadata put returned",
        got_meta == meta,
    );
    let head = check::ok(SUITE, "head", s.head("data", "big", None).await);
    check::that(
        SUITE,
        "head returns the metadata put returned",
        head == meta,
    );
    let empty = put(s, "data", "empty", b"").await;
    check::that(
        SUITE,
        "an empty object has size 0 and the empty SHA-256",
        empty.size == 0 && empty.sha256 == sha256_hex(b""),
    );
    check::that(
        SUITE,
        "an empty object reads back empty",
        get(s, "data", "empty", None).await.1.is_empty(),
    );
}

async fn versions<S: ObjectStore>(s: &S) {
    check::ok(
        SUITE,
        "create_bucket",
        s.create_bucket("ver", versioned()).await,
    );
    let v1 = put(s, "ver", "k", b"one").await;
    // A reader that opened the body before the overwrite still sees the old version whole.
    let (early_meta, early_body) = check::ok(SUITE, "get v1", s.get("ver", "k", None).await);
    let v2 = put(s, "ver", "k", b"two!").await;
    check::that(SUITE, "versions of a key increase", v2.version > v1.version);
    let early = read_body(early_body).await;
    check::that(
        SUITE,
        "a reader sees the old or the new version, never a mix",
        early_meta == v1 && early.as_ref() == b"one",
    );
    let (latest, data) = get(s, "ver", "k", None).await;
    check::that(
        SUITE,
        "get without a version returns the latest",
        latest == v2 && data.as_ref() == b"two!",
    );
    let (old, data) = get(s, "ver", "k", Some(v1.version)).await;
    check::that(
        SUITE,
        "with versioning, old versions stay readable",
        old == v1 && data.as_ref() == b"one",
    );
    let head = check::ok(
        SUITE,
        "head of v1",
        s.head("ver", "k", Some(v1.version)).await,
    );
    check::that(SUITE, "head of a version returns its metadata", head == v1);
    let missing = s
        .head("ver", "k", Some(v2.version.saturating_add(1000)))
        .await;
    check::err(
        SUITE,
        "head of an unknown version",
        "NoSuchObject",
        missing,
        |e| matches!(e, ObjectError::NoSuchObject { .. }),
    );
    check::ok(SUITE, "delete", s.delete("ver", "k").await);
    check::err(
        SUITE,
        "get after delete",
        "NoSuchObject",
        s.head("ver", "k", Some(v1.version)).await,
        |e| matches!(e, ObjectError::NoSuchObject { .. }),
    );
    let v3 = put(s, "ver", "k", b"three").await;
    check::that(
        SUITE,
        "versions are never reused, even after delete",
        v3.version > v2.version,
    );

    check::ok(
        SUITE,
        "create_bucket",
        s.create_bucket("plain", BucketSpec::default()).await,
    );
    let p1 = put(s, "plain", "k", b"a").await;
    let p2 = put(s, "plain", "k", b"b").await;
    check::that(
        SUITE,
        "versions increase without versioning too",
        p2.version > p1.version,
    );
    check::that(
        SUITE,
        "get returns the latest without versioning",
        get(s, "plain", "k", None).await.1.as_ref() == b"b",
    );
}

async fn failed_puts_store_nothing<S: ObjectStore>(s: &S) {
    check::ok(
        SUITE,
        "create_bucket",
        s.create_bucket("atomic", versioned()).await,
    );
    let v1 = put(s, "atomic", "k", b"good").await;
    let right = PutOptions {
        expected_sha256: Some(sha256_hex(b"fine")),
        ..PutOptions::default()
    };
    let v2 = check::ok(
        SUITE,
        "put with the right checksum",
        s.put("atomic", "k", body_of(&[b"fine"]), right).await,
    );
    let wrong = PutOptions {
        expected_sha256: Some(sha256_hex(b"something else")),
        ..PutOptions::default()
    };
    let res = s.put("atomic", "k", body_of(&[b"evil"]), wrong).await;
    check::err(
        SUITE,
        "put with a wrong checksum",
        "ChecksumMismatch",
        res,
        |e| matches!(e, ObjectError::ChecksumMismatch { .. }),
    );
    let (latest, data) = get(s, "atomic", "k", None).await;
    check::that(
        SUITE,
        "a checksum mismatch stores nothing",
        latest == v2 && data.as_ref() == b"fine",
    );

    let broken: ObjectBody = futures::stream::iter(vec![
        Ok(Bytes::from_static(b"partial")),
        Err(ObjectError::Unavailable("client went away".into())),
    ])
    .boxed();
    let res = s.put("atomic", "k", broken, PutOptions::default()).await;
    check::that(SUITE, "a put whose body fails fails", res.is_err());
    let res = s
        .put(
            "atomic",
            "fresh",
            body_of(&[b"x"]),
            PutOptions {
                expected_sha256: Some("00".into()),
                ..PutOptions::default()
            },
        )
        .await;
    check::that(SUITE, "a bad checksum fails", res.is_err());
    let (latest, _) = get(s, "atomic", "k", None).await;
    check::that(
        SUITE,
        "a failed body stream stores nothing",
        latest == v2 && v2.version > v1.version,
    );
    let page = check::ok(SUITE, "list", s.list("atomic", "", None, 10).await);
    let keys: Vec<&str> = page.objects.iter().map(|m| m.key.as_str()).collect();
    check::that(
        SUITE,
        "a failed put of a new key leaves no key behind",
        keys == ["k"],
    );
}

async fn listing<S: ObjectStore>(s: &S) {
    check::ok(
        SUITE,
        "create_bucket",
        s.create_bucket("list", BucketSpec::default()).await,
    );
    for key in ["b/1", "a/3", "a/1", "c", "a/2", "ab"] {
        put(s, "list", key, key.as_bytes()).await;
    }
    let v = put(s, "list", "a/2", b"newer").await;
    let page = check::ok(
        SUITE,
        "list with a prefix",
        s.list("list", "a/", None, 2).await,
    );
    let keys: Vec<&str> = page.objects.iter().map(|m| m.key.as_str()).collect();
    check::that(
        SUITE,
        "list orders by key, filters by prefix and honours limit",
        keys == ["a/1", "a/2"],
    );
    check::that(
        SUITE,
        "list returns latest versions",
        page.objects.get(1) == Some(&v),
    );
    check::that(
        SUITE,
        "a full page announces where to continue",
        page.next_start_after.is_some(),
    );
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let page = check::ok(
            SUITE,
            "list page",
            s.list("list", "", after.as_deref(), 2).await,
        );
        seen.extend(page.objects.into_iter().map(|m| m.key));
        after = page.next_start_after;
        if after.is_none() {
            break;
        }
    }
    check::that(
        SUITE,
        "paging visits every key once, in order",
        seen == ["a/1", "a/2", "a/3", "ab", "b/1", "c"],
    );
    let tail = check::ok(
        SUITE,
        "list after the last key",
        s.list("list", "", Some("c"), 5).await,
    );
    check::that(
        SUITE,
        "nothing after the last key",
        tail.objects.is_empty() && tail.next_start_after.is_none(),
    );
    let none = check::ok(
        SUITE,
        "list an unmatched prefix",
        s.list("list", "zzz", None, 5).await,
    );
    check::that(
        SUITE,
        "an unmatched prefix lists nothing",
        none.objects.is_empty(),
    );
    check::err(
        SUITE,
        "list with limit 0",
        "Invalid",
        s.list("list", "", None, 0).await,
        |e| matches!(e, ObjectError::Invalid(_)),
    );
}

async fn names_and_keys<S: ObjectStore>(s: &S) {
    let long_label = "a".repeat(64);
    for bad in [
        "",
        "Upper",
        "under_score",
        "-dash",
        "dash-",
        "a.b",
        long_label.as_str(),
    ] {
        let res = s.create_bucket(bad, BucketSpec::default()).await;
        check::err(
            SUITE,
            &format!("bucket name {bad:?}"),
            "Invalid",
            res,
            |e| matches!(e, ObjectError::Invalid(_)),
        );
    }
    check::ok(
        SUITE,
        "create_bucket",
        s.create_bucket("keys", BucketSpec::default()).await,
    );
    let long_key = "k".repeat(1025);
    for bad in ["", "nul\0inside", long_key.as_str()] {
        let res = s
            .put("keys", bad, body_of(&[b"x"]), PutOptions::default())
            .await;
        check::err(
            SUITE,
            &format!("key of {} bytes", bad.len()),
            "Invalid",
            res,
            |e| matches!(e, ObjectError::Invalid(_)),
        );
    }
    let max_key = "é".repeat(512);
    put(s, "keys", &max_key, b"ok").await;
    put(s, "keys", "unicode/✓ and spaces", b"ok").await;
    let page = check::ok(SUITE, "list", s.list("keys", "", None, 10).await);
    check::that(
        SUITE,
        "a rejected key stores nothing",
        page.objects.len() == 2,
    );
}

async fn missing_things<S: ObjectStore>(s: &S) {
    let no_bucket = |e: &ObjectError| matches!(e, ObjectError::NoSuchBucket(_));
    check::err(
        SUITE,
        "put to an unknown bucket",
        "NoSuchBucket",
        s.put("nope", "k", body_of(&[b"x"]), PutOptions::default())
            .await,
        no_bucket,
    );
    check::err(
        SUITE,
        "head in an unknown bucket",
        "NoSuchBucket",
        s.head("nope", "k", None).await,
        no_bucket,
    );
    check::err(
        SUITE,
        "get in an unknown bucket",
        "NoSuchBucket",
        s.get("nope", "k", None).await.map(|r| r.0),
        no_bucket,
    );
    check::err(
        SUITE,
        "list an unknown bucket",
        "NoSuchBucket",
        s.list("nope", "", None, 1).await,
        no_bucket,
    );
    check::err(
        SUITE,
        "delete in an unknown bucket",
        "NoSuchBucket",
        s.delete("nope", "k").await,
        no_bucket,
    );
    check::ok(
        SUITE,
        "create_bucket",
        s.create_bucket("empty", BucketSpec::default()).await,
    );
    let no_object = |e: &ObjectError| matches!(e, ObjectError::NoSuchObject { .. });
    check::err(
        SUITE,
        "get an unknown key",
        "NoSuchObject",
        s.get("empty", "k", None).await.map(|r| r.0),
        no_object,
    );
    check::err(
        SUITE,
        "head an unknown key",
        "NoSuchObject",
        s.head("empty", "k", None).await,
        no_object,
    );
    check::err(
        SUITE,
        "delete an unknown key",
        "NoSuchObject",
        s.delete("empty", "k").await,
        no_object,
    );
}
