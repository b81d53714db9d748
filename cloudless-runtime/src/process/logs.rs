//! Reading a replica's log file from an offset, optionally following it until the exit. The
//! shim appends; this only reads, so a stopped agent never blocks a process on its output.

use std::io::SeekFrom;
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use cloudless_core::runtime::{LogChunk, RuntimeError};
use futures::stream::BoxStream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::watch;

use super::watch::Exit;

/// Largest chunk one read yields.
const CHUNK: usize = 64 << 10;
/// How often a follower at the end of the file looks for new bytes (the exit wakes it at once).
const POLL: Duration = Duration::from_millis(50);

fn io(e: std::io::Error) -> RuntimeError {
    RuntimeError::Other(Box::new(e))
}

/// Reads up to [`CHUNK`] bytes at `offset`; a missing file is empty.
async fn read_at(path: &PathBuf, offset: u64) -> Result<Vec<u8>, RuntimeError> {
    let mut file = match tokio::fs::File::open(path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let len = file.metadata().await.map_err(io)?.len();
    if offset >= len {
        return Ok(Vec::new());
    }
    file.seek(SeekFrom::Start(offset)).await.map_err(io)?;
    let want = usize::try_from(len - offset).unwrap_or(CHUNK).min(CHUNK);
    let mut buf = vec![0; want];
    let n = file.read(&mut buf).await.map_err(io)?;
    buf.truncate(n);
    Ok(buf)
}

struct Follow {
    path: PathBuf,
    offset: u64,
    following: bool,
    exit: watch::Receiver<Option<Exit>>,
}

async fn step(mut f: Follow) -> Option<(Result<LogChunk, RuntimeError>, Follow)> {
    loop {
        let data = match read_at(&f.path, f.offset).await {
            Ok(d) => d,
            Err(e) => {
                // Report the error once, then end.
                f.following = false;
                f.offset = u64::MAX;
                return Some((Err(e), f));
            }
        };
        if !data.is_empty() {
            let chunk = LogChunk {
                offset: f.offset,
                data: Bytes::from(data),
            };
            f.offset = f.offset.saturating_add(chunk.data.len() as u64);
            return Some((Ok(chunk), f));
        }
        if !f.following {
            return None;
        }
        if f.exit.borrow().is_some() {
            // The shim wrote every byte before recording the exit: one more read drains it.
            f.following = false;
            continue;
        }
        tokio::select! {
            changed = f.exit.changed() => {
                if changed.is_err() {
                    // Removed.
                    f.following = false;
                }
            }
            () = tokio::time::sleep(POLL) => {}
        }
    }
}

/// The log at `path` from `from`; while `following`, until `exit` reports the exit.
pub(crate) fn stream(
    path: PathBuf,
    from: u64,
    following: bool,
    exit: watch::Receiver<Option<Exit>>,
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
