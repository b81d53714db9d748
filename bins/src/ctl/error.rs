//! Errors of the CLI: one line for the user and an exit code scripts can rely on.

use std::process::ExitCode;

use cloudless::client::ClientError;
use tonic::Code;

/// Exit codes (documented in `docs/cli.md`).
pub(crate) mod exit {
    /// Usage, configuration or validation error, or any error not listed below.
    pub(crate) const GENERAL: u8 = 1;
    /// The named object does not exist.
    pub(crate) const NOT_FOUND: u8 = 2;
    /// The cluster cannot be reached or has no leader.
    pub(crate) const UNAVAILABLE: u8 = 3;
    /// The credentials were refused or may not do this.
    pub(crate) const PERMISSION: u8 = 4;
    /// The object exists already or is in a state that refuses the change.
    pub(crate) const CONFLICT: u8 = 5;
    /// The cluster does not serve this operation (yet).
    pub(crate) const UNSUPPORTED: u8 = 6;
    /// A wait (`--wait`, `rollout status`) ran out of time.
    pub(crate) const TIMEOUT: u8 = 7;
}

/// A failed command.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct CtlError {
    /// The exit code.
    pub(crate) code: u8,
    /// One line: what failed and what to do.
    pub(crate) message: String,
}

impl CtlError {
    pub(crate) fn new(code: u8, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// A usage, configuration or validation error (exit 1).
    pub(crate) fn general(message: impl Into<String>) -> Self {
        Self::new(exit::GENERAL, message)
    }

    /// A failed API call; `what` says what was being done (`getting workload demo/web`).
    pub(crate) fn api(what: &str, e: &ClientError) -> Self {
        let Some(status) = e.status() else {
            return Self::general(format!("{what}: {e}"));
        };
        let msg = one_line(status.message());
        let (code, hint) = match status.code() {
            Code::NotFound => (exit::NOT_FOUND, ""),
            Code::Unavailable | Code::DeadlineExceeded => (
                exit::UNAVAILABLE,
                "; check the endpoints of the context (or CLOUDLESSCTL_ENDPOINT) and that a coordinator runs",
            ),
            Code::PermissionDenied => (
                exit::PERMISSION,
                "; use admin credentials (written by `cloudless-coordinator init`)",
            ),
            Code::Unauthenticated => (
                exit::PERMISSION,
                "; check the credentials of the context belong to this cluster",
            ),
            Code::AlreadyExists | Code::FailedPrecondition | Code::Aborted => (exit::CONFLICT, ""),
            Code::Unimplemented => (exit::UNSUPPORTED, ""),
            _ => (exit::GENERAL, ""),
        };
        let paths = e.field_paths();
        let fields = if paths.is_empty() || msg.contains(&paths[0]) {
            String::new()
        } else {
            format!(" (fields: {})", paths.join(", "))
        };
        Self::new(code, format!("{what}: {msg}{fields}{hint}"))
    }

    /// The process exit code.
    pub(crate) fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

/// Joins a multi-line server message into one line.
pub(crate) fn one_line(s: &str) -> String {
    s.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// Result of a command.
pub(crate) type CtlResult<T = ()> = Result<T, CtlError>;
