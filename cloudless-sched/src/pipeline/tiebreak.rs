//! Deterministic, seeded tie-breaking and a tiny seeded generator (no global randomness).

/// SplitMix64 finalizer: a fast bijective mixer of 64-bit values.
pub(crate) fn mix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The tie-break key of a node for a seed: among equal scores the larger key wins, so the
/// order among equals is a seeded permutation rather than "lowest id first" (which would pile
/// every tie onto the same few nodes across requests).
pub(crate) fn tie_key(seed: u64, node: u64) -> u64 {
    mix64(seed ^ mix64(node))
}

/// A seeded SplitMix64 stream, for synthetic clusters.
#[derive(Debug, Clone)]
pub(crate) struct SeededRng(u64);

impl SeededRng {
    /// A stream starting at `seed`.
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub(crate) fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix64(self.0)
    }

    /// A value in `lo..hi` (`lo` when the range is empty).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.next_u64() % (hi - lo)
    }

    /// True with probability `percent / 100`.
    pub(crate) fn chance(&mut self, percent: u64) -> bool {
        self.range(0, 100) < percent
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_depend_on_seed_and_node() {
        assert_eq!(tie_key(1, 2), tie_key(1, 2));
        assert_ne!(tie_key(1, 2), tie_key(2, 2));
        assert_ne!(tie_key(1, 2), tie_key(1, 3));
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut r = SeededRng::new(9);
        for _ in 0..1000 {
            let v = r.range(3, 7);
            assert!((3..7).contains(&v));
        }
        assert_eq!(r.range(5, 5), 5);
    }
}
