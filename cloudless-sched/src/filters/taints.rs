//! Taints keep replicas away unless tolerated. `NoSchedule` and `NoExecute` are hard;
//! `PreferNoSchedule` is left to the score (see `scorers::TaintPreferenceScorer`).

use cloudless_core::node::{Node, TaintEffect};
use cloudless_core::scheduler::{Filter, PlacementContext, PlacementRequest, Volatility};

/// Rejects nodes with a `NoSchedule` or `NoExecute` taint the workload does not tolerate.
#[derive(Debug, Clone, Copy, Default)]
pub struct TaintFilter;

impl Filter for TaintFilter {
    fn name(&self) -> &str {
        "taints"
    }

    fn check(&self, ctx: &PlacementContext<'_>, node: &Node) -> Result<(), String> {
        let tolerations = &ctx.request.workload.spec.placement.tolerations;
        let blocking = node.taints.iter().any(|t| {
            t.effect != TaintEffect::PreferNoSchedule
                && !tolerations.iter().any(|tol| tol.tolerates(t))
        });
        if blocking {
            Err("untolerated taint".into())
        } else {
            Ok(())
        }
    }

    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::Fixed
    }
}
