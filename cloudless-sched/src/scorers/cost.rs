//! Cost: operators say what a node costs, relative to a reference of 1; cheaper scores higher.

use std::collections::BTreeMap;

use cloudless_core::ids::NodeId;
use cloudless_core::node::Node;
use cloudless_core::scheduler::{PlacementContext, PlacementRequest, Scorer, Volatility};

use crate::config::COST_LABEL;

/// Scores `1 / (1 + cost)`: a free node scores 1, the reference cost 0.5. The cost comes from
/// the configured map, else the [`COST_LABEL`] label; a node without a valid cost counts as the
/// reference cost 1.
#[derive(Debug, Clone, Default)]
pub struct CostScorer {
    costs: BTreeMap<NodeId, f64>,
}

impl CostScorer {
    /// A cost scorer with operator-assigned `costs` overriding node labels.
    pub fn new(costs: BTreeMap<NodeId, f64>) -> Self {
        Self { costs }
    }

    /// The relative cost of `node`.
    pub fn cost_of(&self, node: &Node) -> f64 {
        if let Some(c) = self.costs.get(&node.id) {
            return *c;
        }
        node.report
            .labels
            .get(COST_LABEL)
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|c| c.is_finite() && *c >= 0.0)
            .unwrap_or(1.0)
    }
}

impl Scorer for CostScorer {
    fn name(&self) -> &str {
        "cost"
    }

    fn score(&self, _ctx: &PlacementContext<'_>, node: &Node) -> f64 {
        1.0 / (1.0 + self.cost_of(node).max(0.0))
    }

    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::Fixed
    }
}
