//! Property tests of the scheduler contract: never over-commit, hard constraints hold, spread
//! skew stays within `maxSkew`, anti-affinity separates the batch, deterministic answers.
#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod pipeline_support;

use std::collections::{BTreeMap, BTreeSet};

use cloudless_core::ids::NodeId;
use cloudless_core::node::{Liveness, Node, Taint, TaintEffect};
use cloudless_core::resources::Resources;
use cloudless_core::scheduler::{ClusterSnapshot, PlacementRequest, Scheduler};
use cloudless_core::workload::{
    MatchOperator, NodeMatch, PlacementStrategy, Preferred, SpreadConstraint, TopologyKey,
    WorkloadTerm, ZONE_KEY,
};
use cloudless_sched::WeightedScheduler;
use cloudless_sched::filters::node_matches;
use pipeline_support::*;
use proptest::prelude::*;

const ZONES: [(&str, &str); 4] = [
    ("eu", "eu-1"),
    ("eu", "eu-2"),
    ("us", "us-1"),
    ("us", "us-2"),
];

fn key_strategy() -> impl Strategy<Value = TopologyKey> {
    prop_oneof![
        Just(TopologyKey::Node),
        Just(TopologyKey::Zone),
        Just(TopologyKey::Region)
    ]
}

/// One random node: (zone index, cpu, mem, reserved %, liveness, cordoned, tainted, label).
type NodeSpec = (usize, u64, u64, u64, u8, bool, u8, bool);

fn node_strategy() -> impl Strategy<Value = NodeSpec> {
    (
        0..4usize,
        0..4000u64,
        0..4096u64,
        0..120u64,
        0..10u8,
        any::<bool>(),
        0..6u8,
        any::<bool>(),
    )
}

fn build(nodes: &[NodeSpec]) -> ClusterSnapshot {
    let mut s = ClusterSnapshot::default();
    for (i, &(z, cpu, mem, load, live, cordoned, taint, label)) in nodes.iter().enumerate() {
        let id = i as u64 + 1;
        let (region, zone) = ZONES[z];
        let mut n = node(id, region, zone, cpu, mem);
        n.liveness = match live {
            0 => Liveness::Down,
            1 => Liveness::Suspect,
            _ => Liveness::Ready,
        };
        n.schedulability.cordoned = cordoned && live == 2;
        let effect = match taint {
            0 => Some(TaintEffect::NoSchedule),
            1 => Some(TaintEffect::PreferNoSchedule),
            2 => Some(TaintEffect::NoExecute),
            _ => None,
        };
        if let Some(effect) = effect {
            n.taints.push(Taint {
                key: "k".into(),
                value: String::new(),
                effect,
            });
        }
        if label {
            n.report.labels.insert("disk".into(), "ssd".into());
        }
        // Loads above 100 % model a node whose allocatable shrank under its reservations.
        s.reserved.insert(
            NodeId(id),
            Resources {
                cpu_millis: cpu * load / 100,
                memory_mib: mem * load / 100,
                ..Resources::ZERO
            },
        );
        s.nodes.insert(NodeId(id), n);
    }
    s
}

/// A random request: (cpu, mem, count, binpack?, spread, self anti-affinity, zone filter,
/// selector, exclude first node, seed).
#[allow(clippy::type_complexity)]
fn request_strategy() -> impl Strategy<
    Value = (
        u64,
        u64,
        u32,
        bool,
        Option<(TopologyKey, u32)>,
        Option<TopologyKey>,
        bool,
        bool,
        bool,
        u64,
        u8,
    ),
> {
    (
        0..1500u64,
        0..1500u64,
        1..16u32,
        any::<bool>(),
        proptest::option::of((key_strategy(), 1..3u32)),
        proptest::option::of(key_strategy()),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
        any::<u64>(),
        0..4u8,
    )
}

#[allow(clippy::type_complexity)]
fn make_request(
    r: (
        u64,
        u64,
        u32,
        bool,
        Option<(TopologyKey, u32)>,
        Option<TopologyKey>,
        bool,
        bool,
        bool,
        u64,
        u8,
    ),
) -> PlacementRequest {
    let (cpu, mem, count, binpack, spread, anti, zone_filter, selector, exclude, seed, terms) = r;
    let mut w = web(cpu, mem);
    let p = &mut w.spec.placement;
    p.strategy = if binpack {
        PlacementStrategy::Binpack
    } else {
        PlacementStrategy::Spread
    };
    p.spread = spread.map(|(topology_key, max_skew)| SpreadConstraint {
        topology_key,
        max_skew,
    });
    if let Some(k) = anti {
        p.workload_anti_affinity.required.push(WorkloadTerm {
            workload: "web".into(),
            topology_key: k,
        });
    }
    let own = |topology_key| WorkloadTerm {
        workload: "web".into(),
        topology_key,
    };
    match terms {
        1 => p.workload_anti_affinity.preferred.push(Preferred {
            weight: 10,
            term: own(TopologyKey::Zone),
        }),
        2 => p.workload_affinity.preferred.push(Preferred {
            weight: 10,
            term: own(TopologyKey::Node),
        }),
        3 => p.workload_affinity.required.push(own(TopologyKey::Zone)),
        _ => {}
    }
    if zone_filter {
        p.node_affinity.required.push(NodeMatch {
            key: ZONE_KEY.into(),
            operator: MatchOperator::NotIn,
            values: vec!["us-2".into()],
        });
    }
    if selector {
        p.node_selector.insert("disk".into(), "ssd".into());
    }
    let mut r = req(w, count);
    r.seed = seed;
    if exclude {
        r.exclude.push(NodeId(1));
    }
    r
}

fn domain(n: &Node, k: TopologyKey) -> String {
    match k {
        TopologyKey::Node => n.id.to_string(),
        TopologyKey::Zone => format!("{}/{}", n.report.region, n.report.zone),
        TopologyKey::Region => n.report.region.clone(),
    }
}

/// Nodes that could take one replica at the start of the batch.
fn initially_feasible(s: &ClusterSnapshot, r: &PlacementRequest) -> Vec<NodeId> {
    let sched = WeightedScheduler::default();
    s.nodes
        .keys()
        .filter(|id| {
            let mut alone = s.clone();
            alone.nodes.retain(|k, _| k == *id);
            let mut one = r.clone();
            one.count = 1;
            !sched.place(&alone, &one).placements.is_empty()
        })
        .copied()
        .collect()
}

/// Accepts every node, with the default (widest) volatility: a scheduler holding it
/// re-evaluates every node after every placement.
struct AcceptAll;

impl cloudless_core::scheduler::Filter for AcceptAll {
    fn name(&self) -> &str {
        "accept_all"
    }
    fn check(
        &self,
        _ctx: &cloudless_core::scheduler::PlacementContext<'_>,
        _node: &Node,
    ) -> Result<(), String> {
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn incremental_evaluation_equals_full_reevaluation(
        nodes in prop::collection::vec(node_strategy(), 0..24),
        r in request_strategy(),
    ) {
        // The built-in plugins' volatility declarations must never change an answer.
        let s = build(&nodes);
        let request = make_request(r);
        let fast = WeightedScheduler::default().place(&s, &request);
        let full = WeightedScheduler::builder().with_filter(AcceptAll).build().unwrap();
        prop_assert_eq!(fast, full.place(&s, &request));
    }

    #[test]
    fn contract_holds(nodes in prop::collection::vec(node_strategy(), 0..24), r in request_strategy()) {
        let s = build(&nodes);
        let request = make_request(r);
        let sched = WeightedScheduler::default();
        let out = sched.place(&s, &request);

        // Every replica is either placed or explained, and the answer is deterministic.
        prop_assert_eq!(out.placements.len() + out.unplaced.len(), request.count as usize);
        prop_assert_eq!(&out, &sched.place(&s, &request));
        for u in &out.unplaced {
            prop_assert_eq!(u.total_nodes, s.nodes.len());
            prop_assert_eq!(u.rejected.values().sum::<usize>(), s.nodes.len());
        }

        // Never over-commit: the batch's share of each node fits its free resources.
        let want = request.workload.spec.resources.requests.to_resources();
        let mut per_node: BTreeMap<NodeId, u64> = BTreeMap::new();
        for p in &out.placements {
            *per_node.entry(p.node).or_default() += 1;
        }
        for (id, k) in &per_node {
            let total = want.checked_mul(*k).unwrap();
            prop_assert!(s.free_on(*id).fits(&total), "node {} over-committed", id);
        }

        // Hard constraints hold on every chosen node.
        let p = &request.workload.spec.placement;
        for pl in &out.placements {
            let n = &s.nodes[&pl.node];
            prop_assert!(n.accepts_new_work());
            prop_assert!(!request.exclude.contains(&n.id));
            prop_assert!(!n.taints.iter().any(|t| t.effect != TaintEffect::PreferNoSchedule));
            prop_assert!(p.node_selector.iter().all(|(k, v)| n.report.labels.get(k) == Some(v)));
            prop_assert!(p.node_affinity.required.iter().all(|m| node_matches(n, m)));
            prop_assert!(pl.score.is_finite());
        }
        if let Some(term) = p.workload_anti_affinity.required.first() {
            let domains: Vec<_> = out.placements.iter().map(|pl| domain(&s.nodes[&pl.node], term.topology_key)).collect();
            let distinct: BTreeSet<_> = domains.iter().collect();
            prop_assert_eq!(distinct.len(), domains.len(), "anti-affinity broken: {:?}", domains);
        }

        // Spread: skew over the initially feasible domains stays within maxSkew.
        if let Some(c) = &p.spread {
            let feasible = initially_feasible(&s, &request);
            let mut counts: BTreeMap<String, u32> = feasible
                .iter()
                .map(|id| (domain(&s.nodes[id], c.topology_key), 0))
                .collect();
            for pl in &out.placements {
                let d = domain(&s.nodes[&pl.node], c.topology_key);
                prop_assert!(counts.contains_key(&d), "placed outside the feasible domains");
                *counts.entry(d).or_default() += 1;
            }
            let max = counts.values().max().copied().unwrap_or(0);
            let min = counts.values().min().copied().unwrap_or(0);
            prop_assert!(max - min <= c.max_skew, "skew {} > {}: {:?}", max - min, c.max_skew, counts);
        }
    }

    #[test]
    fn spread_and_anti_affinity_place_everything_that_is_feasible(
        zones in prop::collection::vec(0..4usize, 1..20),
        count in 1..30u32,
        key in key_strategy(),
        max_skew in 1..3u32,
        anti in any::<bool>(),
        seed in any::<u64>(),
    ) {
        // Ample capacity everywhere: only spread and anti-affinity constrain.
        let s = snapshot(zones.iter().enumerate().map(|(i, z)| {
            node(i as u64 + 1, ZONES[*z].0, ZONES[*z].1, 100_000, 100_000)
        }));
        let mut w = web(10, 10);
        w.spec.placement.spread = Some(SpreadConstraint { topology_key: key, max_skew });
        if anti {
            w.spec.placement.workload_anti_affinity.required.push(WorkloadTerm {
                workload: "web".into(),
                topology_key: key,
            });
        }
        let mut request = req(w, count);
        request.seed = seed;
        let out = WeightedScheduler::default().place(&s, &request);
        let domains: BTreeSet<String> = s.nodes.values().map(|n| domain(n, key)).collect();
        let expected = if anti { (count as usize).min(domains.len()) } else { count as usize };
        prop_assert_eq!(out.placements.len(), expected);
        let mut counts: BTreeMap<String, u32> = domains.into_iter().map(|d| (d, 0)).collect();
        for pl in &out.placements {
            *counts.get_mut(&domain(&s.nodes[&pl.node], key)).unwrap() += 1;
        }
        let max = counts.values().max().copied().unwrap_or(0);
        let min = counts.values().min().copied().unwrap_or(0);
        prop_assert!(max - min <= max_skew, "{:?}", counts);
    }

    #[test]
    fn existing_replicas_count_toward_spread(existing in 0..6u32, count in 1..12u32) {
        let mut s = snapshot([
            node(1, "eu", "eu-1", 100_000, 100_000),
            node(2, "eu", "eu-2", 100_000, 100_000),
        ]);
        let mut w = web(10, 10);
        w.spec.placement.spread = Some(SpreadConstraint { topology_key: TopologyKey::Zone, max_skew: 1 });
        for i in 0..existing {
            add_replica(&mut s, &w, u64::from(i) + 1, 1);
        }
        let out = WeightedScheduler::default().place(&s, &req(w, count));
        let on1 = existing + out.placements.iter().filter(|p| p.node == NodeId(1)).count() as u32;
        let on2 = out.placements.iter().filter(|p| p.node == NodeId(2)).count() as u32;
        prop_assert_eq!(out.placements.len() as u32, count);
        // New replicas go to the emptier zone first, then alternate within the skew.
        prop_assert!(on1.abs_diff(on2) <= existing.saturating_sub(count).max(1), "{} vs {}", on1, on2);
    }
}
