//! Criterion throughput benchmarks of the default scheduler (percentiles come from the
//! `sched_latency` measurement program: criterion reports none).
//!
//! `cargo bench -p cloudless-sched --bench pipeline`

use std::hint::black_box;

use cloudless_core::scheduler::Scheduler;
use cloudless_sched::WeightedScheduler;
use cloudless_sched::pipeline::synthetic::{SyntheticCluster, request, workload};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn one_replica(c: &mut Criterion) {
    let sched = WeightedScheduler::default();
    let mut group = c.benchmark_group("one_replica_all_nodes_scored");
    for nodes in [1_000, 5_000, 10_000] {
        let snap = SyntheticCluster::new(nodes, 42).snapshot();
        let req = request(workload(1, "web", 250, 256), 1, 7);
        group.throughput(Throughput::Elements(1));
        group.bench_with_input(BenchmarkId::from_parameter(nodes), &nodes, |b, _| {
            b.iter(|| black_box(sched.place(black_box(&snap), black_box(&req))))
        });
    }
    group.finish();
}

fn batch(c: &mut Criterion) {
    let sched = WeightedScheduler::default();
    let snap = SyntheticCluster::new(5_000, 42).snapshot();
    let req = request(workload(1, "web", 250, 256), 1_000, 7);
    let mut group = c.benchmark_group("batch_1000_replicas_5000_nodes");
    group.sample_size(20);
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("binpack", |b| {
        b.iter(|| black_box(sched.place(black_box(&snap), black_box(&req))))
    });
    group.finish();
}

criterion_group!(benches, one_replica, batch);
criterion_main!(benches);
