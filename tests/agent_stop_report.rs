//! A replica the coordinator stops (scale down) is done (Succeeded) as soon as its agent has
//! removed the container: the agent reports it gone right away instead of the coordinator
//! waiting out its stop grace (12 s by default). Paused clock, `FakeRuntime`.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod fabric_common;

use std::time::Duration;

use cloudless::coordinator::CoordinatorConfig;
use cloudless::fabric::Fabric;
use cloudless::runtime::FakeRuntime;
use cloudless_core::clock::{Clock, SystemClock};
use cloudless_core::consensus::Consensus;
use cloudless_core::ids::NodeId;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::runtime::Runtime;
use cloudless_core::state::{Command, CommandEnvelope};
use cloudless_core::testing::consensus::MemConsensus;
use fabric_common::{agent_config, create_workload, probe, wait_running};
use tokio::time::Instant;

#[tokio::test(start_paused = true)]
async fn a_scaled_down_replica_is_done_within_two_seconds_of_the_scale() {
    let dir = tempfile::tempdir().unwrap();
    let consensus = MemConsensus::new();
    let runtime = FakeRuntime::new();
    let config = CoordinatorConfig::default();
    assert!(
        config.stop_grace >= Duration::from_secs(5),
        "the test tells the prompt report from the stop grace"
    );
    let fabric = Fabric::builder()
        .node(NodeId(1))
        .coordinator(config)
        .consensus(consensus.clone())
        .agent(agent_config(dir.path()))
        .runtime(runtime.clone())
        .resources(probe())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    let w = create_workload(&consensus, "web").await;
    wait_running(&consensus, w).await;
    assert_eq!(runtime.list().await.unwrap().len(), 1);

    consensus
        .propose(CommandEnvelope::new(
            SystemClock.now_ms(),
            Command::ScaleWorkload {
                workload: w,
                replicas: 0,
            },
        ))
        .await
        .unwrap();
    let started = Instant::now();
    loop {
        let state = consensus.state().await.unwrap();
        let live: Vec<_> = state
            .replicas
            .values()
            .filter(|r| r.workload == w && !r.phase.is_terminal())
            .collect();
        if live.is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "still in the ledger after {:?}: {live:?}",
            started.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    assert!(
        runtime.list().await.unwrap().is_empty(),
        "the container is gone before the replica is reported gone"
    );
    let state = consensus.state().await.unwrap();
    assert!(
        state
            .replicas
            .values()
            .filter(|r| r.workload == w)
            .all(|r| r.phase == ReplicaPhase::Succeeded),
        "{:?}",
        state.replicas
    );
    println!("scale-down to Succeeded: {took:?} (virtual)");
    fabric.shutdown().await;
}
