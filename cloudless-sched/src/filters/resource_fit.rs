//! The replica's requests must fit the node's free resources on every dimension: allocatable
//! minus existing reservations minus what this batch has already placed there.

use cloudless_core::node::Node;
use cloudless_core::scheduler::{Filter, PlacementContext, PlacementRequest, Volatility};

/// Rejects nodes without room; the reason names the first short dimension in a fixed order
/// (cpu, memory, storage, storage iops class, egress bandwidth, gpus), e.g. "insufficient memory".
#[derive(Debug, Clone, Copy, Default)]
pub struct ResourceFitFilter;

impl Filter for ResourceFitFilter {
    fn name(&self) -> &str {
        "resource_fit"
    }

    fn check(&self, ctx: &PlacementContext<'_>, _node: &Node) -> Result<(), String> {
        let want = ctx.request.workload.spec.resources.requests.to_resources();
        let free = ctx.node_free;
        match free.shortfalls(&want).first() {
            None => Ok(()),
            Some(dim) => Err(format!("insufficient {dim}")),
        }
    }

    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::OnNode
    }
}
