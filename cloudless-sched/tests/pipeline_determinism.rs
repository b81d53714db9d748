//! Same snapshot + request + seed → same answer; the seed only breaks ties.
#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod pipeline_support;

use cloudless_core::scheduler::Scheduler;
use cloudless_core::workload::{SpreadConstraint, TopologyKey};
use cloudless_sched::WeightedScheduler;
use cloudless_sched::pipeline::synthetic::{SyntheticCluster, request, workload};
use pipeline_support::*;

#[test]
fn a_generated_cluster_gives_the_same_batch_every_time() {
    let snap = SyntheticCluster::new(1_000, 5).snapshot();
    let mut w = workload(1, "web", 300, 300);
    w.spec.placement.spread = Some(SpreadConstraint {
        topology_key: TopologyKey::Zone,
        max_skew: 2,
    });
    let req = request(w, 300, 99);
    let a = WeightedScheduler::default().place(&snap, &req);
    let b = WeightedScheduler::default().place(&snap.clone(), &req.clone());
    assert_eq!(a, b);
    assert_eq!(a.placements.len(), 300);
}

#[test]
fn the_seed_breaks_ties_between_identical_nodes() {
    let s = snapshot((1..=16).map(|i| node(i, "r", "a", 1000, 1000)));
    let first = |seed| {
        let mut r = req(web(1, 1), 1);
        r.seed = seed;
        chosen(&WeightedScheduler::default().place(&s, &r))[0]
    };
    // Identical nodes tie: the winner depends on the seed alone, and repeats for a seed.
    let winners: std::collections::BTreeSet<u64> = (0..32).map(first).collect();
    assert!(
        winners.len() > 4,
        "ties always go to the same few nodes: {winners:?}"
    );
    assert_eq!(first(3), first(3));
}
