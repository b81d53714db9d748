//! Topology spread with a maximum skew, as a batch-level constraint of the select step.
//!
//! Domains are the zones (or regions, or nodes) that hold at least one node able to take the
//! replica when the batch starts (or later becomes able); the workload's existing replicas
//! count. A replica may go to domain `d` only if `count[d] + 1 - min(count) <= max_skew`, so
//! placements never push the skew above `max_skew` (or above an existing, larger skew).

use std::collections::BTreeMap;

use cloudless_core::node::Node;
use cloudless_core::scheduler::TopologyCounts;
use cloudless_core::workload::{SpreadConstraint, TopologyKey};

/// Domain of every node for one topology key, as dense indices.
#[derive(Debug, Clone)]
pub(crate) struct DomainIndex {
    /// Domain index of each node, in node order.
    pub(crate) of_node: Vec<u32>,
    /// Number of domains.
    pub(crate) len: usize,
}

impl DomainIndex {
    /// Indexes `nodes` by `key` (a zone is identified by its region and zone names).
    pub(crate) fn new(nodes: &[&Node], key: TopologyKey) -> Self {
        if key == TopologyKey::Node {
            return Self {
                of_node: (0..nodes.len() as u32).collect(),
                len: nodes.len(),
            };
        }
        let mut ids: BTreeMap<(&str, &str), u32> = BTreeMap::new();
        let mut of_node = Vec::with_capacity(nodes.len());
        for n in nodes {
            let zone = if key == TopologyKey::Zone {
                n.report.zone.as_str()
            } else {
                ""
            };
            let next = ids.len() as u32;
            of_node.push(*ids.entry((n.report.region.as_str(), zone)).or_insert(next));
        }
        Self {
            of_node,
            len: ids.len(),
        }
    }
}

/// Spread bookkeeping for one batch.
#[derive(Debug, Clone)]
pub(crate) struct Spread {
    index: DomainIndex,
    max_skew: u32,
    counts: Vec<u32>,
    eligible: Vec<bool>,
    /// Largest count a domain may reach with the next replica.
    ceiling: u32,
}

impl Spread {
    /// Spread state for `constraint`, with the workload's existing replicas counted.
    pub(crate) fn new(
        nodes: &[&Node],
        constraint: &SpreadConstraint,
        topology: &TopologyCounts,
        workload: &str,
    ) -> Self {
        let index = DomainIndex::new(nodes, constraint.topology_key);
        let mut counts = vec![0; index.len];
        for (i, n) in nodes.iter().enumerate() {
            counts[index.of_node[i] as usize] =
                topology.count(workload, constraint.topology_key, n);
        }
        Self {
            eligible: vec![false; index.len],
            counts,
            index,
            max_skew: constraint.max_skew.max(1),
            ceiling: 0,
        }
    }

    /// Marks node `i`'s domain as one that can take replicas.
    pub(crate) fn mark_eligible(&mut self, i: usize) {
        self.eligible[self.index.of_node[i] as usize] = true;
    }

    /// Recomputes the ceiling from the least-loaded eligible domain; call before selecting.
    pub(crate) fn refresh(&mut self) {
        let min = self
            .counts
            .iter()
            .zip(&self.eligible)
            .filter(|(_, e)| **e)
            .map(|(c, _)| *c)
            .min()
            .unwrap_or(0);
        self.ceiling = min.saturating_add(self.max_skew);
    }

    /// True if node `i`'s domain may take the next replica.
    pub(crate) fn allows(&self, i: usize) -> bool {
        self.counts[self.index.of_node[i] as usize] < self.ceiling
    }

    /// Counts a replica placed on node `i`.
    pub(crate) fn record(&mut self, i: usize) {
        let c = &mut self.counts[self.index.of_node[i] as usize];
        *c = c.saturating_add(1);
    }
}
