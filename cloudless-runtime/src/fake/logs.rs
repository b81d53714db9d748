//! A container's log: an append-only byte buffer with offsets, read from a position and followed
//! until the container exits.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::Bytes;
use cloudless_core::runtime::{LogChunk, RuntimeError};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::watch;

/// Largest chunk a log stream yields.
const MAX_CHUNK: usize = 64 * 1024;

/// One container's combined output.
#[derive(Debug)]
pub(crate) struct LogBuffer {
    inner: Mutex<LogInner>,
    // Bumped on every append and on close, to wake followers.
    changed: watch::Sender<()>,
}

#[derive(Debug, Default)]
struct LogInner {
    data: Vec<u8>,
    closed: bool,
}

impl LogBuffer {
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(LogInner::default()),
            changed: watch::Sender::new(()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Appends `data` unless the log is closed.
    pub(crate) fn append(&self, data: &[u8]) {
        let mut inner = self.lock();
        if !inner.closed {
            inner.data.extend_from_slice(data);
            drop(inner);
            self.changed.send_replace(());
        }
    }

    /// Marks the end of the log: the container exited.
    pub(crate) fn close(&self) {
        self.lock().closed = true;
        self.changed.send_replace(());
    }

    /// Bytes from `offset` (at most [`MAX_CHUNK`]), and whether the log is closed.
    fn read_from(&self, offset: u64) -> (Option<Bytes>, bool) {
        let inner = self.lock();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let chunk = inner
            .data
            .get(start..)
            .filter(|rest| !rest.is_empty())
            .map(|rest| {
                let end = rest.len().min(MAX_CHUNK);
                Bytes::copy_from_slice(&rest[..end])
            });
        (chunk, inner.closed)
    }

    /// The log from `from` on; with `follow`, waits for more until the log is closed.
    pub(crate) fn stream(
        self: Arc<Self>,
        from: u64,
        follow: bool,
    ) -> BoxStream<'static, Result<LogChunk, RuntimeError>> {
        let rx = self.changed.subscribe();
        futures::stream::unfold((self, from, rx), move |(buf, offset, mut rx)| async move {
            loop {
                // Mark the current version seen before reading, so an append racing with the
                // read still wakes `changed` below.
                rx.borrow_and_update();
                let (chunk, closed) = buf.read_from(offset);
                if let Some(data) = chunk {
                    let next = offset.saturating_add(data.len() as u64);
                    return Some((Ok(LogChunk { offset, data }), (buf, next, rx)));
                }
                if closed || !follow || rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(s: BoxStream<'static, Result<LogChunk, RuntimeError>>) -> Vec<(u64, Bytes)> {
        s.map(|c| c.map(|c| (c.offset, c.data)).unwrap())
            .collect()
            .await
    }

    #[tokio::test]
    async fn reads_from_offsets_and_follows_until_closed() {
        let log = LogBuffer::new();
        log.append(b"hello ");
        assert_eq!(
            collect(log.clone().stream(2, false)).await,
            [(2, Bytes::from("llo "))]
        );
        assert!(collect(log.clone().stream(6, false)).await.is_empty());
        assert!(
            collect(log.clone().stream(u64::MAX, false))
                .await
                .is_empty()
        );
        let follower = tokio::spawn(collect(log.clone().stream(0, true)));
        tokio::task::yield_now().await;
        log.append(b"world");
        tokio::task::yield_now().await;
        log.close();
        log.append(b"ignored after close");
        let got = follower.await.unwrap();
        let joined: Vec<u8> = got.iter().flat_map(|(_, d)| d.to_vec()).collect();
        assert_eq!(joined, b"hello world");
        assert_eq!(got[0].0, 0);
    }
}
