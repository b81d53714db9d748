//! Random faults in the simulator: 3 raft coordinators + 6 agents in 3 zones run two spread
//! workloads through a seeded schedule of every fault kind (agent crashes and power-offs,
//! coordinator crashes, all coordinators down, one node isolated, message drops and delays,
//! container kills), invariants checked after every step; then everything is healed and the
//! cluster must converge and stay converged past the settle window. 20 seeds
//! (`CLOUDLESS_SIM_SEEDS`).
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim_common;

use std::time::Duration;

use cloudless::sim::{Fault, FaultMix, FaultSchedule, InvariantConfig};
use sim_common::*;

#[tokio::test(start_paused = true)]
async fn random_faults_then_heal_converges_with_every_invariant_held() {
    for_each_seed(|seed| async move {
        // Shorter windows than the defaults (30 s settle, 60 s placement) keep 20 seeds fast;
        // they are still well past the 1.8 s failure detection and 10 s takeover grace.
        let invariants = InvariantConfig {
            settle: Duration::from_secs(15),
            placement_deadline: Duration::from_secs(20),
            ..InvariantConfig::default()
        };
        let mut sim = three_zones(seed)
            .invariants(Some(invariants))
            .build()
            .await?;
        sim.run_until_nodes_ready(Duration::from_secs(20)).await?;
        let web = apply_one(&mut sim, &web_manifest("web", "web:1", 3, 2)).await?;
        let api = apply_one(&mut sim, &web_manifest("api", "api:1", 2, 1)).await?;
        sim.run_until(Duration::from_secs(30), "web and api running", |v| {
            settled(v, web, 3) && settled(v, api, 2)
        })
        .await?;

        // Short, dense episodes: about five in 20 s of virtual time.
        let mix = FaultMix {
            mean_gap: Duration::from_secs(2),
            max_episode: Duration::from_secs(6),
            ..FaultMix::everything(
                sim.coordinator_count(),
                sim.agent_count(),
                Duration::from_secs(20),
            )
        };
        let schedule = FaultSchedule::random(seed, &mix);
        assert!(
            !schedule.faults.is_empty(),
            "seed {seed}: an empty schedule tests nothing"
        );
        sim.run_schedule(&schedule).await?;
        // Every episode ends with its repair; make sure nothing is left over.
        sim.apply(Fault::Heal).await?;
        assert!(
            !sim.fault_active(),
            "seed {seed}: a fault outlived the schedule: {:?}",
            sim.fault_log().last()
        );

        sim.run_until(
            Duration::from_secs(120),
            "convergence after the faults",
            |v| v.leader.is_some() && settled(v, web, 3) && settled(v, api, 2),
        )
        .await?;
        // Past the settle and placement windows, so the duplicate, over-commit and placement
        // checks run on the converged cluster too.
        sim.run_for(Duration::from_secs(22)).await?;
        let view = sim.view();
        assert!(
            settled(view, web, 3) && settled(view, api, 2),
            "seed {seed}: converged, then drifted:\n{}",
            sim.describe()
        );
        sim.shutdown().await;
        Ok(())
    })
    .await;
}
