//! The frame channel of a connection: one long-lived unidirectional QUIC stream per direction,
//! opened with a header, carrying `u32` big-endian length-prefixed frames.
//!
//! One stream per direction (rather than one stream per frame) keeps frames in send order,
//! which the Transport contract promises, and costs no stream setup per message.

use bytes::Bytes;
use cloudless_core::transport::TransportError;
use tokio::sync::mpsc;

use super::error::{CLOSE_PROTOCOL, connection_error, read_exact_error, write_error};

/// Header of the frame stream: magic and framing version.
pub(crate) const FRAME_HEADER: [u8; 5] = *b"CLDF\x01";

/// Opens our frame stream and accepts the peer's; both sides do this right after the
/// handshake. Accepting the peer's header is also the probe that shows a client whether the
/// server accepted its certificate (in TLS 1.3 the client's handshake completes first).
pub(crate) async fn establish(
    conn: &quinn::Connection,
) -> Result<(quinn::SendStream, quinn::RecvStream), TransportError> {
    let mut send = conn.open_uni().await.map_err(|e| connection_error(&e))?;
    send.write_all(&FRAME_HEADER)
        .await
        .map_err(|e| write_error(&e))?;
    let mut recv = conn.accept_uni().await.map_err(|e| connection_error(&e))?;
    let mut header = [0u8; FRAME_HEADER.len()];
    recv.read_exact(&mut header)
        .await
        .map_err(|e| read_exact_error(&e))?;
    if header != FRAME_HEADER {
        conn.close(CLOSE_PROTOCOL.into(), b"bad frame stream header");
        return Err(TransportError::ConnectionLost(
            "peer speaks another framing version".into(),
        ));
    }
    Ok((send, recv))
}

/// Writes queued frames until the queue closes or the stream fails.
pub(crate) async fn write_loop(mut send: quinn::SendStream, mut queue: mpsc::Receiver<Bytes>) {
    while let Some(frame) = queue.recv().await {
        // The length fits: `send` checked it against the limit, which is below 4 GiB.
        let len = u32::try_from(frame.len()).unwrap_or(u32::MAX).to_be_bytes();
        let mut parts = [Bytes::copy_from_slice(&len), frame];
        if send.write_all_chunks(&mut parts).await.is_err() {
            return;
        }
    }
    let _ = send.finish();
}

/// Reads frames and hands each to `deliver` until the stream ends or fails. A frame over
/// `max` closes the connection: the peer broke the protocol.
pub(crate) async fn read_loop<F, Fut>(
    conn: &quinn::Connection,
    mut recv: quinn::RecvStream,
    max: usize,
    mut deliver: F,
) where
    F: FnMut(Bytes) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    loop {
        let mut len = [0u8; 4];
        if recv.read_exact(&mut len).await.is_err() {
            return;
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > max {
            conn.close(CLOSE_PROTOCOL.into(), b"frame over the size limit");
            return;
        }
        let mut buf = vec![0u8; len];
        if recv.read_exact(&mut buf).await.is_err() {
            return;
        }
        if !deliver(Bytes::from(buf)).await {
            return;
        }
    }
}
