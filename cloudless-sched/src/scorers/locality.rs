//! Locality: preferred node affinity terms (region, zone, node, labels) and, when measured,
//! the round-trip time to the node.

use std::collections::BTreeMap;

use cloudless_core::ids::NodeId;
use cloudless_core::node::Node;
use cloudless_core::scheduler::{PlacementContext, PlacementRequest, Scorer, Volatility};

use super::weighted_share;
use crate::filters::node_matches;

/// RTT at which the RTT part of the score halves.
const RTT_HALF_MS: f64 = 50.0;

/// Scores the weighted share of matching preferred node affinity terms, averaged with an RTT
/// score `1 / (1 + rtt / 50 ms)` when RTTs are known (a node without a measurement scores 0 on
/// that half, so measured-near nodes win).
#[derive(Debug, Clone, Default)]
pub struct LocalityScorer {
    rtt_ms: BTreeMap<NodeId, f64>,
}

impl LocalityScorer {
    /// A locality scorer using `rtt_ms` (may be empty).
    pub fn new(rtt_ms: BTreeMap<NodeId, f64>) -> Self {
        Self { rtt_ms }
    }
}

impl Scorer for LocalityScorer {
    fn name(&self) -> &str {
        "locality"
    }

    fn score(&self, ctx: &PlacementContext<'_>, node: &Node) -> f64 {
        let preferred = &ctx.request.workload.spec.placement.node_affinity.preferred;
        let terms = weighted_share(
            preferred
                .iter()
                .map(|p| (p.weight, node_matches(node, &p.term))),
        );
        if self.rtt_ms.is_empty() {
            return terms;
        }
        let rtt = self
            .rtt_ms
            .get(&node.id)
            .map_or(0.0, |ms| 1.0 / (1.0 + ms.max(0.0) / RTT_HALF_MS));
        if preferred.is_empty() {
            rtt
        } else {
            (terms + rtt) / 2.0
        }
    }

    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::Fixed
    }
}
