//! The built-in soft preferences, one [`Scorer`](cloudless_core::scheduler::Scorer) per file.
//!
//! Each returns a value in `[0, 1]`, higher meaning "more of this quality"; penalties
//! ([`NetworkPenaltyScorer`], [`TaintPreferenceScorer`]) are subtracted by the pipeline.

mod cost;
mod locality;
mod network;
mod reliability;
mod taint_preference;
mod utilization;
mod workload_affinity;

pub use cost::CostScorer;
pub use locality::LocalityScorer;
pub use network::{NetworkPenaltyScorer, preferred_region};
pub use reliability::ReliabilityScorer;
pub use taint_preference::TaintPreferenceScorer;
pub use utilization::UtilizationScorer;
pub use workload_affinity::WorkloadAffinityScorer;

/// `Σ weightᵢ·[matchᵢ] / Σ weightᵢ` over weighted preference terms; 0 without terms.
pub(crate) fn weighted_share(terms: impl Iterator<Item = (u32, bool)>) -> f64 {
    let (mut hit, mut all) = (0u64, 0u64);
    for (w, ok) in terms {
        all += u64::from(w);
        if ok {
            hit += u64::from(w);
        }
    }
    if all == 0 {
        0.0
    } else {
        hit as f64 / all as f64
    }
}
