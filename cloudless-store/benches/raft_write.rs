//! Write benchmark: 3 in-process coordinators on MemTransport (no injected delay), each with a
//! durable redb file (fsync per append) in a temp dir on disk. Small commands (one event each)
//! are proposed on the leader by 1 client, then by 64 concurrent clients; the program prints
//! writes/s and commit latency P50/P99 for each.
//!
//! Run: `cargo bench -p cloudless-store --bench raft_write` (env `RAFT_BENCH_WRITES` = writes
//! per run, default 3000).

#![allow(clippy::unwrap_used, clippy::expect_used)] // A measurement program: fail loudly.

mod common;

use std::time::Instant;

use cloudless_core::consensus::Consensus;
use cloudless_store::RaftConsensus;

use common::{event, percentile, start};

async fn run(leader: &RaftConsensus, clients: u64, writes: u64, base: u64) {
    let per_client = writes / clients;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let leader = leader.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for i in 0..per_client {
                let t = Instant::now();
                leader
                    .propose(event(base + c * per_client + i))
                    .await
                    .unwrap();
                latencies.push(t.elapsed());
            }
            latencies
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    let n = all.len() as f64;
    println!(
        "clients={clients:>3} writes={:>6} elapsed={:>7.3}s writes/s={:>8.0} p50={:>7.3}ms p99={:>7.3}ms",
        all.len(),
        elapsed.as_secs_f64(),
        n / elapsed.as_secs_f64(),
        percentile(&all, 0.50).as_secs_f64() * 1e3,
        percentile(&all, 0.99).as_secs_f64() * 1e3,
    );
}

fn main() {
    let writes: u64 = std::env::var("RAFT_BENCH_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let (members, leader) = start(dir.path()).await;
        // Warm-up: connections, hellos, first appends.
        run(&leader, 1, 200, 0).await;
        println!("3 coordinators, MemTransport, redb fsync per append, {writes} writes per run");
        run(&leader, 1, writes, 1_000_000).await;
        run(&leader, 64, writes.max(64) / 64 * 64, 2_000_000).await;
        for m in &members {
            m.consensus.shutdown().await;
        }
    });
}
