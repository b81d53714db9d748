//! Golden tests of the explanations an operator reads when replicas cannot be placed.
#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod pipeline_support;

use cloudless_core::node::Liveness;
use cloudless_core::scheduler::Scheduler;
use cloudless_core::workload::{MatchOperator, NodeMatch, SpreadConstraint, TopologyKey, ZONE_KEY};
use cloudless_sched::WeightedScheduler;
use pipeline_support::*;

#[test]
fn five_thousand_nodes_memory_and_zone() {
    let nodes = (1..=5000).map(|i| {
        if i <= 3120 {
            node(i, "eu", "eu-1", 8000, 256)
        } else {
            node(i, "eu", "eu-2", 8000, 65536)
        }
    });
    let s = snapshot(nodes);
    let mut w = web(100, 1024);
    w.spec.placement.node_affinity.required.push(NodeMatch {
        key: ZONE_KEY.into(),
        operator: MatchOperator::In,
        values: vec!["eu-1".into()],
    });
    let r = WeightedScheduler::default().place(&s, &req(w, 2));
    assert!(r.placements.is_empty());
    assert_eq!(r.unplaced.len(), 2);
    assert_eq!(
        r.unplaced[0].to_string(),
        "0/5000 nodes fit: 3120 insufficient memory, 1880 zone not allowed"
    );
    assert_eq!(
        serde_json::to_string(&r.unplaced[0]).unwrap(),
        r#"{"total_nodes":5000,"rejected":{"insufficient memory":3120,"zone not allowed":1880}}"#
    );
}

#[test]
fn a_batch_that_runs_out_explains_each_missing_replica() {
    let mut down = node(3, "eu", "eu-1", 1000, 1000);
    down.liveness = Liveness::Down;
    let s = snapshot([
        node(1, "eu", "eu-1", 1000, 1000),
        node(2, "eu", "eu-1", 500, 1000),
        down,
    ]);
    let r = WeightedScheduler::default().place(&s, &req(web(400, 100), 5));
    assert_eq!(chosen(&r).len(), 3);
    assert_eq!(r.unplaced.len(), 2);
    for u in &r.unplaced {
        assert_eq!(
            u.to_string(),
            "0/3 nodes fit: 2 insufficient cpu, 1 node down"
        );
    }
}

#[test]
fn spread_skew_is_named_when_it_is_what_blocks() {
    // Zone a has room for one replica, zone b for many: with max skew 1, b may get two.
    let s = snapshot([
        node(1, "eu", "a", 100, 1000),
        node(2, "eu", "b", 1000, 1000),
    ]);
    let mut w = web(100, 1);
    w.spec.placement.spread = Some(SpreadConstraint {
        topology_key: TopologyKey::Zone,
        max_skew: 1,
    });
    let r = WeightedScheduler::default().place(&s, &req(w, 4));
    assert_eq!(chosen(&r).len(), 3);
    assert_eq!(r.unplaced.len(), 1);
    assert_eq!(
        r.unplaced[0].to_string(),
        "0/2 nodes fit: 1 insufficient cpu, 1 max skew exceeded"
    );
}

#[test]
fn an_empty_cluster_says_so() {
    let r = WeightedScheduler::default().place(&snapshot([]), &req(web(1, 1), 1));
    assert_eq!(r.unplaced[0].to_string(), "0/0 nodes fit");
}
