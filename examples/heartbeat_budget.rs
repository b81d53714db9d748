//! Heartbeat handling cost on the leader: drives the coordinator's heartbeat path with
//! simulated nodes (no network, `MemConsensus`) and reports heartbeats handled per second and
//! the adaptive interval handed back.
//!
//! ```text
//! cargo run --release --example heartbeat_budget [-- <nodes> <rounds>]
//! ```
//!
//! Defaults: 5 000 nodes, 20 rounds. Every node first registers through its first heartbeat;
//! the measured rounds are steady-state heartbeats (unchanged inventory, so no commits), which
//! is what the leader handles continuously. One tokio thread.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cloudless::coordinator::{Coordinator, CoordinatorConfig, CoordinatorDeps};
use cloudless_core::clock::SystemClock;
use cloudless_core::ids::NodeId;
use cloudless_core::node::{NodeReport, Platform};
use cloudless_core::resources::Resources;
use cloudless_core::testing::consensus::MemConsensus;
use cloudless_sched::{SchedulerConfig, WeightedScheduler};

fn report(i: u64) -> NodeReport {
    let r = Resources {
        cpu_millis: 4000,
        memory_mib: 8192,
        storage_gib: 64,
        ..Resources::ZERO
    };
    NodeReport {
        platform: Platform::linux_amd64(),
        region: "eu".into(),
        zone: format!("z{}", i % 10),
        labels: BTreeMap::new(),
        capacity: r,
        allocatable: r,
        power: Default::default(),
        reliability: Default::default(),
    }
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let nodes: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(5_000);
    let rounds: u64 = args.next().map(|s| s.parse()).transpose()?.unwrap_or(20);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let config = CoordinatorConfig::default();
        let budget = config.heartbeat_budget_per_sec;
        let handle = Coordinator::start(
            config,
            CoordinatorDeps {
                node: NodeId(1),
                consensus: Arc::new(MemConsensus::new()),
                scheduler: Arc::new(WeightedScheduler::new(SchedulerConfig::default())?),
                clock: Arc::new(SystemClock),
            },
        )
        .await?;
        let cp = handle.control_plane();
        let reports: Vec<(NodeId, NodeReport)> =
            (0..nodes).map(|i| (NodeId(11 + i), report(i))).collect();
        let t = Instant::now();
        for (id, r) in &reports {
            cp.heartbeat(*id, r).await?;
        }
        let register = t.elapsed();
        // Let the detector commit the Joining -> Ready batch.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut interval = Duration::ZERO;
        let t = Instant::now();
        for _ in 0..rounds {
            for (id, r) in &reports {
                interval = cp.heartbeat(*id, r).await?.interval;
            }
        }
        let elapsed = t.elapsed();
        let handled = (nodes * rounds) as f64 / elapsed.as_secs_f64();
        let offered = nodes as f64 / interval.as_secs_f64();
        println!("nodes                       {nodes}");
        println!(
            "first heartbeats (register) {:.0} ms total",
            register.as_secs_f64() * 1e3
        );
        println!("steady heartbeats measured  {}", nodes * rounds);
        println!("heartbeats handled          {handled:.0} /s (one thread)");
        println!(
            "cost per heartbeat          {:.2} us",
            elapsed.as_secs_f64() * 1e6 / (nodes * rounds) as f64
        );
        println!("adaptive interval           {} ms", interval.as_millis());
        println!("offered load at interval    {offered:.0} /s (budget {budget} /s)");
        println!(
            "leader thread busy          {:.1} %",
            100.0 * offered / handled
        );
        handle.shutdown().await;
        Ok::<(), anyhow::Error>(())
    })
}
