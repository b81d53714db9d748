//! Network penalty: a node outside the workload's preferred region costs cross-region traffic.

use cloudless_core::node::Node;
use cloudless_core::scheduler::{PlacementContext, PlacementRequest, Scorer, Volatility};
use cloudless_core::workload::{MatchOperator, REGION_KEY, Workload};

/// 1 for a node outside the workload's preferred region, else 0; used with a subtracted weight.
///
/// The preferred region is the first value of the heaviest preferred node affinity term
/// `region In [...]` (earliest on ties), else of the first required one; a workload naming no
/// region is never penalised.
#[derive(Debug, Clone, Copy, Default)]
pub struct NetworkPenaltyScorer;

/// The region `workload` prefers, if its node affinity names one.
pub fn preferred_region(workload: &Workload) -> Option<&str> {
    let affinity = &workload.spec.placement.node_affinity;
    let region_in = |m: &&cloudless_core::workload::NodeMatch| {
        m.key == REGION_KEY && m.operator == MatchOperator::In && !m.values.is_empty()
    };
    let mut best: Option<(u32, &str)> = None;
    for p in &affinity.preferred {
        if region_in(&&p.term) && best.is_none_or(|(w, _)| p.weight > w) {
            best = p.term.values.first().map(|v| (p.weight, v.as_str()));
        }
    }
    best.map(|(_, r)| r).or_else(|| {
        affinity
            .required
            .iter()
            .find(region_in)
            .and_then(|m| m.values.first().map(String::as_str))
    })
}

impl Scorer for NetworkPenaltyScorer {
    fn name(&self) -> &str {
        "network_penalty"
    }

    fn score(&self, ctx: &PlacementContext<'_>, node: &Node) -> f64 {
        match preferred_region(&ctx.request.workload) {
            Some(region) if node.report.region != region => 1.0,
            _ => 0.0,
        }
    }

    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::Fixed
    }
}
