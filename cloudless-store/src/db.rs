//! The redb data file of one coordinator: table layout, format version, and safe opening.
//!
//! ```text
//!  <data dir>/raft.redb
//!    meta      &str -> bytes   "format" (u32 BE), "vote", "committed", "purged" (CBOR)
//!    log       u64  -> bytes   index -> CBOR openraft Entry
//!    snapshot  &str -> bytes   "current" -> CBOR StoredSnapshot (meta + ClusterState)
//! ```

use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

/// The on-disk format version this build writes and understands.
pub const STORE_FORMAT_VERSION: u32 = 1;

/// The data file inside a coordinator's data directory.
pub const DATA_FILE: &str = "raft.redb";

pub(crate) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(crate) const LOG: TableDefinition<u64, &[u8]> = TableDefinition::new("log");
pub(crate) const SNAPSHOT: TableDefinition<&str, &[u8]> = TableDefinition::new("snapshot");

pub(crate) const KEY_FORMAT: &str = "format";
pub(crate) const KEY_VOTE: &str = "vote";
pub(crate) const KEY_COMMITTED: &str = "committed";
pub(crate) const KEY_PURGED: &str = "purged";
pub(crate) const KEY_SNAPSHOT: &str = "current";
/// Generation of the active write-ahead log file (`u64` BE; absent = 0).
pub(crate) const KEY_WAL: &str = "wal";

/// Why a data directory could not be opened. Nothing is written when opening fails.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The directory could not be created or read.
    #[error("cannot use data directory {path}: {source}")]
    Io {
        /// The directory.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not a readable redb database or its contents do not decode.
    #[error("data file {path} is corrupted: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The file was written by a newer build; this build refuses to touch it.
    #[error("data file {path} has format version {found}; this build supports up to {supported}")]
    FutureVersion {
        /// The file.
        path: PathBuf,
        /// Version found on disk.
        found: u32,
        /// Newest version this build understands.
        supported: u32,
    },
    /// Another process (or another store in this process) has the file open.
    #[error("data file {path} is in use by another store")]
    InUse {
        /// The file.
        path: PathBuf,
    },
}

/// Opens (creating if absent) the data file in `dir` and checks its format version before
/// writing anything.
pub(crate) fn open(dir: &Path) -> Result<Arc<Database>, OpenError> {
    std::fs::create_dir_all(dir).map_err(|source| OpenError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let path = dir.join(DATA_FILE);
    let corrupt = |reason: String| OpenError::Corrupt {
        path: path.clone(),
        reason,
    };
    // Probe an existing file read-only first: opening read-write already writes to the file
    // (redb marks it open), and a future or foreign file must be refused untouched.
    let exists = std::fs::metadata(&path).is_ok_and(|m| m.len() > 0);
    if exists {
        match redb::ReadOnlyDatabase::open(&path) {
            Ok(probe) => {
                check_format(&path, read_format(&probe).map_err(corrupt)?)?;
                // The snapshot too: a bad one is refused before the file is touched.
                crate::store::restored_state(&path, &probe)?;
            }
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
                return Err(OpenError::InUse { path });
            }
            // Not cleanly closed (a crash): the read-write open below repairs it first, then
            // the version is checked again before anything else is written.
            Err(redb::DatabaseError::RepairAborted) => {}
            Err(e) => return Err(corrupt(e.to_string())),
        }
    }
    let db = match Database::create(&path) {
        Ok(db) => db,
        Err(redb::DatabaseError::DatabaseAlreadyOpen) => {
            return Err(OpenError::InUse { path });
        }
        Err(e) => return Err(corrupt(e.to_string())),
    };
    let found = read_format(&db).map_err(corrupt)?;
    check_format(&path, found)?;
    if found.is_none() {
        init(&db).map_err(|e| corrupt(e.to_string()))?;
    }
    Ok(Arc::new(db))
}

/// Refuses a version this build cannot read.
fn check_format(path: &Path, found: Option<u32>) -> Result<(), OpenError> {
    match found {
        Some(v) if v > STORE_FORMAT_VERSION => Err(OpenError::FutureVersion {
            path: path.to_path_buf(),
            found: v,
            supported: STORE_FORMAT_VERSION,
        }),
        Some(0) => Err(OpenError::Corrupt {
            path: path.to_path_buf(),
            reason: "format version 0".into(),
        }),
        _ => Ok(()),
    }
}

/// The stored format version; `None` for a fresh file; an error for a file that has data but
/// no (or an unreadable) version.
fn read_format(db: &impl ReadableDatabase) -> Result<Option<u32>, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let meta = match txn.open_table(META) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => {
            // A fresh file has no tables at all; a file with a log but no meta is not ours.
            return match txn.open_table(LOG) {
                Err(redb::TableError::TableDoesNotExist(_)) => Ok(None),
                Ok(_) => Err("log table without a format version".into()),
                Err(e) => Err(e.to_string()),
            };
        }
        Err(e) => return Err(e.to_string()),
    };
    let Some(v) = meta.get(KEY_FORMAT).map_err(|e| e.to_string())? else {
        return Err("meta table without a format version".into());
    };
    let bytes: [u8; 4] = v
        .value()
        .try_into()
        .map_err(|_| "format version is not 4 bytes".to_string())?;
    Ok(Some(u32::from_be_bytes(bytes)))
}

/// Creates the tables and stamps the format version, in one durable transaction.
fn init(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert(KEY_FORMAT, STORE_FORMAT_VERSION.to_be_bytes().as_slice())?;
        txn.open_table(LOG)?;
        txn.open_table(SNAPSHOT)?;
    }
    txn.commit()?;
    Ok(())
}

/// Reads one meta value.
pub(crate) fn get_meta(db: &Database, key: &str) -> Result<Option<Vec<u8>>, redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(META)?;
    Ok(table.get(key)?.map(|v| v.value().to_vec()))
}

/// Every entry of the `log` table (raft log entries of stores written before the
/// write-ahead file; empty since).
pub(crate) fn log_table(db: &Database) -> Result<Vec<(u64, Vec<u8>)>, redb::Error> {
    let txn = db.begin_read()?;
    let table = txn.open_table(LOG)?;
    let mut out = Vec::new();
    for item in table.iter()? {
        let (k, v) = item?;
        out.push((k.value(), v.value().to_vec()));
    }
    Ok(out)
}

/// Empties the `log` table, durably.
pub(crate) fn clear_log_table(db: &Database) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    txn.open_table(LOG)?.retain(|_, _| false)?;
    txn.commit()?;
    Ok(())
}
