//! Where replicas may and should go: strategy, spread, selectors, affinity, tolerations.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::node::TaintEffect;

/// Well-known node key for the region, usable in node affinity terms.
pub const REGION_KEY: &str = "topology.cloudless.dev/region";
/// Well-known node key for the zone, usable in node affinity terms.
pub const ZONE_KEY: &str = "topology.cloudless.dev/zone";
/// Well-known node key for the node name, usable in node affinity terms.
pub const NODE_NAME_KEY: &str = "cloudless.dev/node";

/// Bin-pack (the default: fill nodes, leave others free) or spread (prefer emptier nodes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum PlacementStrategy {
    /// Prefer fuller nodes (CLD-REQ-022 default).
    #[default]
    Binpack,
    /// Prefer emptier nodes.
    Spread,
}

/// A topology domain: node, zone or region.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum TopologyKey {
    /// Each node is its own domain.
    Node,
    /// Nodes in one zone form a domain.
    #[default]
    Zone,
    /// Nodes in one region form a domain.
    Region,
}

/// Spread replicas across topology domains with at most `max_skew` difference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SpreadConstraint {
    /// The domain to spread across.
    #[serde(default)]
    pub topology_key: TopologyKey,
    /// Largest allowed difference in replica count between any two domains (≥ 1).
    #[serde(default = "one")]
    pub max_skew: u32,
}

fn one() -> u32 {
    1
}

/// Operator of a node match expression.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum MatchOperator {
    /// The key's value is one of `values`.
    In,
    /// The key's value is none of `values` (or the key is absent).
    NotIn,
    /// The key is present.
    Exists,
    /// The key is absent.
    DoesNotExist,
}

/// A match on a node's region, zone, name (well-known keys) or labels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeMatch {
    /// Label key, or one of the well-known keys for region, zone and node name.
    pub key: String,
    /// How to compare.
    pub operator: MatchOperator,
    /// Values for `In`/`NotIn`; must be empty for `Exists`/`DoesNotExist`.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A weighted preference.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Preferred<T> {
    /// Weight 1..=100.
    pub weight: u32,
    /// The preferred term.
    #[serde(rename = "match")]
    pub term: T,
}

/// Node affinity: hard requirements (all must hold) and soft preferences.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeAffinity {
    /// Every expression must match.
    #[serde(default)]
    pub required: Vec<NodeMatch>,
    /// Matching nodes score higher.
    #[serde(default)]
    pub preferred: Vec<Preferred<NodeMatch>>,
}

/// A term relating this workload's replicas to another workload's replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadTerm {
    /// Name of the other workload (same namespace); this workload's own name means "its own replicas".
    pub workload: String,
    /// The domain in which the relation holds.
    #[serde(default)]
    pub topology_key: TopologyKey,
}

/// Affinity or anti-affinity to other workloads: hard and soft.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadAffinity {
    /// Must hold.
    #[serde(default)]
    pub required: Vec<WorkloadTerm>,
    /// Preferred, weighted.
    #[serde(default)]
    pub preferred: Vec<Preferred<WorkloadTerm>>,
}

/// How a toleration matches a taint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
pub enum TolerationOperator {
    /// Key and value equal.
    #[default]
    Equal,
    /// Key present, any value.
    Exists,
}

/// Lets replicas be placed on nodes with a matching taint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    /// Taint key; empty with `Exists` tolerates everything.
    #[serde(default)]
    pub key: String,
    /// Match operator.
    #[serde(default)]
    pub operator: TolerationOperator,
    /// Value for `Equal`.
    #[serde(default)]
    pub value: String,
    /// Only taints with this effect; all effects when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
}

impl Toleration {
    /// True if this toleration tolerates `taint`.
    pub fn tolerates(&self, taint: &crate::node::Taint) -> bool {
        if self.effect.is_some_and(|e| e != taint.effect) {
            return false;
        }
        match self.operator {
            TolerationOperator::Exists => self.key.is_empty() || self.key == taint.key,
            TolerationOperator::Equal => self.key == taint.key && self.value == taint.value,
        }
    }
}

/// Placement section of a workload spec (CLD-REQ-020, -022).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Placement {
    /// Bin-pack (default) or spread.
    #[serde(default)]
    pub strategy: PlacementStrategy,
    /// Spread across domains with a maximum skew.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<SpreadConstraint>,
    /// Node labels that must all match exactly.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Region/zone/label affinity.
    #[serde(default)]
    pub node_affinity: NodeAffinity,
    /// Co-location with other workloads.
    #[serde(default)]
    pub workload_affinity: WorkloadAffinity,
    /// Separation from other workloads (or this workload's own replicas).
    #[serde(default)]
    pub workload_anti_affinity: WorkloadAffinity,
    /// Taints this workload tolerates.
    #[serde(default)]
    pub tolerations: Vec<Toleration>,
}
