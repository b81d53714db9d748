//! Every `nodeSelector` label must match the node's label exactly.

use cloudless_core::node::Node;
use cloudless_core::scheduler::{Filter, PlacementContext, PlacementRequest, Volatility};

/// Rejects nodes missing a selector label or carrying a different value.
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeSelectorFilter;

impl Filter for NodeSelectorFilter {
    fn name(&self) -> &str {
        "node_selector"
    }

    fn check(&self, ctx: &PlacementContext<'_>, node: &Node) -> Result<(), String> {
        let selector = &ctx.request.workload.spec.placement.node_selector;
        let ok = selector
            .iter()
            .all(|(k, v)| node.report.labels.get(k) == Some(v));
        if ok {
            Ok(())
        } else {
            Err("node selector mismatch".into())
        }
    }

    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::Fixed
    }
}
