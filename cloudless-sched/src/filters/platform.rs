//! The image's platform must run on the node (`Platform::runs_on`).

use cloudless_core::node::Node;
use cloudless_core::scheduler::{Filter, PlacementContext, PlacementRequest, Volatility};

/// Rejects nodes whose OS/architecture cannot run the workload's image platform. A workload
/// without a platform runs anywhere (the image index is resolved on the node).
#[derive(Debug, Clone, Copy, Default)]
pub struct PlatformFilter;

impl Filter for PlatformFilter {
    fn name(&self) -> &str {
        "platform"
    }

    fn check(&self, ctx: &PlacementContext<'_>, node: &Node) -> Result<(), String> {
        match &ctx.request.workload.spec.platform {
            Some(p) if !p.runs_on(&node.report.platform) => Err("platform mismatch".into()),
            _ => Ok(()),
        }
    }

    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::Fixed
    }
}
