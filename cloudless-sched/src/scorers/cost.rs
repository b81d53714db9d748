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
            .and_then(|s| parse_cost(s.trim()))
            .filter(|c| c.is_finite() && *c >= 0.0)
            .unwrap_or(1.0)
    }
}

/// Parses a cost label. Plain decimals such as `1.25` (what operators write) take a fast path
/// without the general float parser, which showed up in profiles at 5k nodes.
fn parse_cost(s: &str) -> Option<f64> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.len() <= 9 && p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) {
        return s.parse::<f64>().ok();
    }
    let whole = int
        .bytes()
        .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
    let part = frac
        .bytes()
        .fold(0u64, |acc, b| acc * 10 + u64::from(b - b'0'));
    Some(whole as f64 + part as f64 / 10f64.powi(frac.len() as i32))
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

#[cfg(test)]
mod tests {
    use super::parse_cost;

    #[test]
    fn cost_labels_parse_like_floats() {
        for s in [
            "0", "1", "1.5", "0.25", "12.125", "1e2", ".5", "-1", "nan", "1.2.3", "",
        ] {
            let bits = |v: Option<f64>| v.map(f64::to_bits);
            assert_eq!(bits(parse_cost(s)), bits(s.parse::<f64>().ok()), "{s}");
        }
        // The fast path may differ from the correctly rounded parse by an ulp at most.
        for s in ["1.23", "0.7", "3.14159", "123456789.987654321"] {
            let (a, b) = (parse_cost(s).unwrap(), s.parse::<f64>().unwrap());
            assert!((a - b).abs() <= b * 4.0 * f64::EPSILON, "{s}: {a} vs {b}");
        }
    }
}
