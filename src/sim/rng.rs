//! The simulator's seeded randomness: one ChaCha8 stream per purpose, derived from the seed.

use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::{Rng, SeedableRng};

/// A seeded random stream with the few draws the simulator needs.
#[derive(Debug, Clone)]
pub struct SimRng(ChaCha8Rng);

impl SimRng {
    /// The stream for `purpose` under `seed` (different purposes give independent streams, so
    /// adding draws in one place does not shift the others).
    pub fn new(seed: u64, purpose: u64) -> Self {
        let mixed = seed ^ purpose.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self(ChaCha8Rng::seed_from_u64(mixed))
    }

    /// A uniform `u64`.
    pub fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A uniform value in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 { 0 } else { self.next_u64() % n }
    }

    /// True with probability `p` (clamped to 0..=1).
    pub fn chance(&mut self, p: f64) -> bool {
        if p <= 0.0 {
            return false;
        }
        if p >= 1.0 {
            return true;
        }
        // 53 random bits as a fraction in [0, 1).
        let x = (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        x < p
    }

    /// A uniform duration in `0..=max`.
    pub fn duration_up_to(&mut self, max: std::time::Duration) -> std::time::Duration {
        let nanos = u64::try_from(max.as_nanos()).unwrap_or(u64::MAX);
        if nanos == 0 {
            return std::time::Duration::ZERO;
        }
        std::time::Duration::from_nanos(self.next_u64() % nanos.saturating_add(1))
    }
}
