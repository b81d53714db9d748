//! A highly available control plane in one process: three raft coordinators and three agents
//! (the `cloudless::sim` simulator, on tokio's paused clock, so the times printed are virtual).
//!
//! The example runs a 2-replica workload, crashes the leader coordinator, and shows that the
//! workload keeps running untouched, a new leader is elected, and the control plane accepts a
//! new workload and runs it. The crashed coordinator then rejoins as a follower. It fails if
//! any of that does not happen.
//!
//! `cargo run --features sim --example ha_cluster`

use std::time::Duration;

use anyhow::{Context, ensure};
use cloudless::core::ids::WorkloadId;
use cloudless::core::replica::ReplicaPhase;
use cloudless::core::workload::WorkloadSpec;
use cloudless::sim::{ConsensusKind, Fault, SimCluster, StepView};

/// True when `workload` has `n` running containers and the ledger says they are Running.
fn running(view: &StepView, workload: WorkloadId, n: usize) -> bool {
    let containers = view.running_of(workload);
    containers.len() == n
        && containers
            .iter()
            .all(|c| view.phase(c.replica) == Some(ReplicaPhase::Running))
}

fn at(sim: &SimCluster) -> String {
    format!("[t={:>6.1}s]", sim.elapsed().as_secs_f64())
}

fn spec(image: &str, replicas: u32) -> WorkloadSpec {
    let mut spec = WorkloadSpec::new(image);
    spec.replicas = replicas;
    spec
}

#[tokio::main(flavor = "current_thread", start_paused = true)]
async fn main() -> anyhow::Result<()> {
    let mut sim = SimCluster::builder(7)
        .coordinators(3)
        .consensus(ConsensusKind::Raft)
        .agents_in_zones(3, &["zone-a", "zone-b", "zone-c"])
        .build()
        .await?;
    sim.run_until_nodes_ready(Duration::from_secs(20)).await?;
    let first = sim.leader().context("no leader after start")?;
    println!(
        "{} 3 coordinators on raft, 3 agents Ready; leader is coordinator {first} (node {})",
        at(&sim),
        sim.coordinator_id(first).map_or(0, |n| n.0)
    );

    let web = sim
        .create_workload("default", "web", spec("docker.io/library/nginx:1.27", 2))
        .await?;
    sim.run_until(Duration::from_secs(30), "web running", |v| {
        running(v, web, 2)
    })
    .await?;
    let before = sim.view().running_of(web);
    println!(
        "{} workload web {web:?} running: {} replicas on nodes {:?}",
        at(&sim),
        before.len(),
        before.iter().map(|c| c.node.0).collect::<Vec<_>>()
    );

    sim.apply(Fault::CrashCoordinator(first)).await?;
    println!("{} crashed the leader (coordinator {first})", at(&sim));
    sim.run_until(Duration::from_secs(20), "a new leader", |v| {
        v.leader.is_some_and(|l| l != first)
    })
    .await?;
    let second = sim.leader().context("no leader after the crash")?;
    println!(
        "{} new leader elected: coordinator {second} (node {})",
        at(&sim),
        sim.coordinator_id(second).map_or(0, |n| n.0)
    );

    // The control plane answers again: a new workload is accepted and placed.
    let api = sim
        .create_workload("default", "api", spec("docker.io/library/redis:7", 1))
        .await?;
    println!("{} control plane accepted workload api {api:?}", at(&sim));
    sim.run_until(Duration::from_secs(30), "api running", |v| {
        running(v, api, 1)
    })
    .await?;
    println!("{} api is running", at(&sim));

    let after = sim.view().running_of(web);
    ensure!(
        after == before,
        "web's containers changed across the failover: {before:?} -> {after:?}"
    );
    println!(
        "{} web untouched by the failover: same {} containers, no restarts",
        at(&sim),
        after.len()
    );

    sim.apply(Fault::RestartCoordinator(first)).await?;
    sim.run_for(Duration::from_secs(10)).await?;
    let leader = sim.leader().context("no leader after the rejoin")?;
    ensure!(
        sim.view().running_of(web) == before,
        "web's containers changed after the rejoin"
    );
    println!(
        "{} coordinator {first} rejoined; leader is coordinator {leader}",
        at(&sim)
    );
    sim.shutdown().await;
    Ok(())
}
