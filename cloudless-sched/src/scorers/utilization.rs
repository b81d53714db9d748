//! Utilization balance: bin-pack prefers nodes that will be fuller, spread prefers emptier ones.

use cloudless_core::node::Node;
use cloudless_core::resources::Resources;
use cloudless_core::scheduler::{PlacementContext, PlacementRequest, Scorer, Volatility};
use cloudless_core::workload::PlacementStrategy;

/// Mean CPU and memory utilization of the node after placing the replica (counting this
/// batch); the score for bin-pack, one minus it for spread.
#[derive(Debug, Clone, Copy, Default)]
pub struct UtilizationScorer;

/// Fraction of `total` used once `free - want` is left, in `[0, 1]` (0 for a zero total).
fn used_after(total: u64, free: u64, want: u64) -> f64 {
    if total == 0 {
        return 0.0;
    }
    let left = free.saturating_sub(want);
    1.0 - (left as f64 / total as f64).min(1.0)
}

/// Utilization of `node` after `want` is taken from `free`.
pub(crate) fn utilization_after(node: &Node, free: &Resources, want: &Resources) -> f64 {
    let a = &node.report.allocatable;
    let cpu = used_after(a.cpu_millis, free.cpu_millis, want.cpu_millis);
    let mem = used_after(a.memory_mib, free.memory_mib, want.memory_mib);
    (cpu + mem) / 2.0
}

impl Scorer for UtilizationScorer {
    fn name(&self) -> &str {
        "utilization"
    }

    fn score(&self, ctx: &PlacementContext<'_>, node: &Node) -> f64 {
        let spec = &ctx.request.workload.spec;
        let want = spec.resources.requests.to_resources();
        let u = utilization_after(node, &ctx.node_free, &want);
        match spec.placement.strategy {
            PlacementStrategy::Binpack => u,
            PlacementStrategy::Spread => 1.0 - u,
        }
    }

    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::OnNode
    }
}
