//! Required workload affinity and anti-affinity, per topology domain (node, zone, region),
//! counting existing replicas and the replicas this batch has placed so far.

use cloudless_core::node::Node;
use cloudless_core::scheduler::{Filter, PlacementContext, PlacementRequest, Volatility};
use cloudless_core::workload::WorkloadTerm;

/// Rejects nodes whose domain lacks a replica of a required affine workload, or holds a
/// replica of a required anti-affine one.
///
/// A workload that requires affinity to itself may start anywhere while it has no replicas.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkloadAffinityFilter;

impl Filter for WorkloadAffinityFilter {
    fn name(&self) -> &str {
        "workload_affinity"
    }

    fn check(&self, ctx: &PlacementContext<'_>, node: &Node) -> Result<(), String> {
        let own = &ctx.request.workload.name;
        let placement = &ctx.request.workload.spec.placement;
        for term in &placement.workload_affinity.required {
            let here = ctx.topology.count(&term.workload, term.topology_key, node);
            let bootstrapping = &term.workload == own && ctx.topology.total(own) == 0;
            if here == 0 && !bootstrapping {
                return Err("workload affinity not satisfied".into());
            }
        }
        for term in &placement.workload_anti_affinity.required {
            if ctx.topology.count(&term.workload, term.topology_key, node) > 0 {
                return Err("workload anti-affinity".into());
            }
        }
        Ok(())
    }

    fn volatility(&self, request: &PlacementRequest) -> Volatility {
        let own = &request.workload.name;
        let p = &request.workload.spec.placement;
        // Required affinity to itself lets the first replica go anywhere and then pins the
        // rest to its domain: the first placement changes every node.
        if p.workload_affinity
            .required
            .iter()
            .any(|t| &t.workload == own)
        {
            return Volatility::Any;
        }
        own_terms_volatility(own, p.workload_anti_affinity.required.iter())
    }
}

/// Terms naming the workload itself change within a batch (the batch only adds its own
/// replicas), and then only in the term's domain; terms naming other workloads are fixed.
pub(crate) fn own_terms_volatility<'a>(
    own: &str,
    terms: impl Iterator<Item = &'a WorkloadTerm>,
) -> Volatility {
    terms
        .filter(|t| t.workload == own)
        .fold(Volatility::Fixed, |v, t| {
            v.widen(Volatility::InDomain(t.topology_key))
        })
}
