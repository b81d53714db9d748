//! Criterion throughput benchmarks of the default scheduler (percentiles come from the
//! `sched_latency` measurement program: criterion reports none).
//!
//! `cargo bench -p cloudless-sched --bench pipeline`

use std::hint::black_box;

use cloudless_core::ids::{Generation, NodeId, ReplicaId};
use cloudless_core::replica::{Replica, ReplicaPhase};
use cloudless_core::resources::Resources;
use cloudless_core::scheduler::Scheduler;
use cloudless_core::workload::{ContainerPort, Protocol, Workload};
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

/// 5,000 nodes holding 20,000 replicas of 40 workloads (4 per node), every tenth workload
/// publishing hostPort 8080/TCP: the cost of a request that publishes that port (the index is
/// built from the ledger once per request) next to one that publishes none.
fn host_port(c: &mut Criterion) {
    let sched = WeightedScheduler::default();
    let mut snap = SyntheticCluster::new(5_000, 42).snapshot();
    let nodes: Vec<NodeId> = snap.nodes.keys().copied().collect();
    let workloads: Vec<Workload> = (0..40u64)
        .map(|i| {
            let mut w = workload(100 + i, &format!("w{i}"), 0, 0);
            if i % 10 == 0 {
                w.spec.ports.push(http_8080());
            }
            w
        })
        .collect();
    for (i, node) in nodes.iter().cycle().take(20_000).enumerate() {
        let w = &workloads[i % workloads.len()];
        let id = ReplicaId(i as u64 + 1);
        snap.workloads.insert(w.id, w.clone());
        snap.replicas.insert(
            id,
            Replica {
                id,
                workload: w.id,
                generation: Generation(1),
                node: *node,
                resources: Resources::ZERO,
                phase: ReplicaPhase::Running,
                ready: true,
                restarts: 0,
                address: None,
                assigned_at_ms: 0,
                message: String::new(),
                host_ports: None,
            },
        );
    }
    let plain = workload(1, "web", 250, 256);
    let mut published = plain.clone();
    published.spec.ports.push(http_8080());
    let mut group = c.benchmark_group("host_port_5000_nodes_20000_replicas");
    group.throughput(Throughput::Elements(1));
    for (name, w) in [
        ("one_replica_no_host_port", &plain),
        ("one_replica_host_port", &published),
    ] {
        let req = request(w.clone(), 1, 7);
        group.bench_function(name, |b| {
            b.iter(|| black_box(sched.place(black_box(&snap), black_box(&req))))
        });
    }
    group.sample_size(20);
    group.throughput(Throughput::Elements(1_000));
    let req = request(published, 1_000, 7);
    group.bench_function("batch_1000_host_port", |b| {
        b.iter(|| black_box(sched.place(black_box(&snap), black_box(&req))))
    });
    group.finish();
}

fn http_8080() -> ContainerPort {
    ContainerPort {
        name: "http".into(),
        container_port: 80,
        protocol: Protocol::Tcp,
        host_port: Some(8080),
    }
}

criterion_group!(benches, one_replica, batch, host_port);
criterion_main!(benches);
