//! Reading a container's log file from an offset, optionally following it until the exit.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloudless_core::runtime::{ContainerId, ContainerState, LogChunk, RuntimeError};
use futures::stream::BoxStream;
use tokio::sync::watch;

use super::local::Exit;
use super::{Inner, container, task};

/// Largest chunk one read yields.
const CHUNK: usize = 64 << 10;
/// How often a follower at the end of the file looks for new bytes (the shim appends without
/// telling anyone; the exit itself wakes the follower at once).
const POLL: Duration = Duration::from_millis(50);

struct Follow {
    path: PathBuf,
    offset: u64,
    /// Still following: the container has not exited (as far as we know).
    following: bool,
    exit: watch::Receiver<Option<Exit>>,
}

/// Reads up to [`CHUNK`] bytes from logical offset `offset` (a later one when it was rotated
/// away); returns where they start. A missing log is empty.
async fn read_at(path: &Path, offset: u64) -> Result<(u64, Vec<u8>), RuntimeError> {
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || crate::capped_log::read_from(&path, offset, CHUNK))
        .await
        .map_err(|e| RuntimeError::Other(Box::new(e)))?
        .map_err(|e| RuntimeError::Other(Box::new(e)))
}

async fn step(mut f: Follow) -> Option<(Result<LogChunk, RuntimeError>, Follow)> {
    loop {
        let (at, data) = match read_at(&f.path, f.offset).await {
            Ok(d) => d,
            // Report the error once, then end the stream.
            Err(e) => {
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
            // Exited (and the task deleted, so the shim flushed): one more read drains it.
            f.following = false;
            continue;
        }
        tokio::select! {
            changed = f.exit.changed() => {
                if changed.is_err() {
                    // The container was removed.
                    f.following = false;
                }
            }
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The log of `id` from `from`; with `follow`, until the container exits.
pub(crate) async fn logs(
    inner: &Arc<Inner>,
    id: &ContainerId,
    from: u64,
    follow: bool,
) -> Result<BoxStream<'static, Result<LogChunk, RuntimeError>>, RuntimeError> {
    let st = container::status(inner, id).await?;
    let exit = inner.local.exit_watch(id.as_str());
    if follow && st.state == ContainerState::Running {
        // An adopted container needs a waiter for the follower to learn of its exit.
        task::ensure_waiter(inner, id.as_str());
    }
    let state = Follow {
        path: inner.log_path(id.as_str()),
        offset: from,
        following: follow && !matches!(st.state, ContainerState::Exited { .. }),
        exit,
    };
    Ok(Box::pin(futures::stream::unfold(state, step)))
}
