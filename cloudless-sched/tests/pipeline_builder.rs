//! The researcher API: custom filters and scorers through the builder, and config validation.
#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod pipeline_support;

use cloudless_core::node::Node;
use cloudless_core::scheduler::{Filter, PlacementContext, Scheduler, Scorer};
use cloudless_sched::{SchedulerConfig, WeightedScheduler, Weights};
use pipeline_support::*;

/// Rejects nodes with an even id.
struct OddOnly;
impl Filter for OddOnly {
    fn name(&self) -> &str {
        "odd_only"
    }
    fn check(&self, _ctx: &PlacementContext<'_>, node: &Node) -> Result<(), String> {
        if node.id.get().is_multiple_of(2) {
            Err("even node".into())
        } else {
            Ok(())
        }
    }
}

/// Prefers high node ids.
struct HighId;
impl Scorer for HighId {
    fn name(&self) -> &str {
        "high_id"
    }
    fn score(&self, _ctx: &PlacementContext<'_>, node: &Node) -> f64 {
        node.id.get() as f64 / 10.0
    }
}

/// Returns garbage, which the pipeline must tame.
struct Garbage;
impl Scorer for Garbage {
    fn name(&self) -> &str {
        "garbage"
    }
    fn score(&self, _ctx: &PlacementContext<'_>, node: &Node) -> f64 {
        if node.id.get() == 1 { f64::NAN } else { 1e9 }
    }
}

fn cluster() -> cloudless_core::scheduler::ClusterSnapshot {
    snapshot((1..=6).map(|i| node(i, "r", "a", 1000, 1000)))
}

#[test]
fn a_custom_filter_rejects_and_is_explained() {
    let sched = WeightedScheduler::builder()
        .with_filter(OddOnly)
        .build()
        .unwrap();
    assert_eq!(sched.filter_names().last(), Some(&"odd_only"));
    let r = sched.place(&cluster(), &req(web(600, 1), 4));
    assert!(chosen(&r).iter().all(|n| n % 2 == 1), "{r:?}");
    assert_eq!(chosen(&r).len(), 3);
    assert_eq!(
        r.unplaced[0].to_string(),
        "0/6 nodes fit: 3 even node, 3 insufficient cpu"
    );
}

#[test]
fn a_custom_scorer_and_penalty_steer_placement() {
    let s = cluster();
    let up = WeightedScheduler::builder()
        .with_scorer("high_id", 10.0, HighId)
        .build()
        .unwrap();
    assert_eq!(chosen(&up.place(&s, &req(web(1, 1), 1))), vec![6]);
    let down = WeightedScheduler::builder()
        .with_penalty("high_id", 10.0, HighId)
        .build()
        .unwrap();
    assert_eq!(chosen(&down.place(&s, &req(web(1, 1), 1))), vec![1]);
    assert!(down.score_terms().contains(&("high_id", -10.0)));
}

#[test]
fn out_of_range_scores_are_clamped_and_nan_is_zero() {
    let sched = WeightedScheduler::builder()
        .with_config(SchedulerConfig {
            weights: Weights {
                locality: 0.0,
                reliability: 0.0,
                cost: 0.0,
                utilization: 0.0,
                network_penalty: 0.0,
                workload_affinity: 0.0,
                prefer_no_schedule: 0.0,
            },
            ..SchedulerConfig::default()
        })
        .with_scorer("garbage", 1.0, Garbage)
        .build()
        .unwrap();
    let r = sched.place(&cluster(), &req(web(1, 1), 1));
    assert_ne!(chosen(&r), vec![1]);
    assert_eq!(r.placements[0].score, 1.0);
}

#[test]
fn builder_errors_name_the_term() {
    let err = |b: cloudless_sched::WeightedSchedulerBuilder| b.build().unwrap_err().to_string();
    let e = err(WeightedScheduler::builder().with_scorer("energy", f64::NAN, HighId));
    assert!(e.contains("scorer `energy` weight is NaN"), "{e}");
    let e = err(WeightedScheduler::builder().with_scorer("energy", -1.0, HighId));
    assert!(e.contains("scorer `energy` weight is negative"), "{e}");
    let e = err(WeightedScheduler::builder().with_penalty("energy", f64::INFINITY, HighId));
    assert!(e.contains("scorer `energy` weight is infinite"), "{e}");
    let e = err(WeightedScheduler::builder().with_scorer("cost", 1.0, HighId));
    assert!(e.contains("scorer name `cost` is used twice"), "{e}");
    let mut config = SchedulerConfig::default();
    config.weights.locality = f64::NAN;
    let e = err(WeightedScheduler::builder().with_config(config));
    assert!(e.contains("weights.locality is NaN"), "{e}");
}
