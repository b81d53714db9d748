//! One `place` call: evaluate every node once, then select, reserve and re-evaluate only the
//! nodes a placement can have changed (per the plugins' declared [`Volatility`]).

use std::collections::BTreeMap;

use cloudless_core::ids::NodeId;
use cloudless_core::node::Node;
use cloudless_core::resources::Resources;
use cloudless_core::scheduler::{
    ClusterSnapshot, HostPortsInUse, Placement, PlacementContext, PlacementRequest,
    PlacementResult, TopologyCounts, Unplaceable, Volatility,
};
use cloudless_core::workload::TopologyKey;

use super::WeightedScheduler;
use super::spread::{DomainIndex, Spread};
use super::tiebreak::tie_key;

/// Reason counted for nodes that pass every filter but would push the spread skew too far.
pub const SKEW_REASON: &str = "max skew exceeded";

/// The outcome of evaluating one node.
#[derive(Debug, Clone)]
enum Verdict {
    /// Passed every filter, with its total score.
    Fit(f64),
    /// The first filter that failed said this.
    Rejected(String),
}

/// Mutable state of one batch.
struct Batch<'a> {
    sched: &'a WeightedScheduler,
    snapshot: &'a ClusterSnapshot,
    request: &'a PlacementRequest,
    nodes: Vec<&'a Node>,
    /// Free resources of the nodes the batch has placed on (the context's `batch_free`).
    batch_free: BTreeMap<NodeId, Resources>,
    /// Free resources of every node, in node order, for the per-node context.
    free_vec: Vec<Resources>,
    topology: TopologyCounts,
    /// The request's host ports taken per node, existing and this batch's.
    host_ports: HostPortsInUse,
    batch: Vec<NodeId>,
    verdicts: Vec<Verdict>,
}

impl Batch<'_> {
    fn evaluate(&self, i: usize) -> Verdict {
        let node = self.nodes[i];
        let ctx = PlacementContext {
            snapshot: self.snapshot,
            request: self.request,
            batch: &self.batch,
            batch_free: &self.batch_free,
            node_free: self.free_vec[i],
            topology: &self.topology,
            host_ports: &self.host_ports,
        };
        for f in &self.sched.filters {
            if let Err(reason) = f.check(&ctx, node) {
                return Verdict::Rejected(reason);
            }
        }
        let mut total = 0.0;
        for term in &self.sched.terms {
            let s = term.scorer.score(&ctx, node);
            // NaN counts as 0 and anything outside [0, 1] is clamped (Scorer contract).
            let s = if s.is_nan() { 0.0 } else { s.clamp(0.0, 1.0) };
            total += term.weight * s;
        }
        Verdict::Fit(total)
    }

    /// The feasible node (allowed by `spread`) with the highest score, ties broken by the
    /// seeded key, which is computed only when scores are equal.
    fn select(&self, spread: Option<&Spread>) -> Option<(usize, f64)> {
        let tie = |j: usize| tie_key(self.request.seed, self.nodes[j].id.get());
        let mut best: Option<(usize, f64, Option<u64>)> = None;
        for (i, v) in self.verdicts.iter().enumerate() {
            let Verdict::Fit(score) = *v else { continue };
            if spread.is_some_and(|s| !s.allows(i)) {
                continue;
            }
            match &mut best {
                None => best = Some((i, score, None)),
                Some((bi, bs, bt)) => {
                    if score > *bs {
                        best = Some((i, score, None));
                    } else if score == *bs {
                        let best_key = *bt.get_or_insert_with(|| tie(*bi));
                        let key = tie(i);
                        if key > best_key {
                            best = Some((i, score, Some(key)));
                        }
                    }
                }
            }
        }
        best.map(|(i, score, _)| (i, score))
    }

    fn reevaluate(&mut self, j: usize, spread: Option<&mut Spread>) {
        let v = self.evaluate(j);
        if let (Some(s), Verdict::Fit(_)) = (spread, &v) {
            s.mark_eligible(j);
        }
        self.verdicts[j] = v;
    }

    fn explain(&self, spread: Option<&Spread>) -> Unplaceable {
        let mut rejected: BTreeMap<String, usize> = BTreeMap::new();
        for (i, v) in self.verdicts.iter().enumerate() {
            let reason = match v {
                Verdict::Rejected(r) => r.as_str(),
                Verdict::Fit(_) if spread.is_some_and(|s| !s.allows(i)) => SKEW_REASON,
                // Unreachable when nothing was selected; counted so the numbers add up.
                Verdict::Fit(_) => "not selected",
            };
            match rejected.get_mut(reason) {
                Some(n) => *n += 1,
                None => {
                    rejected.insert(reason.to_owned(), 1);
                }
            }
        }
        Unplaceable {
            total_nodes: self.nodes.len(),
            rejected,
        }
    }
}

/// Runs the pipeline for `request` on `snapshot`.
pub(crate) fn place(
    sched: &WeightedScheduler,
    snapshot: &ClusterSnapshot,
    request: &PlacementRequest,
) -> PlacementResult {
    let mut result = PlacementResult::default();
    if request.count == 0 {
        return result;
    }
    let n = snapshot.nodes.len();
    let mut b = Batch {
        sched,
        snapshot,
        request,
        topology: TopologyCounts::for_request(snapshot, request),
        host_ports: HostPortsInUse::for_request(snapshot, request),
        nodes: Vec::with_capacity(n),
        batch_free: BTreeMap::new(),
        free_vec: Vec::with_capacity(n),
        // Capped: a huge `count` must not reserve memory up front.
        batch: Vec::with_capacity((request.count as usize).min(4096)),
        verdicts: Vec::with_capacity(n),
    };
    // One pass over the nodes: free resources (allocatable minus reserved, a merge of the two
    // id-ordered maps rather than a lookup per node) and the first evaluation, so each node's
    // memory is fetched once.
    let mut reserved = snapshot.reserved.iter().peekable();
    for (id, node) in &snapshot.nodes {
        while reserved.next_if(|(r, _)| *r < id).is_some() {}
        let free = match reserved.next_if(|(r, _)| *r == id) {
            Some((_, r)) => node.report.allocatable.saturating_sub(r),
            None => node.report.allocatable,
        };
        b.nodes.push(node);
        b.free_vec.push(free);
        let verdict = b.evaluate(b.nodes.len() - 1);
        b.verdicts.push(verdict);
    }

    let own = request.workload.name.as_str();
    let mut spread = request
        .workload
        .spec
        .placement
        .spread
        .as_ref()
        .map(|c| Spread::new(&b.nodes, c, &b.topology, own));
    if let Some(s) = spread.as_mut() {
        for (i, v) in b.verdicts.iter().enumerate() {
            if matches!(v, Verdict::Fit(_)) {
                s.mark_eligible(i);
            }
        }
    }
    let volatility = sched.volatility(request);
    let dirty_index = match volatility {
        Volatility::InDomain(k @ (TopologyKey::Zone | TopologyKey::Region)) => {
            Some(DomainIndex::new(&b.nodes, k))
        }
        _ => None,
    };
    let want = request.workload.spec.resources.requests.to_resources();

    for placed in 0..request.count {
        if let Some(s) = spread.as_mut() {
            s.refresh();
        }
        let Some((i, score)) = b.select(spread.as_ref()) else {
            // Nothing changes until something is placed, so every remaining replica has the
            // same explanation.
            let why = b.explain(spread.as_ref());
            let left = (request.count - placed) as usize;
            result.unplaced = vec![why; left];
            break;
        };
        let node = b.nodes[i];
        result.placements.push(Placement {
            node: node.id,
            score,
        });
        b.free_vec[i] = b.free_vec[i].saturating_sub(&want);
        b.batch_free.insert(node.id, b.free_vec[i]);
        b.topology.record(own, node);
        b.host_ports.record(node.id);
        b.batch.push(node.id);
        if let Some(s) = spread.as_mut() {
            s.record(i);
        }
        if placed + 1 == request.count {
            break;
        }
        // Re-evaluate only what the placement on node `i` can have changed.
        match (volatility, &dirty_index) {
            (Volatility::Any, _) => {
                for j in 0..n {
                    b.reevaluate(j, spread.as_mut());
                }
            }
            (_, Some(d)) => {
                let dom = d.of_node[i];
                for j in 0..n {
                    if d.of_node[j] == dom {
                        b.reevaluate(j, spread.as_mut());
                    }
                }
            }
            _ => b.reevaluate(i, spread.as_mut()),
        }
    }
    result
}
