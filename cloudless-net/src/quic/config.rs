//! Settings of [`QuicTransport`](super::QuicTransport).

use std::time::Duration;

use crate::codec::DEFAULT_MAX_FRAME;

/// Settings of a [`QuicTransport`](super::QuicTransport). `Default` is what production uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuicConfig {
    /// Largest frame `send` accepts (and a receiver reads); bigger inbound frames close the
    /// connection as a protocol violation.
    pub max_frame_size: usize,
    /// Inbound frames buffered for `recv` across all peers; when full, readers stop reading and
    /// QUIC flow control pushes back on senders.
    pub inbox_capacity: usize,
    /// Outbound frames buffered per connection; when full, `send` waits.
    pub send_queue_capacity: usize,
    /// Inbound streams buffered for `accept_stream`.
    pub accept_capacity: usize,
    /// A connection with no traffic (not even keepalives) for this long is closed.
    pub idle_timeout: Duration,
    /// Keepalive interval; below `idle_timeout`, so a quiet but healthy connection survives
    /// (and a NAT mapping stays open).
    pub keep_alive: Duration,
    /// Time allowed for the handshake plus the first exchange in `connect`.
    pub connect_timeout: Duration,
    /// Re-dial attempts when `send` finds the connection to a dialed peer gone.
    pub reconnect_attempts: u32,
    /// First back-off delay between re-dial attempts; doubles each attempt.
    pub reconnect_backoff: Duration,
    /// Largest back-off delay.
    pub reconnect_backoff_max: Duration,
}

impl Default for QuicConfig {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME,
            inbox_capacity: 1024,
            send_queue_capacity: 256,
            accept_capacity: 64,
            idle_timeout: Duration::from_secs(30),
            keep_alive: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            reconnect_attempts: 5,
            reconnect_backoff: Duration::from_millis(100),
            reconnect_backoff_max: Duration::from_secs(5),
        }
    }
}

/// Why a [`QuicConfig`] is invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuicConfigError {
    /// A capacity or size is zero.
    #[error("{0} must be positive")]
    Zero(&'static str),
    /// The frame limit does not fit the 32-bit length prefix.
    #[error("max_frame_size must be below 4 GiB")]
    FrameTooLarge,
    /// The keepalive interval is not below the idle timeout.
    #[error("keep_alive must be shorter than idle_timeout")]
    KeepAliveTooLong,
}

impl QuicConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), QuicConfigError> {
        for (name, v) in [
            ("max_frame_size", self.max_frame_size),
            ("inbox_capacity", self.inbox_capacity),
            ("send_queue_capacity", self.send_queue_capacity),
            ("accept_capacity", self.accept_capacity),
        ] {
            if v == 0 {
                return Err(QuicConfigError::Zero(name));
            }
        }
        if u32::try_from(self.max_frame_size).is_err() {
            return Err(QuicConfigError::FrameTooLarge);
        }
        if self.idle_timeout.is_zero() || self.connect_timeout.is_zero() {
            return Err(QuicConfigError::Zero("a timeout"));
        }
        if self.keep_alive >= self.idle_timeout {
            return Err(QuicConfigError::KeepAliveTooLong);
        }
        Ok(())
    }

    /// These settings with `max_frame_size` set.
    pub fn with_max_frame_size(mut self, n: usize) -> Self {
        self.max_frame_size = n;
        self
    }

    /// These settings with the idle timeout and keepalive set.
    pub fn with_idle_timeout(mut self, idle: Duration, keep_alive: Duration) -> Self {
        self.idle_timeout = idle;
        self.keep_alive = keep_alive;
        self
    }

    /// These settings with the re-dial policy set.
    pub fn with_reconnect(mut self, attempts: u32, backoff: Duration, max: Duration) -> Self {
        self.reconnect_attempts = attempts;
        self.reconnect_backoff = backoff;
        self.reconnect_backoff_max = max;
        self
    }

    /// The delay before re-dial attempt `n` (0-based): exponential, capped.
    pub fn backoff(&self, n: u32) -> Duration {
        let factor = 1u32.checked_shl(n.min(16)).unwrap_or(u32::MAX);
        self.reconnect_backoff
            .saturating_mul(factor)
            .min(self.reconnect_backoff_max)
    }
}
