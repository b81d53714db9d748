//! Required node affinity: every expression must match the node's region, zone, name or labels.

use cloudless_core::node::Node;
use cloudless_core::scheduler::{Filter, PlacementContext, PlacementRequest, Volatility};
use cloudless_core::workload::{MatchOperator, NODE_NAME_KEY, NodeMatch, REGION_KEY, ZONE_KEY};

/// Rejects nodes failing a required node affinity expression; the reason names the domain
/// ("region not allowed", "zone not allowed", "node not allowed", "node affinity mismatch").
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeAffinityFilter;

/// The value of `key` on `node`: the well-known region, zone and node-name keys, else a label.
/// Empty region or zone strings count as absent.
pub fn node_value<'n>(node: &'n Node, key: &str) -> Option<&'n str> {
    let v = match key {
        REGION_KEY => node.report.region.as_str(),
        ZONE_KEY => node.report.zone.as_str(),
        NODE_NAME_KEY => node.name.as_str(),
        _ => return node.report.labels.get(key).map(String::as_str),
    };
    (!v.is_empty()).then_some(v)
}

/// True if `node` satisfies the expression `m`.
pub fn node_matches(node: &Node, m: &NodeMatch) -> bool {
    let value = node_value(node, &m.key);
    match m.operator {
        MatchOperator::In => value.is_some_and(|v| m.values.iter().any(|x| x == v)),
        MatchOperator::NotIn => value.is_none_or(|v| !m.values.iter().any(|x| x == v)),
        MatchOperator::Exists => value.is_some(),
        MatchOperator::DoesNotExist => value.is_none(),
    }
}

impl Filter for NodeAffinityFilter {
    fn name(&self) -> &str {
        "node_affinity"
    }

    fn check(&self, ctx: &PlacementContext<'_>, node: &Node) -> Result<(), String> {
        let required = &ctx.request.workload.spec.placement.node_affinity.required;
        match required.iter().find(|m| !node_matches(node, m)) {
            None => Ok(()),
            Some(m) => Err(match m.key.as_str() {
                REGION_KEY => "region not allowed".into(),
                ZONE_KEY => "zone not allowed".into(),
                NODE_NAME_KEY => "node not allowed".into(),
                _ => "node affinity mismatch".into(),
            }),
        }
    }

    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::Fixed
    }
}
