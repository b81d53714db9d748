//! `PreferNoSchedule` taints: a node carrying one the workload does not tolerate is used only
//! when better nodes are full.

use cloudless_core::node::{Node, TaintEffect};
use cloudless_core::scheduler::{PlacementContext, PlacementRequest, Scorer, Volatility};

/// 1 if the node has an untolerated `PreferNoSchedule` taint, else 0; used with a subtracted
/// weight larger than the sum of the positive ones.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaintPreferenceScorer;

impl Scorer for TaintPreferenceScorer {
    fn name(&self) -> &str {
        "prefer_no_schedule"
    }

    fn score(&self, ctx: &PlacementContext<'_>, node: &Node) -> f64 {
        let tolerations = &ctx.request.workload.spec.placement.tolerations;
        let tainted = node.taints.iter().any(|t| {
            t.effect == TaintEffect::PreferNoSchedule
                && !tolerations.iter().any(|tol| tol.tolerates(t))
        });
        if tainted { 1.0 } else { 0.0 }
    }

    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::Fixed
    }
}
