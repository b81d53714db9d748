//! Simulator scenarios on 3 raft coordinators + 6 agents in 3 zones: a rolling update that
//! never goes below `minAvailable`, and the loss of the leader coordinator. 20 seeds each
//! (`CLOUDLESS_SIM_SEEDS`), invariants checked after every step.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim_common;

use std::collections::BTreeSet;
use std::time::Duration;

use cloudless::sim::{Fault, SimError};
use cloudless_core::manifest::{Format, ManifestSpec, parse_str};
use sim_common::*;

#[tokio::test(start_paused = true)]
async fn a_rolling_update_never_goes_below_min_available() {
    for_each_seed(|seed| async move {
        let mut sim = start(seed).await?;
        let web = apply_one(&mut sim, &web_manifest("web", "web:1", 3, 2)).await?;
        sim.run_until(Duration::from_secs(30), "3 web replicas running", |v| {
            settled(v, web, 3)
        })
        .await?;
        let old: BTreeSet<_> = sim
            .view()
            .running_of(web)
            .iter()
            .map(|c| c.replica)
            .collect();
        let new_spec = match parse_str(&web_manifest("web", "web:2", 3, 2), Format::Yaml)
            .expect("manifest")
            .remove(0)
            .spec
        {
            ManifestSpec::Workload(spec) => spec,
            other => panic!("not a workload: {other:?}"),
        };
        sim.update_workload(web, new_spec).await?;
        // Step by step: available (running and reported ready) never below 2. The simulator's
        // MinAvailable invariant checks the same after every step; this is the explicit form.
        let mut lowest = u32::MAX;
        let began = sim.elapsed();
        loop {
            let view = sim.view();
            let available = view
                .running_of(web)
                .iter()
                .filter(|c| view.ready.contains(&c.replica))
                .count();
            lowest = lowest.min(u32::try_from(available).unwrap_or(0));
            let done = settled(view, web, 3)
                && view
                    .running_of(web)
                    .iter()
                    .all(|c| !old.contains(&c.replica));
            if done {
                break;
            }
            if sim.elapsed() - began > Duration::from_secs(120) {
                return Err(SimError::Timeout {
                    what: "the rollout to finish".into(),
                    waited: Duration::from_secs(120),
                    seed,
                    step: sim.steps(),
                });
            }
            sim.step().await?;
        }
        assert!(lowest >= 2, "seed {seed}: availability dipped to {lowest}");
        sim.run_for(Duration::from_secs(40)).await?;
        sim.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn losing_the_leader_elects_another_and_restarts_nothing() {
    for_each_seed(|seed| async move {
        let mut sim = start(seed).await?;
        let web = apply_one(&mut sim, &web_manifest("web", "web:1", 3, 2)).await?;
        sim.run_until(Duration::from_secs(30), "3 web replicas running", |v| {
            settled(v, web, 3)
        })
        .await?;
        let before = sim.view().running.clone();
        let old = sim.leader().expect("a leader");
        sim.apply(Fault::CrashCoordinator(old)).await?;
        sim.run_until(Duration::from_secs(20), "a new leader", |v| {
            v.leader.is_some_and(|l| l != old)
        })
        .await?;
        sim.run_for(Duration::from_secs(20)).await?;
        assert_eq!(
            sim.view().running,
            before,
            "seed {seed}: no replica restarted or moved"
        );
        // The old leader rejoins as a follower; still nothing moves.
        sim.apply(Fault::RestartCoordinator(old)).await?;
        sim.run_for(Duration::from_secs(40)).await?;
        assert_eq!(
            sim.view().running,
            before,
            "seed {seed}: stable after the rejoin"
        );
        sim.shutdown().await;
        Ok(())
    })
    .await;
}
