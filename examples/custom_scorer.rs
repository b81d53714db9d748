//! A researcher's energy-aware scorer plugged into the default scheduler.
//!
//! The scorer prefers mains-powered nodes and avoids low batteries. The example generates a
//! seeded, heterogeneous cluster, places the same batch with and without the scorer, and prints
//! where the replicas went; it fails if the scorer has no effect.
//!
//! `cargo run --example custom_scorer`

use std::collections::BTreeMap;

use anyhow::ensure;
use cloudless::core::node::{Node, PowerSource};
use cloudless::core::scheduler::{
    ClusterSnapshot, PlacementContext, PlacementRequest, PlacementResult, Scheduler, Scorer,
    Volatility,
};
use cloudless::sched::WeightedScheduler;
use cloudless::sched::pipeline::synthetic::{SyntheticCluster, request, workload};

/// Energy awareness: 1 on mains; on battery, the charge level, discounted when discharging and
/// zero below 30 %.
struct EnergyScorer;

impl Scorer for EnergyScorer {
    fn name(&self) -> &str {
        "energy"
    }

    fn score(&self, _ctx: &PlacementContext<'_>, node: &Node) -> f64 {
        match node.report.power {
            PowerSource::Mains => 1.0,
            PowerSource::Battery { level_percent, .. } if level_percent < 30 => 0.0,
            PowerSource::Battery {
                level_percent,
                charging,
            } => {
                let level = f64::from(level_percent) / 100.0;
                if charging { 0.8 * level } else { 0.5 * level }
            }
        }
    }

    // Depends only on the node: the pipeline scores each node once per batch.
    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::Fixed
    }
}

/// How the chosen nodes are powered: mains, battery ≥ 30 %, battery < 30 %.
fn power_mix(
    snapshot: &ClusterSnapshot,
    result: &PlacementResult,
) -> BTreeMap<&'static str, usize> {
    let mut mix = BTreeMap::from([("mains", 0), ("battery >= 30%", 0), ("battery < 30%", 0)]);
    for p in &result.placements {
        let kind = match snapshot.nodes.get(&p.node).map(|n| n.report.power) {
            Some(PowerSource::Battery { level_percent, .. }) if level_percent < 30 => {
                "battery < 30%"
            }
            Some(PowerSource::Battery { .. }) => "battery >= 30%",
            _ => "mains",
        };
        *mix.entry(kind).or_default() += 1;
    }
    mix
}

fn main() -> anyhow::Result<()> {
    // An edge cluster: four devices in five run on battery, at assorted charge levels.
    let mut snapshot = SyntheticCluster::new(300, 11).snapshot();
    for (id, node) in snapshot.nodes.iter_mut() {
        let n = id.get();
        if n % 5 != 0 {
            node.report.power = PowerSource::Battery {
                level_percent: (n * 37 % 100) as u8,
                charging: n % 3 == 0,
            };
        }
    }
    let batch = request(workload(1, "inference", 1000, 1024), 40, 3);

    let plain = WeightedScheduler::default();
    let energy = WeightedScheduler::builder()
        .with_scorer("energy", 1.0, EnergyScorer)
        .build()?;
    println!("score terms with the plugin: {:?}", energy.score_terms());

    let before = plain.place(&snapshot, &batch);
    let after = energy.place(&snapshot, &batch);
    let (mix_before, mix_after) = (power_mix(&snapshot, &before), power_mix(&snapshot, &after));
    println!("40 replicas on 300 seeded edge nodes, by power source of the chosen node:");
    println!("  {:<16} {:>8} {:>8}", "", "default", "+energy");
    for (kind, n) in &mix_before {
        println!("  {kind:<16} {n:>8} {:>8}", mix_after[kind]);
    }
    println!("first placements (node, score):");
    for (b, a) in before.placements.iter().zip(&after.placements).take(5) {
        println!(
            "  {:>6} {:>6.3}    {:>6} {:>6.3}",
            b.node, b.score, a.node, a.score
        );
    }

    ensure!(
        before.placements.len() == 40 && after.placements.len() == 40,
        "every replica fits"
    );
    ensure!(
        mix_after["mains"] > mix_before["mains"]
            && mix_after["battery < 30%"] <= mix_before["battery < 30%"],
        "the energy scorer should move replicas to mains power and off low batteries"
    );
    Ok(())
}
