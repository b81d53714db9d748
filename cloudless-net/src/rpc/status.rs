//! Status codes of RPC answers (the gRPC set we need) and the handler-side `Status`.

use crate::wire::pb;

/// The outcome class of a call, as carried on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StatusCode {
    /// Success.
    Ok,
    /// The call was cancelled.
    Cancelled,
    /// An error with no better code (also any code this version does not know).
    Unknown,
    /// The request was malformed (e.g. its payload did not decode).
    InvalidArgument,
    /// The deadline passed before the handler finished.
    DeadlineExceeded,
    /// The object the request names does not exist.
    NotFound,
    /// The caller may not do this (authorization hook).
    PermissionDenied,
    /// A size or rate limit was exceeded (e.g. message too large).
    ResourceExhausted,
    /// The system is not in a state to run the call.
    FailedPrecondition,
    /// The server has no handler for this method (or not of this kind: unary vs streaming).
    Unimplemented,
    /// A bug or broken invariant on the server.
    Internal,
    /// Temporarily unavailable; retrying an idempotent call may succeed.
    Unavailable,
    /// The caller is not authenticated.
    Unauthenticated,
    /// The server has no accepted hello from the caller (e.g. it restarted); the handler did
    /// not run. The client says hello again and resends, whatever the method.
    HelloRequired,
}

impl StatusCode {
    /// The code of a received wire value; numbers this version does not know become `Unknown`.
    pub fn from_wire(code: i32) -> Self {
        match pb::StatusCode::try_from(code) {
            Ok(c) => c.into(),
            Err(_) => StatusCode::Unknown,
        }
    }
}

impl From<pb::StatusCode> for StatusCode {
    fn from(c: pb::StatusCode) -> Self {
        use pb::StatusCode as W;
        match c {
            W::Ok => StatusCode::Ok,
            W::Cancelled => StatusCode::Cancelled,
            W::Unknown => StatusCode::Unknown,
            W::InvalidArgument => StatusCode::InvalidArgument,
            W::DeadlineExceeded => StatusCode::DeadlineExceeded,
            W::NotFound => StatusCode::NotFound,
            W::PermissionDenied => StatusCode::PermissionDenied,
            W::ResourceExhausted => StatusCode::ResourceExhausted,
            W::FailedPrecondition => StatusCode::FailedPrecondition,
            W::Unimplemented => StatusCode::Unimplemented,
            W::Internal => StatusCode::Internal,
            W::Unavailable => StatusCode::Unavailable,
            W::Unauthenticated => StatusCode::Unauthenticated,
            W::HelloRequired => StatusCode::HelloRequired,
        }
    }
}

impl From<StatusCode> for pb::StatusCode {
    fn from(c: StatusCode) -> Self {
        use pb::StatusCode as W;
        match c {
            StatusCode::Ok => W::Ok,
            StatusCode::Cancelled => W::Cancelled,
            StatusCode::Unknown => W::Unknown,
            StatusCode::InvalidArgument => W::InvalidArgument,
            StatusCode::DeadlineExceeded => W::DeadlineExceeded,
            StatusCode::NotFound => W::NotFound,
            StatusCode::PermissionDenied => W::PermissionDenied,
            StatusCode::ResourceExhausted => W::ResourceExhausted,
            StatusCode::FailedPrecondition => W::FailedPrecondition,
            StatusCode::Unimplemented => W::Unimplemented,
            StatusCode::Internal => W::Internal,
            StatusCode::Unavailable => W::Unavailable,
            StatusCode::Unauthenticated => W::Unauthenticated,
            StatusCode::HelloRequired => W::HelloRequired,
        }
    }
}

impl std::fmt::Display for StatusCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self, f)
    }
}

/// A handler's error answer: a code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct Status {
    /// The code.
    pub code: StatusCode,
    /// Detail for humans.
    pub message: String,
}

impl Status {
    /// A status with `code` and `message`.
    pub fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `NotFound` with `message`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NotFound, message)
    }

    /// `PermissionDenied` with `message`.
    pub fn permission_denied(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PermissionDenied, message)
    }

    /// `InvalidArgument` with `message`.
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Self::new(StatusCode::InvalidArgument, message)
    }

    /// `Unavailable` with `message`.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::Unavailable, message)
    }

    pub(crate) fn to_wire(&self) -> pb::Status {
        pb::Status {
            code: pb::StatusCode::from(self.code) as i32,
            message: self.message.clone(),
        }
    }

    pub(crate) fn ok_wire() -> pb::Status {
        pb::Status {
            code: pb::StatusCode::Ok as i32,
            message: String::new(),
        }
    }
}
