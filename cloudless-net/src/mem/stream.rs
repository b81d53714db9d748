//! Byte streams over the in-memory network: two bounded chunk queues, one per direction.

use async_trait::async_trait;
use bytes::Bytes;
use cloudless_core::transport::{ByteStream, TransportError};
use tokio::sync::mpsc;

/// One end of an in-memory byte stream. Chunks arrive whole and in order; `recv` returns
/// `None` once the peer has finished (or dropped its end).
#[derive(Debug)]
pub struct MemByteStream {
    tx: Option<mpsc::Sender<Bytes>>,
    rx: mpsc::Receiver<Bytes>,
    max_chunk: usize,
}

impl MemByteStream {
    /// A connected pair of ends with `capacity` chunks buffered per direction.
    pub(super) fn pair(capacity: usize, max_chunk: usize) -> (Self, Self) {
        let (a_tx, b_rx) = mpsc::channel(capacity);
        let (b_tx, a_rx) = mpsc::channel(capacity);
        (
            Self {
                tx: Some(a_tx),
                rx: a_rx,
                max_chunk,
            },
            Self {
                tx: Some(b_tx),
                rx: b_rx,
                max_chunk,
            },
        )
    }
}

#[async_trait]
impl ByteStream for MemByteStream {
    async fn send(&mut self, chunk: Bytes) -> Result<(), TransportError> {
        if chunk.len() > self.max_chunk {
            return Err(TransportError::FrameTooLarge {
                size: chunk.len(),
                limit: self.max_chunk,
            });
        }
        let tx = self.tx.as_ref().ok_or(TransportError::Closed)?;
        tx.send(chunk)
            .await
            .map_err(|_| TransportError::ConnectionLost("peer closed the stream".to_owned()))
    }

    async fn finish(&mut self) -> Result<(), TransportError> {
        self.tx = None;
        Ok(())
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        Ok(self.rx.recv().await)
    }
}
