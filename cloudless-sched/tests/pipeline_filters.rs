//! One focused test per built-in filter, through the scheduler: the right nodes are rejected,
//! under the right reason.
#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod pipeline_support;

use cloudless_core::node::{Liveness, Platform, Taint, TaintEffect};
use cloudless_core::scheduler::Scheduler;
use cloudless_core::workload::{
    MatchOperator, NodeMatch, Toleration, TolerationOperator, TopologyKey, WorkloadTerm, ZONE_KEY,
};
use cloudless_sched::WeightedScheduler;
use pipeline_support::*;

fn explain(
    s: &cloudless_core::scheduler::ClusterSnapshot,
    w: cloudless_core::workload::Workload,
) -> String {
    let r = WeightedScheduler::default().place(s, &req(w, 1));
    assert!(r.placements.is_empty(), "unexpected placement {r:?}");
    r.unplaced[0].to_string()
}

#[test]
fn resource_fit_counts_existing_reservations_and_names_the_dimension() {
    let mut s = snapshot([node(1, "r", "a", 1000, 1024), node(2, "r", "a", 4000, 512)]);
    let other = cloudless_sched::pipeline::synthetic::workload(9, "db", 600, 0);
    add_replica(&mut s, &other, 1, 1);
    // Node 1 has 400m left, node 2 too little memory.
    assert_eq!(
        explain(&s, web(500, 600)),
        "0/2 nodes fit: 1 insufficient cpu, 1 insufficient memory"
    );
    let r = WeightedScheduler::default().place(&s, &req(web(400, 600), 1));
    assert_eq!(chosen(&r), vec![1]);
}

#[test]
fn resource_fit_checks_gpus_storage_class_and_egress() {
    let mut n = node(1, "r", "a", 1000, 1000);
    n.report.allocatable.storage_gib = 10;
    let s = snapshot([n]);
    let mut w = web(0, 0);
    w.spec.resources.requests.gpus = 1;
    assert_eq!(explain(&s, w), "0/1 nodes fit: 1 insufficient gpus");
    let mut w = web(0, 0);
    w.spec.resources.requests.storage = cloudless_core::quantity::Storage(1);
    w.spec.resources.requests.storage_iops = cloudless_core::resources::IopsClass::High;
    assert_eq!(
        explain(&s, w),
        "0/1 nodes fit: 1 insufficient storage iops class"
    );
}

#[test]
fn liveness_admits_only_ready_schedulable_not_excluded_nodes() {
    let mut down = node(1, "r", "a", 1000, 1000);
    down.liveness = Liveness::Down;
    let mut cordoned = node(2, "r", "a", 1000, 1000);
    cordoned.schedulability.cordoned = true;
    let mut draining = node(3, "r", "a", 1000, 1000);
    draining.schedulability.draining = true;
    let mut joining = node(4, "r", "a", 1000, 1000);
    joining.liveness = Liveness::Joining;
    let excluded = node(5, "r", "a", 1000, 1000);
    let s = snapshot([down, cordoned, draining, joining, excluded]);
    let mut request = req(web(1, 1), 1);
    request.exclude.push(cloudless_core::ids::NodeId(5));
    let r = WeightedScheduler::default().place(&s, &request);
    assert_eq!(
        r.unplaced[0].to_string(),
        "0/5 nodes fit: 1 node cordoned, 1 node down, 1 node draining, 1 node excluded, 1 node joining"
    );
}

#[test]
fn platform_must_run_the_image() {
    let mut arm = node(1, "r", "a", 1000, 1000);
    arm.report.platform.architecture = "arm64".into();
    let s = snapshot([arm, node(2, "r", "a", 1000, 1000)]);
    let mut w = web(1, 1);
    w.spec.platform = Some(Platform::linux_amd64());
    let r = WeightedScheduler::default().place(&s, &req(w.clone(), 2));
    assert_eq!(chosen(&r), vec![2, 2]);
    w.spec.platform.as_mut().unwrap().architecture = "riscv64".into();
    assert_eq!(explain(&s, w), "0/2 nodes fit: 2 platform mismatch");
}

#[test]
fn taints_are_hard_unless_tolerated_and_prefer_no_schedule_is_a_penalty() {
    let taint = |key: &str, effect| Taint {
        key: key.into(),
        value: "x".into(),
        effect,
    };
    let mut hard = node(1, "r", "a", 1000, 1000);
    hard.taints.push(taint("gpu", TaintEffect::NoSchedule));
    let mut exec = node(2, "r", "a", 1000, 1000);
    exec.taints.push(taint("gpu", TaintEffect::NoExecute));
    let mut soft = node(3, "r", "a", 1000, 1000);
    soft.taints
        .push(taint("maintenance", TaintEffect::PreferNoSchedule));
    // Give the softly tainted node the best base score: it still loses to a plain node.
    soft.report.reliability.uptime_secs = 10_000_000;
    let plain = node(4, "r", "a", 1000, 1000);
    let s = snapshot([hard.clone(), exec.clone(), soft.clone(), plain]);
    let r = WeightedScheduler::default().place(&s, &req(web(1000, 1), 1));
    assert_eq!(chosen(&r), vec![4]);

    // When only the softly tainted node is left, it is used.
    let s2 = snapshot([hard.clone(), exec.clone(), soft]);
    let r = WeightedScheduler::default().place(&s2, &req(web(1000, 1), 1));
    assert_eq!(chosen(&r), vec![3]);

    let s3 = snapshot([hard, exec]);
    assert_eq!(
        explain(&s3, web(1, 1)),
        "0/2 nodes fit: 2 untolerated taint"
    );
    let mut w = web(1, 1);
    w.spec.placement.tolerations.push(Toleration {
        key: "gpu".into(),
        operator: TolerationOperator::Exists,
        value: String::new(),
        effect: None,
    });
    let r = WeightedScheduler::default().place(&s3, &req(w, 2));
    assert_eq!(r.placements.len(), 2);
}

#[test]
fn node_selector_requires_every_label() {
    let mut a = node(1, "r", "a", 1000, 1000);
    a.report.labels.insert("disk".into(), "ssd".into());
    let mut b = node(2, "r", "a", 1000, 1000);
    b.report.labels.insert("disk".into(), "hdd".into());
    let s = snapshot([a, b, node(3, "r", "a", 1000, 1000)]);
    let mut w = web(1, 1);
    w.spec
        .placement
        .node_selector
        .insert("disk".into(), "ssd".into());
    let r = WeightedScheduler::default().place(&s, &req(w.clone(), 3));
    assert_eq!(chosen(&r), vec![1, 1, 1]);
    w.spec
        .placement
        .node_selector
        .insert("gpu".into(), "yes".into());
    assert_eq!(explain(&s, w), "0/3 nodes fit: 3 node selector mismatch");
}

#[test]
fn required_node_affinity_names_the_domain() {
    let s = snapshot([
        node(1, "eu", "eu-1", 1000, 1000),
        node(2, "eu", "eu-2", 1000, 1000),
        node(3, "us", "us-1", 1000, 1000),
    ]);
    let mut w = web(1, 1);
    w.spec.placement.node_affinity.required.push(NodeMatch {
        key: ZONE_KEY.into(),
        operator: MatchOperator::In,
        values: vec!["eu-2".into()],
    });
    let r = WeightedScheduler::default().place(&s, &req(w.clone(), 2));
    assert_eq!(chosen(&r), vec![2, 2]);
    w.spec.placement.node_affinity.required[0].values = vec!["mars-1".into()];
    assert_eq!(explain(&s, w), "0/3 nodes fit: 3 zone not allowed");
}

#[test]
fn anti_affinity_keeps_batch_replicas_and_other_workloads_apart() {
    let s = snapshot([
        node(1, "r", "a", 4000, 4000),
        node(2, "r", "a", 4000, 4000),
        node(3, "r", "b", 4000, 4000),
    ]);
    let mut w = web(1, 1);
    w.spec
        .placement
        .workload_anti_affinity
        .required
        .push(WorkloadTerm {
            workload: "web".into(),
            topology_key: TopologyKey::Zone,
        });
    let r = WeightedScheduler::default().place(&s, &req(w.clone(), 3));
    assert_eq!(r.placements.len(), 2, "{r:?}");
    let zones: std::collections::BTreeSet<_> = chosen(&r)
        .iter()
        .map(|n| {
            s.nodes[&cloudless_core::ids::NodeId(*n)]
                .report
                .zone
                .clone()
        })
        .collect();
    assert_eq!(zones.len(), 2);
    assert_eq!(
        r.unplaced[0].to_string(),
        "0/3 nodes fit: 3 workload anti-affinity"
    );

    // Against another workload on node level.
    let mut s2 = s.clone();
    let db = cloudless_sched::pipeline::synthetic::workload(2, "db", 1, 1);
    add_replica(&mut s2, &db, 1, 1);
    let mut w2 = web(1, 1);
    w2.spec
        .placement
        .workload_anti_affinity
        .required
        .push(WorkloadTerm {
            workload: "db".into(),
            topology_key: TopologyKey::Node,
        });
    let r = WeightedScheduler::default().place(&s2, &req(w2, 6));
    assert!(!chosen(&r).contains(&1), "{r:?}");
    assert_eq!(r.placements.len(), 6);
}

#[test]
fn required_affinity_follows_the_other_workload_and_bootstraps_itself() {
    let mut s = snapshot([
        node(1, "eu", "eu-1", 4000, 4000),
        node(2, "us", "us-1", 4000, 4000),
        node(3, "us", "us-2", 4000, 4000),
    ]);
    let db = cloudless_sched::pipeline::synthetic::workload(2, "db", 1, 1);
    add_replica(&mut s, &db, 1, 2);
    let mut w = web(1, 1);
    w.spec
        .placement
        .workload_affinity
        .required
        .push(WorkloadTerm {
            workload: "db".into(),
            topology_key: TopologyKey::Region,
        });
    let r = WeightedScheduler::default().place(&s, &req(w, 4));
    assert!(chosen(&r).iter().all(|n| *n == 2 || *n == 3), "{r:?}");

    // Self-affinity: the first replica goes anywhere, the rest follow it.
    let mut w = web(1, 1);
    w.spec
        .placement
        .workload_affinity
        .required
        .push(WorkloadTerm {
            workload: "web".into(),
            topology_key: TopologyKey::Zone,
        });
    let r = WeightedScheduler::default().place(&s, &req(w, 4));
    let first = chosen(&r)[0];
    assert!(chosen(&r).iter().all(|n| *n == first), "{r:?}");

    let mut w = web(1, 1);
    w.spec
        .placement
        .workload_affinity
        .required
        .push(WorkloadTerm {
            workload: "cache".into(),
            topology_key: TopologyKey::Zone,
        });
    assert_eq!(
        explain(&s, w),
        "0/3 nodes fit: 3 workload affinity not satisfied"
    );
}
