//! The error of RPC calls.

use cloudless_core::transport::TransportError;

use super::status::StatusCode;
use super::version::ProtocolVersion;
use crate::codec::CodecError;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// The deadline passed before an answer arrived (a late answer is dropped).
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// The call was cancelled (locally, or the server reported it cancelled).
    #[error("call cancelled")]
    Cancelled,
    /// The server answered with a non-OK status.
    #[error("{code}: {message}")]
    Status {
        /// The status code.
        code: StatusCode,
        /// The server's message.
        message: String,
    },
    /// The transport failed to send.
    #[error("transport: {0}")]
    Transport(#[from] TransportError),
    /// A frame could not be encoded or decoded.
    #[error("codec: {0}")]
    Codec(#[from] CodecError),
    /// The answer's payload is not the expected message.
    #[error("cannot decode the response: {0}")]
    Decode(String),
    /// The peer speaks an incompatible protocol version.
    #[error("protocol version mismatch: we speak {ours}, the peer speaks {theirs}: {reason}")]
    VersionMismatch {
        /// Our version.
        ours: ProtocolVersion,
        /// The peer's version.
        theirs: ProtocolVersion,
        /// Which side refused and why.
        reason: String,
    },
    /// A message exceeds the size limit (checked before sending and on receipt).
    #[error("message of {size} bytes exceeds the limit of {limit} bytes")]
    MessageTooLarge {
        /// Encoded size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A streaming answer was cut short (the consumer fell behind its buffer, or the
    /// dispatcher stopped) without a final status.
    #[error("stream aborted: {0}")]
    StreamAborted(String),
    /// The RPC endpoint has shut down.
    #[error("rpc endpoint shut down")]
    Shutdown,
}

impl RpcError {
    /// True if a retry of an idempotent call may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            RpcError::DeadlineExceeded => true,
            RpcError::Status { code, .. } => {
                matches!(code, StatusCode::Unavailable | StatusCode::HelloRequired)
            }
            RpcError::Transport(e) => matches!(
                e,
                TransportError::NotConnected(_)
                    | TransportError::ConnectionLost(_)
                    | TransportError::Unreachable { .. }
            ),
            _ => false,
        }
    }

    /// The status code this error corresponds to, for logs and metrics.
    pub fn code(&self) -> StatusCode {
        match self {
            RpcError::DeadlineExceeded => StatusCode::DeadlineExceeded,
            RpcError::Cancelled => StatusCode::Cancelled,
            RpcError::Status { code, .. } => *code,
            RpcError::MessageTooLarge { .. } => StatusCode::ResourceExhausted,
            RpcError::VersionMismatch { .. } => StatusCode::FailedPrecondition,
            RpcError::Transport(_) | RpcError::Shutdown => StatusCode::Unavailable,
            RpcError::Codec(_) | RpcError::Decode(_) | RpcError::StreamAborted(_) => {
                StatusCode::Internal
            }
        }
    }
}
