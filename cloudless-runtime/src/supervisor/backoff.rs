//! Restart backoff: `initial · factorⁿ⁻¹`, capped by the workload's `max` and the node's cap.

use cloudless_core::workload::Backoff;

/// The delay before restart number `consecutive` (1 for the first restart) in milliseconds.
/// A factor below 100 % is treated as 100 % (delays never shrink); arithmetic saturates.
pub fn restart_delay_ms(backoff: &Backoff, consecutive: u32, node_cap_ms: u64) -> u64 {
    let cap = backoff.max.millis().min(node_cap_ms);
    let factor = u128::from(backoff.multiplier_percent.max(100));
    let mut delay = u128::from(backoff.initial.millis());
    for _ in 1..consecutive {
        if delay >= u128::from(cap) {
            break;
        }
        delay = delay * factor / 100;
    }
    u64::try_from(delay).unwrap_or(u64::MAX).min(cap)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudless_core::quantity::DurationSpec;

    #[test]
    fn doubles_up_to_the_caps() {
        let b = Backoff::default(); // 500 ms, x2, max 300 s
        let delays: Vec<u64> = (1..=12)
            .map(|n| restart_delay_ms(&b, n, u64::MAX))
            .collect();
        assert_eq!(
            delays,
            [
                500, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000, 256000, 300000, 300000
            ]
        );
        assert_eq!(restart_delay_ms(&b, 5, 3000), 3000);
        assert_eq!(restart_delay_ms(&b, u32::MAX, u64::MAX), 300_000);
        let flat = Backoff {
            initial: DurationSpec::from_millis(100),
            max: DurationSpec::from_secs(1),
            multiplier_percent: 50,
        };
        assert_eq!(restart_delay_ms(&flat, 7, u64::MAX), 100);
    }
}
