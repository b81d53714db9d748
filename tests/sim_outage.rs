//! Coordinator-outage autonomy in the simulator: 3 raft coordinators + 6 agents in 3 zones,
//! all coordinators down for 15 minutes of virtual time. 20 seeds (`CLOUDLESS_SIM_SEEDS`),
//! invariants checked after every step.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim_common;

use std::time::Duration;

use cloudless::runtime::fake::Call;
use cloudless::sim::Fault;
use sim_common::*;

#[tokio::test(start_paused = true)]
async fn fifteen_minutes_without_coordinators_then_convergence_without_a_restart_storm() {
    for_each_seed(|seed| async move {
        // Default agent and coordinator settings: agents retry the control plane at most
        // every 5 s (plus jitter), inside the 10 s grace a new leader gives every node, so no
        // node is marked Down after the outage and nothing is replaced.
        let mut sim = three_zones(seed).build().await?;
        sim.run_until_nodes_ready(Duration::from_secs(20)).await?;
        let web = apply_one(&mut sim, &web_manifest("web", "web:1", 3, 2)).await?;
        let api = apply_one(&mut sim, &web_manifest("api", "api:1", 2, 1)).await?;
        sim.run_until(Duration::from_secs(30), "web and api running", |v| {
            settled(v, web, 3) && settled(v, api, 2)
        })
        .await?;
        let before = sim.view().running.clone();

        sim.apply(Fault::AllCoordinatorsDown).await?;
        // A seed-chosen minute of the outage: a container crashes.
        let minute = sim.rng(3).below(10) + 2;
        sim.run_for(Duration::from_secs(60 * minute)).await?;
        let victim = before[usize::try_from(sim.rng(4).below(5)).unwrap_or(0)];
        sim.kill_replica(victim.replica).await?;
        sim.run_for(MINUTE * 15 - Duration::from_secs(60 * minute))
            .await?;

        // Every replica still runs; the crashed one was restarted by its agent, alone.
        let during = sim.view().running.clone();
        assert_eq!(during.len(), before.len(), "seed {seed}: {during:?}");
        for c in &before {
            let now = during
                .iter()
                .find(|d| d.replica == c.replica)
                .unwrap_or_else(|| panic!("seed {seed}: {c:?} not running after the outage"));
            assert_eq!(now.node, c.node, "seed {seed}");
            if c.replica == victim.replica {
                assert!(
                    now.attempt > c.attempt,
                    "seed {seed}: the crash was restarted"
                );
            } else {
                assert_eq!(now.attempt, c.attempt, "seed {seed}: {c:?} untouched");
            }
        }

        // Coordinators back: converge with no container created or stopped.
        let calls_before: Vec<usize> = (0..sim.agent_count())
            .map(|i| sim.runtime(i).map_or(0, |r| r.calls().len()))
            .collect();
        sim.apply(Fault::AllCoordinatorsUp).await?;
        sim.run_until(
            Duration::from_secs(60),
            "a leader and the ledger caught up",
            |v| v.leader.is_some() && settled(v, web, 3) && settled(v, api, 2),
        )
        .await?;
        // Past the settle window: the invariant checker has seen no duplicates.
        sim.run_for(Duration::from_secs(45)).await?;
        assert_eq!(
            sim.view().running,
            during,
            "seed {seed}: nothing restarted or moved"
        );
        for i in 0..sim.agent_count() {
            let calls = sim.runtime(i).map(|r| r.calls()).unwrap_or_default();
            let new: Vec<&Call> = calls[calls_before[i]..]
                .iter()
                .filter(|c| matches!(c, Call::Create(_) | Call::Start(_) | Call::Stop(..)))
                .collect();
            assert!(
                new.is_empty(),
                "seed {seed}: agent {i} after reconnect: {new:?}"
            );
        }
        sim.shutdown().await;
        Ok(())
    })
    .await;
}
