//! Side-by-side write benchmark: the Cloudless raft cluster against a 3-member etcd cluster, in
//! one run, with the same workload, and the ratio of the two.
//!
//! Cloudless side: exactly the `raft_write` setup — 3 in-process coordinators on `MemTransport`
//! (no injected delay), each with its durable data files in a temp dir on disk; small commands
//! (one `RecordEvent`, ~150 bytes) proposed on the leader.
//!
//! etcd side: 3 real `etcd` processes (etcd 3.4, the Debian package `etcd-server`) on loopback
//! with distinct free client/peer ports and `--data-dir` in a temp dir on the same disk; writes
//! are `Put`s of small keys (`bench/<n>`, 150-byte value) sent with the `etcd-client` crate over
//! one gRPC connection to the leader (as the raft side proposes on the leader). The processes
//! are killed and the temp dir removed at the end, also when the program fails.
//!
//! Both sides run 200 warm-up writes, then `RAFT_BENCH_WRITES` writes (default 3000) with 1
//! client, then the same number with 64 concurrent clients; the program prints writes/s and
//! P50/P99 latency of each and the ratio Cloudless / etcd.
//!
//! Run: `cargo bench -p cloudless-store --bench raft_vs_etcd` (needs `etcd` on `PATH`, or
//! `ETCD_BIN=/path/to/etcd`; it fails with a message saying so when etcd is missing).

#![allow(clippy::unwrap_used, clippy::expect_used)] // A measurement program: fail loudly.

mod common;

use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command as Process, Stdio};
use std::time::{Duration, Instant};

use cloudless_core::consensus::Consensus;
use cloudless_store::RaftConsensus;

use common::{event, percentile};

const WARMUP: u64 = 200;
const VALUE_BYTES: usize = 150;

/// One measured run.
#[derive(Clone, Copy)]
struct Figures {
    writes: usize,
    elapsed: Duration,
    p50: Duration,
    p99: Duration,
}

impl Figures {
    fn per_sec(&self) -> f64 {
        self.writes as f64 / self.elapsed.as_secs_f64()
    }

    fn print(&self, system: &str, clients: u64) {
        println!(
            "{system:<9} clients={clients:>3} writes={:>6} elapsed={:>7.3}s writes/s={:>8.0} p50={:>7.3}ms p99={:>7.3}ms",
            self.writes,
            self.elapsed.as_secs_f64(),
            self.per_sec(),
            self.p50.as_secs_f64() * 1e3,
            self.p99.as_secs_f64() * 1e3,
        );
    }
}

/// Runs `clients` concurrent writers, each calling `write(n)` `writes / clients` times with
/// distinct `n` starting at `base`, and measures each call.
async fn drive<W, F>(write: W, clients: u64, writes: u64, base: u64) -> Figures
where
    W: Fn(u64) -> F + Clone + Send + 'static,
    F: Future<Output = ()> + Send,
{
    let per_client = writes / clients;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let write = write.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(per_client as usize);
            for i in 0..per_client {
                let t = Instant::now();
                write(base + c * per_client + i).await;
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
    Figures {
        writes: all.len(),
        elapsed,
        p50: percentile(&all, 0.50),
        p99: percentile(&all, 0.99),
    }
}

// ---------------------------------------------------------------------------------------------
// Cloudless raft (same setup as benches/raft_write.rs)

async fn raft_run(leader: &RaftConsensus, clients: u64, writes: u64, base: u64) -> Figures {
    let leader = leader.clone();
    drive(
        move |n| {
            let leader = leader.clone();
            async move {
                leader.propose(event(n)).await.unwrap();
            }
        },
        clients,
        writes,
        base,
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// etcd

/// The 3 etcd processes; killed (and reaped) when dropped, so they never outlive the program's
/// normal end or a panic.
struct EtcdCluster {
    children: Vec<Child>,
    clients: Vec<String>,
    logs: Vec<PathBuf>,
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn etcd_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("ETCD_BIN") {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "ETCD_BIN={} is not a file; install etcd 3.4 (`apt-get install -y etcd-server`) \
             or point ETCD_BIN at an etcd binary",
            path.display()
        );
        return path;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!(
                "etcd not found on PATH: this benchmark needs a real etcd 3.4 to compare with; \
                 install it with `apt-get install -y etcd-server` or set ETCD_BIN=/path/to/etcd"
            )
        })
}

/// Six distinct free loopback ports (held open together so they differ, then released for
/// etcd to bind).
fn free_ports() -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..6)
        .map(|_| TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

fn start_etcd(bin: &Path, dir: &Path) -> EtcdCluster {
    let ports = free_ports();
    let client = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i]);
    let peer = |i: usize| format!("http://127.0.0.1:{}", ports[2 * i + 1]);
    let initial: Vec<String> = (0..3).map(|i| format!("e{i}={}", peer(i))).collect();
    let initial = initial.join(",");
    let mut cluster = EtcdCluster {
        children: Vec::new(),
        clients: (0..3).map(client).collect(),
        logs: Vec::new(),
    };
    for i in 0..3 {
        let log_path = dir.join(format!("e{i}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Process::new(bin)
            .arg("--name")
            .arg(format!("e{i}"))
            .arg("--data-dir")
            .arg(dir.join(format!("e{i}.etcd")))
            .arg("--listen-client-urls")
            .arg(client(i))
            .arg("--advertise-client-urls")
            .arg(client(i))
            .arg("--listen-peer-urls")
            .arg(peer(i))
            .arg("--initial-advertise-peer-urls")
            .arg(peer(i))
            .arg("--initial-cluster")
            .arg(&initial)
            .arg("--initial-cluster-state")
            .arg("new")
            .arg("--initial-cluster-token")
            .arg(format!("cloudless-bench-{}", std::process::id()))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        cluster.children.push(child);
        cluster.logs.push(log_path);
    }
    cluster
}

/// Waits until the cluster has a leader and returns a client connected to the leader only.
async fn etcd_leader(cluster: &mut EtcdCluster) -> etcd_client::Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (i, child) in cluster.children.iter_mut().enumerate() {
            if let Some(status) = child.try_wait().unwrap() {
                let log = std::fs::read_to_string(&cluster.logs[i]).unwrap_or_default();
                panic!("etcd member e{i} exited ({status}) during start; its log:\n{log}");
            }
        }
        for endpoint in &cluster.clients {
            let options =
                etcd_client::ConnectOptions::new().with_timeout(Duration::from_millis(500));
            let Ok(mut client) =
                etcd_client::Client::connect([endpoint.as_str()], Some(options)).await
            else {
                continue;
            };
            let Ok(status) = client.status().await else {
                continue;
            };
            let me = status.header().map(|h| h.member_id());
            if status.leader() != 0 && me == Some(status.leader()) {
                // A fresh connection without the per-request timeout for the measurement.
                return etcd_client::Client::connect([endpoint.as_str()], None)
                    .await
                    .unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "the etcd cluster elected no leader within 30 s; logs in {:?}",
            cluster.logs
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn etcd_run(client: &etcd_client::Client, clients: u64, writes: u64, base: u64) -> Figures {
    let kv = client.kv_client();
    drive(
        move |n| {
            let mut kv = kv.clone();
            async move {
                let mut value = format!("write {n} ").into_bytes();
                value.resize(VALUE_BYTES, b'x');
                kv.put(format!("bench/{n}"), value, None).await.unwrap();
            }
        },
        clients,
        writes,
        base,
    )
    .await
}

fn main() {
    let writes: u64 = std::env::var("RAFT_BENCH_WRITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let concurrent = writes.max(64) / 64 * 64;
    // Before anything else: fail at once, with the reason, if etcd is missing.
    let etcd_bin = etcd_binary();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        println!(
            "Cloudless raft: 3 coordinators, MemTransport, durable storage; etcd: 3 processes \
             ({}), loopback gRPC, one connection to the leader; data in {}; {writes} writes per \
             run, {WARMUP} warm-up writes each",
            etcd_bin.display(),
            dir.path().display()
        );

        let (members, leader) = common::start(&dir.path().join("raft")).await;
        raft_run(&leader, 1, WARMUP, 0).await;
        let raft_1 = raft_run(&leader, 1, writes, 1_000_000).await;
        raft_1.print("cloudless", 1);
        let raft_64 = raft_run(&leader, 64, concurrent, 2_000_000).await;
        raft_64.print("cloudless", 64);
        for m in &members {
            m.consensus.shutdown().await;
        }
        drop(members);

        let etcd_dir = dir.path().join("etcd");
        std::fs::create_dir_all(&etcd_dir).unwrap();
        let mut cluster = start_etcd(&etcd_bin, &etcd_dir);
        let client = etcd_leader(&mut cluster).await;
        etcd_run(&client, 1, WARMUP, 0).await;
        let etcd_1 = etcd_run(&client, 1, writes, 1_000_000).await;
        etcd_1.print("etcd", 1);
        let etcd_64 = etcd_run(&client, 64, concurrent, 2_000_000).await;
        etcd_64.print("etcd", 64);
        drop(client);
        drop(cluster);

        for (clients, raft, etcd) in [(1, raft_1, etcd_1), (64, raft_64, etcd_64)] {
            println!(
                "ratio     clients={clients:>3} cloudless/etcd writes/s={:.2} p50={:.2} p99={:.2}",
                raft.per_sec() / etcd.per_sec(),
                raft.p50.as_secs_f64() / etcd.p50.as_secs_f64(),
                raft.p99.as_secs_f64() / etcd.p99.as_secs_f64(),
            );
        }
        // `dir` (both clusters' data) is removed here, and on a panic by unwinding.
    });
}
