//! Configuration of an RPC endpoint.

use std::time::Duration;

use super::version::ProtocolVersion;
use crate::codec::DEFAULT_MAX_FRAME;

/// Retries of calls to methods marked idempotent. Other calls are attempted once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (at least 1).
    pub max_attempts: u32,
    /// Longest wait for one attempt's answer (also bounded by the call's deadline).
    pub attempt_timeout: Duration,
    /// Pause before the second attempt; doubles per attempt up to `max_backoff`.
    pub initial_backoff: Duration,
    /// Longest pause between attempts.
    pub max_backoff: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            attempt_timeout: Duration::from_secs(1),
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(500),
        }
    }
}

/// Settings of an [`RpcEndpoint`](super::RpcEndpoint).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RpcConfig {
    /// The protocol version we speak.
    pub version: ProtocolVersion,
    /// Largest request or response payload, both directions (further bounded by the
    /// transport's frame limit).
    pub max_message_size: usize,
    /// Retry policy for idempotent methods.
    pub retry: RetryPolicy,
    /// Items buffered per streaming call before the stream is aborted as too slow.
    pub stream_buffer: usize,
    /// Capacity of the dispatcher's command and inbound queues.
    pub queue_capacity: usize,
}

impl Default for RpcConfig {
    fn default() -> Self {
        Self {
            version: ProtocolVersion::CURRENT,
            max_message_size: DEFAULT_MAX_FRAME - 1024,
            retry: RetryPolicy::default(),
            stream_buffer: 256,
            queue_capacity: 1024,
        }
    }
}

/// An invalid [`RpcConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcConfigError {
    /// A size, capacity or attempt count is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
}

impl RpcConfig {
    /// Sets the protocol version (tests of upgrades).
    pub fn with_version(mut self, v: ProtocolVersion) -> Self {
        self.version = v;
        self
    }

    /// Sets the message size limit.
    pub fn with_max_message_size(mut self, n: usize) -> Self {
        self.max_message_size = n;
        self
    }

    /// Sets the retry policy.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Checks every size is positive.
    pub fn validate(&self) -> Result<(), RpcConfigError> {
        for (name, v) in [
            ("max_message_size", self.max_message_size),
            ("stream_buffer", self.stream_buffer),
            ("queue_capacity", self.queue_capacity),
            ("retry.max_attempts", self.retry.max_attempts as usize),
        ] {
            if v == 0 {
                return Err(RpcConfigError::Zero(name));
            }
        }
        Ok(())
    }
}
