//! Configuration of the in-memory network and of its per-message faults.

use std::time::Duration;

use crate::codec::DEFAULT_MAX_FRAME;

/// Sizes and limits of a [`MemNetwork`](super::MemNetwork).
#[derive(Debug, Clone, PartialEq)]
pub struct MemConfig {
    /// Largest frame (and stream chunk) `send` accepts.
    pub max_frame_size: usize,
    /// Capacity of each endpoint's inbox, in frames.
    pub inbox_capacity: usize,
    /// Capacity of each directed link's in-flight queue, in frames.
    pub link_capacity: usize,
    /// Capacity of each byte-stream direction, in chunks.
    pub stream_capacity: usize,
}

impl Default for MemConfig {
    fn default() -> Self {
        Self {
            max_frame_size: DEFAULT_MAX_FRAME,
            inbox_capacity: 1024,
            link_capacity: 1024,
            stream_capacity: 64,
        }
    }
}

/// An invalid [`MemConfig`] or [`FaultConfig`].
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MemConfigError {
    /// A capacity or size is zero.
    #[error("{0} must be greater than zero")]
    Zero(&'static str),
    /// A probability is not in `0.0..=1.0`.
    #[error("{name} must be a probability in 0..=1 (got {value})")]
    Probability {
        /// Which setting.
        name: &'static str,
        /// The value given.
        value: f64,
    },
}

impl MemConfig {
    /// The default sizes with `max_frame_size` set.
    pub fn with_max_frame_size(mut self, n: usize) -> Self {
        self.max_frame_size = n;
        self
    }

    /// The default sizes with `inbox_capacity` set.
    pub fn with_inbox_capacity(mut self, n: usize) -> Self {
        self.inbox_capacity = n;
        self
    }

    /// Checks that every size is positive.
    pub fn validate(&self) -> Result<(), MemConfigError> {
        for (name, v) in [
            ("max_frame_size", self.max_frame_size),
            ("inbox_capacity", self.inbox_capacity),
            ("link_capacity", self.link_capacity),
            ("stream_capacity", self.stream_capacity),
        ] {
            if v == 0 {
                return Err(MemConfigError::Zero(name));
            }
        }
        Ok(())
    }
}

/// Faults applied to each message on a link. The default is a perfect network.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct FaultConfig {
    /// Probability that a message is silently lost.
    pub drop_probability: f64,
    /// Fixed delay added to every message.
    pub delay: Duration,
    /// Extra delay drawn uniformly from `0..=jitter`. Jitter alone keeps per-link order.
    pub jitter: Duration,
    /// Probability that a message is held back by `reorder_delay` and overtaken by later ones.
    pub reorder_probability: f64,
    /// How long a reordered message is held back.
    pub reorder_delay: Duration,
}

impl FaultConfig {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Sets the drop probability.
    pub fn with_drop(mut self, p: f64) -> Self {
        self.drop_probability = p;
        self
    }

    /// Sets the fixed delay and the jitter.
    pub fn with_delay(mut self, delay: Duration, jitter: Duration) -> Self {
        self.delay = delay;
        self.jitter = jitter;
        self
    }

    /// Holds back a fraction `p` of messages by `hold`, so later messages overtake them.
    pub fn with_reorder(mut self, p: f64, hold: Duration) -> Self {
        self.reorder_probability = p;
        self.reorder_delay = hold;
        self
    }

    /// Checks that probabilities are in `0..=1`.
    pub fn validate(&self) -> Result<(), MemConfigError> {
        for (name, value) in [
            ("drop_probability", self.drop_probability),
            ("reorder_probability", self.reorder_probability),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(MemConfigError::Probability { name, value });
            }
        }
        Ok(())
    }
}
