//! Only Ready, schedulable nodes the request does not exclude take new replicas.

use cloudless_core::node::{Liveness, Node};
use cloudless_core::scheduler::{Filter, PlacementContext, PlacementRequest, Volatility};

/// Rejects nodes that are not Ready, are cordoned or draining, or are in `request.exclude`.
#[derive(Debug, Clone, Copy, Default)]
pub struct LivenessFilter;

impl Filter for LivenessFilter {
    fn name(&self) -> &str {
        "liveness"
    }

    fn check(&self, ctx: &PlacementContext<'_>, node: &Node) -> Result<(), String> {
        match node.liveness {
            Liveness::Ready => {}
            Liveness::Joining => return Err("node joining".into()),
            Liveness::Suspect => return Err("node suspect".into()),
            Liveness::Down => return Err("node down".into()),
            Liveness::Left => return Err("node left".into()),
        }
        if node.schedulability.draining {
            return Err("node draining".into());
        }
        if node.schedulability.cordoned {
            return Err("node cordoned".into());
        }
        if ctx.request.exclude.contains(&node.id) {
            return Err("node excluded".into());
        }
        Ok(())
    }

    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::Fixed
    }
}
