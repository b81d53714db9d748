//! Opening a corrupted, foreign, future-version or busy data directory fails with a typed
//! error, without a panic and without changing a byte of the file.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

use std::path::Path;

use cloudless_store::{DATA_FILE, OpenError, STORE_FORMAT_VERSION, open_store};
use redb::{Database, TableDefinition};

const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

fn bytes_of(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join(DATA_FILE)).unwrap()
}

fn set(dir: &Path, table: TableDefinition<&str, &[u8]>, key: &str, value: &[u8]) {
    let db = Database::create(dir.join(DATA_FILE)).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(table).unwrap().insert(key, value).unwrap();
    txn.commit().unwrap();
}

#[test]
fn a_fresh_directory_opens_and_reopens() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_store(dir.path(), 16).unwrap());
    drop(open_store(dir.path(), 16).unwrap());
}

#[test]
fn garbage_is_refused_as_corrupt_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    // Deterministic non-redb bytes.
    let garbage: Vec<u8> = (0..65_536u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    std::fs::write(dir.path().join(DATA_FILE), &garbage).unwrap();
    match open_store(dir.path(), 16) {
        Err(OpenError::Corrupt { .. }) => {}
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(bytes_of(dir.path()), garbage);
}

#[test]
fn a_future_format_version_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_store(dir.path(), 16).unwrap());
    let future = STORE_FORMAT_VERSION + 1;
    set(dir.path(), META, "format", &future.to_be_bytes());
    let before = bytes_of(dir.path());
    match open_store(dir.path(), 16) {
        Err(OpenError::FutureVersion {
            found, supported, ..
        }) => {
            assert_eq!(found, future);
            assert_eq!(supported, STORE_FORMAT_VERSION);
        }
        other => panic!("expected FutureVersion, got {other:?}"),
    }
    assert_eq!(bytes_of(dir.path()), before);
}

#[test]
fn a_redb_file_of_another_program_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    set(dir.path(), META, "something", b"else");
    let before = bytes_of(dir.path());
    assert!(matches!(
        open_store(dir.path(), 16),
        Err(OpenError::Corrupt { .. })
    ));
    assert_eq!(bytes_of(dir.path()), before);
}

#[test]
fn an_undecodable_snapshot_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    drop(open_store(dir.path(), 16).unwrap());
    set(dir.path(), SNAPSHOT, "current", b"\xff\x00not cbor");
    let before = bytes_of(dir.path());
    match open_store(dir.path(), 16) {
        Err(e @ OpenError::Corrupt { .. }) => assert!(e.to_string().contains("corrupted")),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(bytes_of(dir.path()), before);
}

#[test]
fn a_store_in_use_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = open_store(dir.path(), 16).unwrap();
    assert!(matches!(
        open_store(dir.path(), 16),
        Err(OpenError::InUse { .. })
    ));
    drop(first);
    drop(open_store(dir.path(), 16).unwrap());
}
