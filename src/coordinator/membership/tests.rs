//! Failure-detector tests with explicit times.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}
