//! Write benchmark: 3 in-process coordinators on MemTransport (no injected delay), each with a
//! durable redb file (fsync per append) in a temp dir on disk. Small commands (one event each)
//! are proposed on the leader by 1 client, then by 64 concurrent clients; the program prints
//! writes/s and commit latency P50/P99 for each.
//!
//! Run: `cargo bench -p cloudless-store --bench raft_write` (env `RAFT_BENCH_WRITES` = writes
//! per run, default 3000).

#![allow(clippy::unwrap_used, clippy::expect_used)] // A measurement program: fail loudly.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudless_core::consensus::Consensus;
use cloudless_core::event::{EventCategory, Severity};
use cloudless_core::ids::NodeId;
use cloudless_core::state::{Command, CommandEnvelope};
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::mem::{MemNetwork, addr_of};
use cloudless_net::{Router, RpcConfig, RpcEndpoint};
use cloudless_store::{RaftConsensus, RaftConsensusConfig, RaftService, Timeouts};

const CLUSTER: &str = "bench";

fn event(i: u64) -> CommandEnvelope {
    CommandEnvelope::new(
        1_700_000_000_000 + i,
        Command::RecordEvent {
            category: EventCategory::Workload,
            severity: Severity::Info,
            subject: "bench".into(),
            reason: "Write".into(),
            message: format!("write {i}"),
        },
    )
}

struct Member {
    consensus: RaftConsensus,
    _endpoint: RpcEndpoint,
}

async fn start(dir: &std::path::Path) -> (Vec<Member>, RaftConsensus) {
    let net = MemNetwork::new(1);
    let mut members = Vec::new();
    for id in 1..=3u64 {
        let identity = PeerIdentity {
            cluster: CLUSTER.into(),
            role: Role::Coordinator,
            node: NodeId(id),
        };
        let transport = Arc::new(net.endpoint(identity));
        let service = RaftService::new(CLUSTER);
        let mut router = Router::new();
        service.register(&mut router);
        let endpoint = RpcEndpoint::start(transport.clone(), router, RpcConfig::default()).unwrap();
        let config = RaftConsensusConfig::new(NodeId(id), CLUSTER, dir.join(format!("n{id}")))
            .with_timeouts(Timeouts::lan());
        let consensus = RaftConsensus::start(config, transport, endpoint.client(), &service)
            .await
            .unwrap();
        members.push(Member {
            consensus,
            _endpoint: endpoint,
        });
    }
    let voters: BTreeMap<NodeId, String> = (1..=3)
        .map(|id| (NodeId(id), addr_of(NodeId(id))))
        .collect();
    members[0].consensus.initialize(voters).await.unwrap();
    let raft = members[0].consensus.raft().clone();
    let m = raft
        .wait(Some(Duration::from_secs(30)))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .unwrap();
    let leader = m.current_leader.unwrap();
    let handle = members
        .iter()
        .find(|m| m.consensus.id() == NodeId(leader))
        .unwrap()
        .consensus
        .clone();
    (members, handle)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

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
