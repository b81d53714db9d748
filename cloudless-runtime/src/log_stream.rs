//! Reading a rotating log file (`capped_log`) from a logical offset, optionally following it
//! until the workload exits — shared by the containerd runtime and the process runtime. The
//! writer (containerd's logger, the process shim) appends; this only reads, so a stopped agent
//! never blocks a workload on its output.

use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use cloudless_core::runtime::{LogChunk, RuntimeError};
use futures::stream::BoxStream;
use tokio::sync::watch;

/// Largest chunk one read yields.
const CHUNK: usize = 64 << 10;
/// How often a follower at the end of the file looks for new bytes (the exit wakes it at once).
const POLL: Duration = Duration::from_millis(50);

/// Reads up to [`CHUNK`] bytes from logical offset `offset` (a later one when it was rotated
/// away); returns where they start. A missing log is empty.
async fn read_at(path: &Path, offset: u64) -> Result<(u64, Vec<u8>), RuntimeError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || crate::capped_log::read_from(&path, offset, CHUNK))
        .await
        .map_err(|e| RuntimeError::Other(Box::new(e)))?
        .map_err(|e| RuntimeError::Other(Box::new(e)))
}

struct Follow<T> {
    path: PathBuf,
    offset: u64,
    /// Still following: the workload has not exited (as far as we know).
    following: bool,
    /// `Some` once the workload exited (whatever the runtime records about the exit).
    exit: watch::Receiver<Option<T>>,
}

async fn step<T>(mut f: Follow<T>) -> Option<(Result<LogChunk, RuntimeError>, Follow<T>)> {
    loop {
        let (at, data) = match read_at(&f.path, f.offset).await {
            Ok(d) => d,
            Err(e) => {
                // Report the error once, then end.
                f.following = false;
                f.offset = u64::MAX;
                return Some((Err(e), f));
            }
        };
        if !data.is_empty() {
            // `at` is past `f.offset` when the bytes in between were rotated away.
            let chunk = LogChunk {
                offset: at,
                data: Bytes::from(data),
            };
            f.offset = at.saturating_add(chunk.data.len() as u64);
            return Some((Ok(chunk), f));
        }
        if !f.following {
            return None;
        }
        if f.exit.borrow().is_some() {
            // The writer flushed every byte before the exit was recorded: one more read
            // drains it.
            f.following = false;
            continue;
        }
        tokio::select! {
            changed = f.exit.changed() => {
                if changed.is_err() {
                    // The workload was removed.
                    f.following = false;
                }
            }
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The log at `path` from `from`; while `following`, until `exit` reports the exit.
pub(crate) fn stream<T: Send + Sync + 'static>(
    path: PathBuf,
    from: u64,
    following: bool,
    exit: watch::Receiver<Option<T>>,
) -> BoxStream<'static, Result<LogChunk, RuntimeError>> {
    Box::pin(futures::stream::unfold(
        Follow {
            path,
            offset: from,
            following,
            exit,
        },
        step,
    ))
}
