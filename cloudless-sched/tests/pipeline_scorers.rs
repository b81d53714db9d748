//! One focused test per built-in scorer: its value on chosen nodes, and its effect on placement.
#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod pipeline_support;

use std::collections::BTreeMap;

use cloudless_core::ids::NodeId;
use cloudless_core::node::PowerSource;
use cloudless_core::scheduler::{
    ClusterSnapshot, HostPortsInUse, PlacementContext, PlacementRequest, Scheduler, Scorer,
    TopologyCounts,
};
use cloudless_core::workload::{
    MatchOperator, NodeMatch, PlacementStrategy, Preferred, REGION_KEY, TopologyKey, WorkloadTerm,
    ZONE_KEY,
};
use cloudless_sched::scorers::*;
use cloudless_sched::{SchedulerConfig, WeightedScheduler, Weights};
use pipeline_support::*;

/// `scorer`'s value for node `id`, outside any batch.
fn score(s: &impl Scorer, snap: &ClusterSnapshot, request: &PlacementRequest, id: u64) -> f64 {
    let batch_free = BTreeMap::new();
    let topology = TopologyCounts::for_request(snap, request);
    let host_ports = HostPortsInUse::for_request(snap, request);
    let ctx = PlacementContext {
        snapshot: snap,
        request,
        batch: &[],
        batch_free: &batch_free,
        node_free: snap.free_on(NodeId(id)),
        topology: &topology,
        host_ports: &host_ports,
    };
    s.score(&ctx, &snap.nodes[&NodeId(id)])
}

/// Only `weights` set, everything else zero.
fn only(f: impl FnOnce(&mut Weights)) -> WeightedScheduler {
    let mut weights = Weights {
        locality: 0.0,
        reliability: 0.0,
        cost: 0.0,
        utilization: 0.0,
        network_penalty: 0.0,
        workload_affinity: 0.0,
        prefer_no_schedule: 0.0,
    };
    f(&mut weights);
    WeightedScheduler::new(SchedulerConfig {
        weights,
        ..SchedulerConfig::default()
    })
    .unwrap()
}

#[test]
fn locality_scores_preferred_terms_and_rtt() {
    let s = snapshot([
        node(1, "eu", "eu-1", 1000, 1000),
        node(2, "us", "us-1", 1000, 1000),
    ]);
    let mut w = web(1, 1);
    w.spec.placement.node_affinity.preferred.push(Preferred {
        weight: 30,
        term: NodeMatch {
            key: REGION_KEY.into(),
            operator: MatchOperator::In,
            values: vec!["us".into()],
        },
    });
    w.spec.placement.node_affinity.preferred.push(Preferred {
        weight: 10,
        term: NodeMatch {
            key: ZONE_KEY.into(),
            operator: MatchOperator::In,
            values: vec!["eu-1".into()],
        },
    });
    let r = req(w.clone(), 1);
    assert_eq!(score(&LocalityScorer::default(), &s, &r, 1), 0.25);
    assert_eq!(score(&LocalityScorer::default(), &s, &r, 2), 0.75);
    let chosen_by = |sched: WeightedScheduler| chosen(&sched.place(&s, &r));
    assert_eq!(chosen_by(only(|w| w.locality = 1.0)), vec![2]);

    // Known RTTs: the near node wins on the RTT half; an unmeasured node scores 0 there.
    let rtt = BTreeMap::from([(NodeId(1), 0.0)]);
    let l = LocalityScorer::new(rtt.clone());
    assert_eq!(score(&l, &s, &req(web(1, 1), 1), 1), 1.0);
    assert_eq!(score(&l, &s, &req(web(1, 1), 1), 2), 0.0);
    assert_eq!(score(&l, &s, &r, 1), (0.25 + 1.0) / 2.0);
}

#[test]
fn reliability_prefers_uptime_few_failures_and_mains() {
    let mut steady = node(1, "r", "a", 1000, 1000);
    steady.report.reliability.uptime_secs = 86_400;
    let mut flaky = steady.clone();
    flaky.id = NodeId(2);
    flaky.report.reliability.recent_failures = 3;
    let mut low = steady.clone();
    low.id = NodeId(3);
    low.report.power = PowerSource::Battery {
        level_percent: 20,
        charging: false,
    };
    let s = snapshot([steady, flaky, low]);
    let r = req(web(1, 1), 1);
    let rel = ReliabilityScorer;
    assert!((score(&rel, &s, &r, 1) - (0.4 * 0.5 + 0.3 + 0.3)).abs() < 1e-12);
    assert!((score(&rel, &s, &r, 2) - (0.4 * 0.5 + 0.3 * 0.25 + 0.3)).abs() < 1e-12);
    assert!((score(&rel, &s, &r, 3) - (0.4 * 0.5 + 0.3 + 0.3 * 0.1)).abs() < 1e-12);
    assert_eq!(
        chosen(&only(|w| w.reliability = 1.0).place(&s, &r)),
        vec![1]
    );
}

#[test]
fn cost_comes_from_config_then_label_then_reference() {
    let mut cheap = node(1, "r", "a", 1000, 1000);
    cheap
        .report
        .labels
        .insert("cloudless.dev/cost".into(), "0.25".into());
    let mut bad = node(2, "r", "a", 1000, 1000);
    bad.report
        .labels
        .insert("cloudless.dev/cost".into(), "-3".into());
    let s = snapshot([cheap, bad, node(3, "r", "a", 1000, 1000)]);
    let r = req(web(1, 1), 1);
    let c = CostScorer::default();
    assert_eq!(score(&c, &s, &r, 1), 0.8);
    assert_eq!(score(&c, &s, &r, 2), 0.5);
    assert_eq!(score(&c, &s, &r, 3), 0.5);
    let c = CostScorer::new(BTreeMap::from([(NodeId(3), 0.0)]));
    assert_eq!(score(&c, &s, &r, 3), 1.0);
    assert_eq!(chosen(&only(|w| w.cost = 1.0).place(&s, &r)), vec![1]);
}

#[test]
fn utilization_binpacks_by_default_and_spreads_on_request() {
    let mut s = snapshot([node(1, "r", "a", 1000, 1000), node(2, "r", "a", 1000, 1000)]);
    s.reserved.insert(
        NodeId(1),
        cloudless_core::resources::Resources {
            cpu_millis: 500,
            memory_mib: 500,
            ..Default::default()
        },
    );
    let r = req(web(100, 100), 1);
    assert_eq!(score(&UtilizationScorer, &s, &r, 1), 0.6);
    assert!((score(&UtilizationScorer, &s, &r, 2) - 0.1).abs() < 1e-12);
    let sched = only(|w| w.utilization = 1.0);
    assert_eq!(chosen(&sched.place(&s, &r)), vec![1]);
    let mut w = web(100, 100);
    w.spec.placement.strategy = PlacementStrategy::Spread;
    assert_eq!(
        chosen(&sched.place(&s, &req(web(100, 100), 4))),
        vec![1, 1, 1, 1]
    );
    // Spread fills the empty node until it is as full as the other.
    assert_eq!(chosen(&sched.place(&s, &req(w, 5))), vec![2, 2, 2, 2, 2]);
}

#[test]
fn network_penalty_hits_nodes_outside_the_preferred_region() {
    let s = snapshot([
        node(1, "eu", "eu-1", 1000, 1000),
        node(2, "us", "us-1", 1000, 1000),
    ]);
    let mut w = web(1, 1);
    w.spec.placement.node_affinity.preferred.push(Preferred {
        weight: 5,
        term: NodeMatch {
            key: REGION_KEY.into(),
            operator: MatchOperator::In,
            values: vec!["eu".into()],
        },
    });
    let r = req(w, 1);
    assert_eq!(score(&NetworkPenaltyScorer, &s, &r, 1), 0.0);
    assert_eq!(score(&NetworkPenaltyScorer, &s, &r, 2), 1.0);
    assert_eq!(score(&NetworkPenaltyScorer, &s, &req(web(1, 1), 1), 2), 0.0);
    // Penalty alone: the preferred region wins even with everything else zero.
    let sched = only(|w| w.network_penalty = 1.0);
    assert_eq!(sched.score_terms(), vec![("network_penalty", -1.0)]);
    assert_eq!(chosen(&sched.place(&s, &r)), vec![1]);
}

#[test]
fn soft_workload_terms_score_affinity_and_anti_affinity() {
    let mut s = snapshot([
        node(1, "r", "a", 1000, 1000),
        node(2, "r", "b", 1000, 1000),
        node(3, "r", "c", 1000, 1000),
    ]);
    let cache = cloudless_sched::pipeline::synthetic::workload(2, "cache", 1, 1);
    add_replica(&mut s, &cache, 1, 2);
    let mut w = web(1, 1);
    w.spec
        .placement
        .workload_affinity
        .preferred
        .push(Preferred {
            weight: 3,
            term: WorkloadTerm {
                workload: "cache".into(),
                topology_key: TopologyKey::Zone,
            },
        });
    w.spec
        .placement
        .workload_anti_affinity
        .preferred
        .push(Preferred {
            weight: 1,
            term: WorkloadTerm {
                workload: "web".into(),
                topology_key: TopologyKey::Node,
            },
        });
    let r = req(w.clone(), 1);
    assert_eq!(score(&WorkloadAffinityScorer, &s, &r, 2), 1.0);
    assert_eq!(score(&WorkloadAffinityScorer, &s, &r, 1), 0.25);
    let sched = only(|w| w.workload_affinity = 1.0);
    // First next to the cache; then, with node 2 taken by web, node 2 still scores 0.75 vs 0.25.
    assert_eq!(chosen(&sched.place(&s, &req(w, 2))), vec![2, 2]);
}
