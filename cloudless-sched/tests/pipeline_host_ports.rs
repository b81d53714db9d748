//! Host ports through the whole pipeline: a batch never puts two replicas publishing the same
//! `(hostPort, protocol)` on one node, existing replicas of other workloads count, and an
//! unplaceable replica is explained by the port.
#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod pipeline_support;

use std::collections::BTreeSet;

use cloudless_core::node::Node;
use cloudless_core::scheduler::{
    Filter, PlacementContext, PlacementRequest, PlacementResult, Scheduler, Volatility,
};
use cloudless_core::workload::{ContainerPort, Protocol, Workload};
use cloudless_sched::WeightedScheduler;
use cloudless_sched::pipeline::synthetic::{self, SyntheticCluster};
use pipeline_support::*;

/// Workload `id`/`name`, 100m / 64Mi, publishing `host` with `protocol`.
fn publishing(id: u64, name: &str, host: u16, protocol: Protocol) -> Workload {
    let mut w = synthetic::workload(id, name, 100, 64);
    w.spec.ports.push(ContainerPort {
        name: "http".into(),
        container_port: 80,
        protocol,
        host_port: Some(host),
    });
    w
}

fn distinct_nodes(r: &PlacementResult) -> bool {
    let nodes: BTreeSet<_> = r.placements.iter().map(|p| p.node).collect();
    nodes.len() == r.placements.len()
}

#[test]
fn three_replicas_on_two_nodes_place_two_and_explain_the_third() {
    let s = snapshot([node(1, "r", "a", 4000, 4096), node(2, "r", "a", 4000, 4096)]);
    let r =
        WeightedScheduler::default().place(&s, &req(publishing(1, "web", 8080, Protocol::Tcp), 3));
    let mut nodes = chosen(&r);
    nodes.sort_unstable();
    assert_eq!(nodes, vec![1, 2]);
    assert_eq!(r.unplaced.len(), 1);
    assert_eq!(
        r.unplaced[0].to_string(),
        "0/2 nodes fit: 2 host port 8080/TCP in use"
    );
    // Without the host port all three fit (resources allow it): the port is the only reason.
    let plain = WeightedScheduler::default().place(&s, &req(web(100, 64), 3));
    assert_eq!((plain.placements.len(), plain.unplaced.len()), (3, 0));
}

#[test]
fn another_workload_with_the_same_port_cannot_land_next_to_the_first_but_another_protocol_can() {
    let mut s = snapshot([
        node(1, "r", "a", 4000, 4096),
        node(2, "r", "b", 4000, 4096),
        node(3, "r", "c", 4000, 4096),
    ]);
    let web = publishing(1, "web", 8080, Protocol::Tcp);
    add_replica(&mut s, &web, 1, 1);
    add_replica(&mut s, &web, 2, 2);
    let sched = WeightedScheduler::default();

    let proxy = publishing(2, "proxy", 8080, Protocol::Tcp);
    let r = sched.place(&s, &req(proxy.clone(), 1));
    assert_eq!(chosen(&r), vec![3]);
    let r = sched.place(&s, &req(proxy, 2));
    assert_eq!(chosen(&r), vec![3]);
    assert_eq!(
        r.unplaced[0].to_string(),
        "0/3 nodes fit: 3 host port 8080/TCP in use"
    );

    // 8080/UDP is a different port: one replica per node (they conflict with each other only).
    let r = sched.place(&s, &req(publishing(3, "stats", 8080, Protocol::Udp), 3));
    assert!(r.unplaced.is_empty(), "{:?}", r.unplaced);
    assert!(distinct_nodes(&r));

    // A different port number fits anywhere too.
    let r = sched.place(&s, &req(publishing(4, "admin", 9090, Protocol::Tcp), 3));
    assert_eq!((r.placements.len(), r.unplaced.len()), (3, 0));
}

#[test]
fn the_port_is_counted_after_resource_fit() {
    // Node 1 is both full and holding the port: counted under the resource reason (the first
    // failing filter), node 2 under the port.
    let mut s = snapshot([node(1, "r", "a", 100, 64), node(2, "r", "a", 4000, 4096)]);
    let holder = publishing(2, "proxy", 8080, Protocol::Tcp);
    add_replica(&mut s, &holder, 1, 1);
    add_replica(&mut s, &holder, 2, 2);
    let r =
        WeightedScheduler::default().place(&s, &req(publishing(1, "web", 8080, Protocol::Tcp), 1));
    assert_eq!(
        r.unplaced[0].to_string(),
        "0/2 nodes fit: 1 host port 8080/TCP in use, 1 insufficient cpu"
    );
}

/// Passes everything but is `Any`-volatile: forces full re-evaluation after each placement.
struct ReevaluateAll;

impl Filter for ReevaluateAll {
    fn name(&self) -> &str {
        "reevaluate_all"
    }
    fn check(&self, _ctx: &PlacementContext<'_>, _node: &Node) -> Result<(), String> {
        Ok(())
    }
    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::Any
    }
}

#[test]
fn a_large_batch_uses_each_node_once_and_matches_full_reevaluation() {
    let mut s = SyntheticCluster::new(300, 5).snapshot();
    // Another workload holds the port on the first 50 nodes.
    let holder = publishing(2, "proxy", 8080, Protocol::Tcp);
    for n in 1..=50 {
        add_replica(&mut s, &holder, n, n);
    }
    let request = req(publishing(1, "web", 8080, Protocol::Tcp), 400);
    let r = WeightedScheduler::default().place(&s, &request);
    assert_eq!(r.placements.len() + r.unplaced.len(), 400);
    assert!(distinct_nodes(&r));
    assert!(r.placements.iter().all(|p| p.node.get() > 50));
    assert!(!r.unplaced.is_empty());
    assert!(
        r.unplaced[0]
            .to_string()
            .contains("host port 8080/TCP in use")
    );

    let full = WeightedScheduler::builder()
        .with_filter(ReevaluateAll)
        .build()
        .unwrap()
        .place(&s, &request);
    assert_eq!(r, full);
}

mod props {
    use std::collections::BTreeMap;

    use cloudless_core::ids::NodeId;
    use cloudless_core::workload::{SpreadConstraint, TopologyKey};
    use proptest::prelude::*;

    use super::*;

    const PORTS: [(u16, Protocol); 3] = [
        (80, Protocol::Tcp),
        (80, Protocol::Udp),
        (443, Protocol::Tcp),
    ];

    /// A workload publishing the ports of `mask` (bits over `PORTS`).
    fn with_mask(id: u64, name: &str, mask: u8) -> Workload {
        let mut w = synthetic::workload(id, name, 100, 64);
        for (i, (host, protocol)) in PORTS.iter().enumerate() {
            if mask & (1 << i) != 0 {
                w.spec.ports.push(ContainerPort {
                    name: format!("p{i}"),
                    container_port: 8000 + i as u16,
                    protocol: *protocol,
                    host_port: Some(*host),
                });
            }
        }
        w
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Existing replicas (of the request's workload and of two others, each with random
        /// ports) plus the batch never hold one `(hostPort, protocol)` twice on a node, and the
        /// `OnNode` declaration gives exactly the answers of full re-evaluation.
        #[test]
        fn no_port_is_held_twice_on_a_node(
            nodes in 1..12u64,
            masks in (0..8u8, 0..8u8, 0..8u8),
            existing in prop::collection::vec((0..3u64, 1..12u64), 0..16),
            count in 1..16u32,
            spread in any::<bool>(),
            seed in any::<u64>(),
        ) {
            let mut s = snapshot((1..=nodes).map(|i| node(i, "r", ["a", "b", "c"][i as usize % 3], 100_000, 100_000)));
            let workloads = [
                with_mask(1, "web", masks.0),
                with_mask(2, "proxy", masks.1),
                with_mask(3, "dns", masks.2),
            ];
            for (i, (w, n)) in existing.iter().enumerate() {
                if *n <= nodes {
                    add_replica(&mut s, &workloads[*w as usize], i as u64 + 1, *n);
                }
            }
            let mut request = req(workloads[0].clone(), count);
            request.seed = seed;
            if spread {
                request.workload.spec.placement.spread = Some(SpreadConstraint {
                    topology_key: TopologyKey::Zone,
                    max_skew: 1,
                });
            }
            let fast = WeightedScheduler::default().place(&s, &request);
            let full = WeightedScheduler::builder().with_filter(ReevaluateAll).build().unwrap();
            prop_assert_eq!(&fast, &full.place(&s, &request));
            prop_assert_eq!(fast.placements.len() + fast.unplaced.len(), count as usize);

            // Holders per (node, port, protocol): existing replicas first, then the batch.
            type Holders = BTreeMap<(NodeId, u16, bool), Vec<String>>;
            fn hold(holders: &mut Holders, node: NodeId, w: &Workload, who: String) {
                for p in w.spec.host_ports() {
                    holders
                        .entry((node, p.port, p.protocol == Protocol::Tcp))
                        .or_default()
                        .push(who.clone());
                }
            }
            let mut holders = Holders::new();
            for r in s.replicas.values() {
                let w = &workloads[(r.workload.get() - 1) as usize];
                hold(&mut holders, r.node, w, format!("existing {}", r.id));
            }
            let preexisting: BTreeMap<(NodeId, u16, bool), usize> =
                holders.iter().map(|(k, v)| (*k, v.len())).collect();
            for (i, p) in fast.placements.iter().enumerate() {
                hold(&mut holders, p.node, &workloads[0], format!("batch #{i}"));
            }
            for (k, v) in &holders {
                // Existing conflicts (made outside the scheduler) may be there already; the
                // batch never adds a holder to a taken port nor takes one twice.
                let before = preexisting.get(k).copied().unwrap_or(0);
                prop_assert!(
                    v.len() == before || (before == 0 && v.len() == 1),
                    "{k:?} held by {v:?}"
                );
            }
        }
    }
}

#[test]
fn recorded_ports_hold_after_the_workload_is_gone_or_its_ports_changed() {
    let mut s = snapshot([node(1, "r", "a", 4000, 4096), node(2, "r", "b", 4000, 4096)]);
    // Node 1: a stopping replica of a deleted workload that published 8080/TCP.
    let gone = publishing(7, "gone", 8080, Protocol::Tcp);
    add_replica(&mut s, &gone, 1, 1);
    s.workloads.remove(&gone.id);
    let r1 = s
        .replicas
        .get_mut(&cloudless_core::ids::ReplicaId(1))
        .unwrap();
    r1.phase = cloudless_core::replica::ReplicaPhase::Stopping;
    r1.host_ports = Some(vec![cloudless_core::workload::HostPort {
        port: 8080,
        protocol: Protocol::Tcp,
    }]);
    let sched = WeightedScheduler::default();
    let r = sched.place(&s, &req(publishing(8, "new", 8080, Protocol::Tcp), 1));
    assert_eq!(chosen(&r), vec![2]);

    // Node 2: a replica assigned with 9090/TCP, whose workload now asks for 8080/TCP. It still
    // holds 9090, not 8080.
    let moved = publishing(9, "moved", 8080, Protocol::Tcp);
    add_replica(&mut s, &moved, 2, 2);
    s.replicas
        .get_mut(&cloudless_core::ids::ReplicaId(2))
        .unwrap()
        .host_ports = Some(vec![cloudless_core::workload::HostPort {
        port: 9090,
        protocol: Protocol::Tcp,
    }]);
    let r = sched.place(&s, &req(publishing(10, "api", 9090, Protocol::Tcp), 2));
    assert_eq!(chosen(&r), vec![1]);
    assert_eq!(
        r.unplaced[0].to_string(),
        "0/2 nodes fit: 2 host port 9090/TCP in use"
    );
}
