//! Soft workload affinity and anti-affinity: preferred terms as a score.

use cloudless_core::node::Node;
use cloudless_core::scheduler::{PlacementContext, PlacementRequest, Scorer, Volatility};

use super::weighted_share;
use crate::filters::own_terms_volatility;

/// The weighted share of satisfied preferred terms: an affinity term is satisfied when the
/// node's domain holds a replica of the named workload, an anti-affinity term when it holds
/// none (existing replicas and this batch's so far). 0 for a workload without preferred terms.
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkloadAffinityScorer;

impl Scorer for WorkloadAffinityScorer {
    fn name(&self) -> &str {
        "workload_affinity"
    }

    fn score(&self, ctx: &PlacementContext<'_>, node: &Node) -> f64 {
        let p = &ctx.request.workload.spec.placement;
        let count = |w: &str, k| ctx.topology.count(w, k, node);
        let affine = p.workload_affinity.preferred.iter().map(|t| {
            let here = count(&t.term.workload, t.term.topology_key);
            (t.weight, here > 0)
        });
        let anti = p.workload_anti_affinity.preferred.iter().map(|t| {
            let here = count(&t.term.workload, t.term.topology_key);
            (t.weight, here == 0)
        });
        weighted_share(affine.chain(anti))
    }

    fn volatility(&self, request: &PlacementRequest) -> Volatility {
        let p = &request.workload.spec.placement;
        let own = &request.workload.name;
        let terms = p
            .workload_affinity
            .preferred
            .iter()
            .chain(&p.workload_anti_affinity.preferred)
            .map(|t| &t.term);
        own_terms_volatility(own, terms)
    }
}
