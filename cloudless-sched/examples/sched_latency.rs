//! Measures the default scheduler's decision latency (P50/P90/P99/max over a histogram of
//! single-replica decisions, every node scored, no sampling) at 1k, 5k and 10k nodes, and the
//! batch throughput (1,000 replicas on 5,000 nodes, one core).
//!
//! `cargo run --release -p cloudless-sched --example sched_latency [-- --iterations N]`

use std::time::{Duration, Instant};

use cloudless_core::scheduler::{PlacementRequest, Scheduler};
use cloudless_core::workload::{SpreadConstraint, TopologyKey, WorkloadTerm};
use cloudless_sched::WeightedScheduler;
use cloudless_sched::pipeline::synthetic::{SyntheticCluster, request, workload};

/// Latencies, sorted, with percentile lookups.
struct Histogram(Vec<Duration>);

impl Histogram {
    fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort();
        Self(samples)
    }

    fn pct(&self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    fn line(&self) -> String {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        format!(
            "n={:>5}  p50={:>7.1}µs  p90={:>7.1}µs  p99={:>7.1}µs  max={:>7.1}µs",
            self.0.len(),
            us(self.pct(50.0)),
            us(self.pct(90.0)),
            us(self.pct(99.0)),
            us(self.pct(100.0)),
        )
    }
}

fn latency(sched: &WeightedScheduler, nodes: usize, iterations: usize) -> Histogram {
    let snap = SyntheticCluster::new(nodes, 42).snapshot();
    let mut req = request(workload(1, "web", 250, 256), 1, 0);
    // Warm caches and the allocator before measuring.
    for seed in 0..20 {
        req.seed = seed;
        std::hint::black_box(sched.place(&snap, &req));
    }
    let samples = (0..iterations as u64)
        .map(|seed| {
            req.seed = seed;
            let t = Instant::now();
            let r = sched.place(&snap, &req);
            let d = t.elapsed();
            std::hint::black_box(r);
            d
        })
        .collect();
    Histogram::new(samples)
}

fn throughput(sched: &WeightedScheduler, req: &PlacementRequest, nodes: usize) -> (f64, usize) {
    let snap = SyntheticCluster::new(nodes, 42).snapshot();
    let mut rates = Vec::new();
    let mut placed = 0;
    for _ in 0..7 {
        let t = Instant::now();
        let r = sched.place(&snap, req);
        let secs = t.elapsed().as_secs_f64();
        placed = r.placements.len();
        rates.push(placed as f64 / secs);
    }
    rates.sort_by(f64::total_cmp);
    (rates[rates.len() / 2], placed)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let iterations = args
        .iter()
        .position(|a| a == "--iterations")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let sched = WeightedScheduler::default();

    println!("one replica, all nodes scored ({iterations} decisions per size):");
    for nodes in [1_000, 5_000, 10_000] {
        println!(
            "  {nodes:>6} nodes  {}",
            latency(&sched, nodes, iterations).line()
        );
    }

    println!("batch of 1000 replicas on 5000 nodes (median of 7 runs, one core):");
    let plain = request(workload(1, "web", 250, 256), 1_000, 7);
    let (rate, placed) = throughput(&sched, &plain, 5_000);
    println!("  binpack                          {rate:>9.0} placements/s ({placed} placed)");

    let mut w = workload(1, "web", 250, 256);
    w.spec.placement.spread = Some(SpreadConstraint {
        topology_key: TopologyKey::Zone,
        max_skew: 1,
    });
    let (rate, placed) = throughput(&sched, &request(w.clone(), 1_000, 7), 5_000);
    println!("  zone spread, max skew 1          {rate:>9.0} placements/s ({placed} placed)");

    w.spec
        .placement
        .workload_anti_affinity
        .required
        .push(WorkloadTerm {
            workload: "web".into(),
            topology_key: TopologyKey::Node,
        });
    let (rate, placed) = throughput(&sched, &request(w, 1_000, 7), 5_000);
    println!("  + node anti-affinity to itself   {rate:>9.0} placements/s ({placed} placed)");
}
