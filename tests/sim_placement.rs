//! Simulator scenarios on 3 raft coordinators + 6 agents in 3 zones: spread placement, node
//! loss, container crash. Every scenario runs for 20 seeds (`CLOUDLESS_SIM_SEEDS`), with the
//! simulator's invariants checked after every step.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim_common;

use std::time::Duration;

use cloudless::sim::{Fault, SimError};
use cloudless_core::replica::ReplicaPhase;
use sim_common::*;

#[tokio::test(start_paused = true)]
async fn a_spread_workload_lands_one_replica_per_zone() {
    for_each_seed(|seed| async move {
        let mut sim = start(seed).await?;
        let web = apply_one(&mut sim, &web_manifest("web", "web:1", 3, 2)).await?;
        sim.run_until(Duration::from_secs(30), "3 web replicas running", |v| {
            settled(v, web, 3)
        })
        .await?;
        let mut zones = zones_of(&sim, sim.view(), web);
        zones.sort();
        assert_eq!(zones, ZONES, "seed {seed}: one replica per zone");
        // And it stays that way.
        let before = sim.view().running_of(web);
        sim.run_for(Duration::from_secs(20)).await?;
        assert_eq!(
            sim.view().running_of(web),
            before,
            "seed {seed}: placement is stable"
        );
        sim.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_lost_node_s_replica_runs_elsewhere() {
    for_each_seed(|seed| async move {
        let mut sim = start(seed).await?;
        let web = apply_one(&mut sim, &web_manifest("web", "web:1", 3, 2)).await?;
        sim.run_until(Duration::from_secs(30), "3 web replicas running", |v| {
            settled(v, web, 3)
        })
        .await?;
        // Power off the node of a seed-chosen replica.
        let running = sim.view().running_of(web);
        let pick = usize::try_from(sim.rng(1).below(3)).unwrap_or(0);
        let victim = running[pick];
        let agent = sim.agent_index(victim.node).expect("victim's agent");
        sim.apply(Fault::PowerOffAgent(agent)).await?;
        sim.run_until(
            Duration::from_secs(30),
            "a replacement running elsewhere",
            |v| settled(v, web, 3) && v.running_of(web).iter().all(|c| c.node != victim.node),
        )
        .await?;
        // The node comes back: after the settle window nothing runs twice (the invariant
        // checker's duplicate check) and the workload is whole.
        sim.apply(Fault::RestartAgent(agent)).await?;
        sim.run_for(Duration::from_secs(45)).await?;
        assert!(
            settled(sim.view(), web, 3),
            "seed {seed}: settled after the node returns:\n{}",
            sim.describe()
        );
        sim.shutdown().await;
        Ok::<(), SimError>(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_crashed_container_is_restarted_by_its_agent() {
    for_each_seed(|seed| async move {
        let mut sim = start(seed).await?;
        let web = apply_one(&mut sim, &web_manifest("web", "web:1", 3, 2)).await?;
        sim.run_until(Duration::from_secs(30), "3 web replicas running", |v| {
            settled(v, web, 3)
        })
        .await?;
        let running = sim.view().running_of(web);
        let pick = usize::try_from(sim.rng(2).below(3)).unwrap_or(0);
        let victim = running[pick];
        sim.kill_replica(victim.replica).await?;
        sim.run_until(
            Duration::from_secs(5),
            "the killed replica running again",
            |v| {
                v.running.iter().any(|c| {
                    c.replica == victim.replica
                        && c.node == victim.node
                        && c.attempt > victim.attempt
                })
            },
        )
        .await?;
        // The others were not touched, and the ledger counts the restart.
        for other in running.iter().filter(|c| c.replica != victim.replica) {
            assert!(
                sim.view().running.contains(other),
                "seed {seed}: {other:?} kept running"
            );
        }
        sim.run_until(Duration::from_secs(10), "the restart in the ledger", |v| {
            v.state.as_ref().is_some_and(|s| {
                s.replicas
                    .get(&victim.replica)
                    .is_some_and(|r| r.restarts >= 1 && r.phase == ReplicaPhase::Running)
            })
        })
        .await?;
        sim.shutdown().await;
        Ok(())
    })
    .await;
}
