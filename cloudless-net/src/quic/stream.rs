//! Byte streams: one bidirectional QUIC stream each, opened with a one-byte header so the
//! peer sees the stream at once (QUIC announces a stream only when data is sent on it).

use async_trait::async_trait;
use bytes::Bytes;
use cloudless_core::transport::{ByteStream, TransportError};

use super::error::{read_error, read_exact_error, write_error};

/// First byte of every byte stream.
pub(crate) const STREAM_HEADER: u8 = b'S';

/// One end of a byte stream over QUIC. Chunk boundaries are not preserved (QUIC streams are
/// byte-oriented); bytes arrive in order and `recv` returns `None` after the peer finished.
#[derive(Debug)]
pub struct QuicByteStream {
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    max_chunk: usize,
}

impl QuicByteStream {
    /// Opens a stream on `conn` and announces it.
    pub(crate) async fn open(
        conn: &quinn::Connection,
        max_chunk: usize,
    ) -> Result<Self, TransportError> {
        let (mut send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| super::error::connection_error(&e))?;
        send.write_all(&[STREAM_HEADER])
            .await
            .map_err(|e| write_error(&e))?;
        Ok(Self {
            send,
            recv,
            max_chunk,
        })
    }

    /// Wraps a stream a peer opened, reading its header.
    pub(crate) async fn from_accepted(
        send: quinn::SendStream,
        mut recv: quinn::RecvStream,
        max_chunk: usize,
    ) -> Result<Self, TransportError> {
        let mut header = [0u8; 1];
        recv.read_exact(&mut header)
            .await
            .map_err(|e| read_exact_error(&e))?;
        if header[0] != STREAM_HEADER {
            return Err(TransportError::ConnectionLost(
                "stream opened with an unknown header".into(),
            ));
        }
        Ok(Self {
            send,
            recv,
            max_chunk,
        })
    }
}

#[async_trait]
impl ByteStream for QuicByteStream {
    async fn send(&mut self, chunk: Bytes) -> Result<(), TransportError> {
        if chunk.len() > self.max_chunk {
            return Err(TransportError::FrameTooLarge {
                size: chunk.len(),
                limit: self.max_chunk,
            });
        }
        self.send
            .write_chunk(chunk)
            .await
            .map_err(|e| write_error(&e))
    }

    async fn finish(&mut self) -> Result<(), TransportError> {
        // Finishing twice is harmless for the caller: the stream is already finished.
        let _ = self.send.finish();
        Ok(())
    }

    async fn recv(&mut self) -> Result<Option<Bytes>, TransportError> {
        match self.recv.read_chunk(self.max_chunk, true).await {
            Ok(Some(chunk)) => Ok(Some(chunk.bytes)),
            Ok(None) => Ok(None),
            Err(e) => Err(read_error(&e)),
        }
    }
}
