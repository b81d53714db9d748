//! Errors of setting up a QUIC transport, and how QUIC failures map to `TransportError`.

use cloudless_core::transport::TransportError;

use super::QuicConfigError;
use crate::identity::IdentityError;

/// Application close code: orderly shutdown.
pub(crate) const CLOSE_NORMAL: u32 = 0;
/// Application close code: the peer broke the framing protocol.
pub(crate) const CLOSE_PROTOCOL: u32 = 1;
/// Application close code: the peer's node was revoked.
pub(crate) const CLOSE_REVOKED: u32 = 2;

/// Errors of creating a [`QuicTransport`](super::QuicTransport).
#[derive(Debug, thiserror::Error)]
pub enum QuicError {
    /// The settings are invalid.
    #[error(transparent)]
    Config(#[from] QuicConfigError),
    /// The credentials cannot be turned into a TLS configuration.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The UDP socket could not be bound, or no tokio runtime is running.
    #[error("cannot bind {addr}: {reason}")]
    Bind {
        /// Requested address.
        addr: String,
        /// Why.
        reason: String,
    },
}

/// True for QUIC transport error codes that carry a TLS alert (RFC 9001 §4.8): the peer
/// refused our certificate, or we refused its.
fn is_crypto(code: quinn::TransportErrorCode) -> bool {
    (0x100..=0x1ff).contains(&u64::from(code))
}

/// Maps a QUIC connection failure to the transport vocabulary; TLS failures become `Auth`.
pub(crate) fn connection_error(e: &quinn::ConnectionError) -> TransportError {
    use quinn::ConnectionError as E;
    match e {
        E::TransportError(t) if is_crypto(t.code) => TransportError::Auth(e.to_string()),
        E::ConnectionClosed(c) if is_crypto(c.error_code) => TransportError::Auth(e.to_string()),
        E::ApplicationClosed(c) if c.error_code == CLOSE_REVOKED.into() => {
            TransportError::Auth("this node was revoked by the peer".into())
        }
        E::LocallyClosed => TransportError::Closed,
        _ => TransportError::ConnectionLost(e.to_string()),
    }
}

/// Maps a stream write failure.
pub(crate) fn write_error(e: &quinn::WriteError) -> TransportError {
    match e {
        quinn::WriteError::ConnectionLost(c) => connection_error(c),
        other => TransportError::ConnectionLost(other.to_string()),
    }
}

/// Maps a stream read failure.
pub(crate) fn read_error(e: &quinn::ReadError) -> TransportError {
    match e {
        quinn::ReadError::ConnectionLost(c) => connection_error(c),
        other => TransportError::ConnectionLost(other.to_string()),
    }
}

/// Maps a `read_exact` failure.
pub(crate) fn read_exact_error(e: &quinn::ReadExactError) -> TransportError {
    match e {
        quinn::ReadExactError::ReadError(r) => read_error(r),
        quinn::ReadExactError::FinishedEarly(_) => {
            TransportError::ConnectionLost("the peer ended the stream early".into())
        }
    }
}
