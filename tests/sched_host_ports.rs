//! Host ports as a scheduling constraint, end to end in the simulator: one coordinator and two
//! agents; three replicas publishing hostPort 8080/TCP run two (one per node) and the workload
//! reports `Unschedulable` naming the port; a second workload on the same port runs nowhere,
//! one on 8080/UDP runs next to the first. Seeds as in the other simulator scenarios
//! (`CLOUDLESS_SIM_SEEDS`), invariants checked after every step.
#![cfg(feature = "sim")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod sim_common;

use std::collections::BTreeSet;
use std::time::Duration;

use cloudless::sim::{SimCluster, SimError, StepView};
use cloudless_core::ids::{NodeId, WorkloadId};
use cloudless_core::workload::ConditionKind;
use sim_common::*;

fn manifest(name: &str, replicas: u32, host_port: u16, protocol: &str) -> String {
    format!(
        "apiVersion: cloudless.dev/v1
kind: Workload
metadata:
  name: {name}
spec:
  image: {name}:1
  replicas: {replicas}
  resources:
    requests:
      cpu: 100m
      memory: 64Mi
  ports:
    - name: http
      containerPort: 80
      protocol: {protocol}
      hostPort: {host_port}
"
    )
}

/// The workload's `Unschedulable` message while the condition holds.
fn unschedulable(view: &StepView, workload: WorkloadId) -> Option<String> {
    let w = view.state.as_ref()?.workloads.get(&workload)?;
    w.status
        .conditions
        .iter()
        .find(|c| c.kind == ConditionKind::Unschedulable && c.status)
        .map(|c| c.message.clone())
}

fn nodes_of(view: &StepView, workload: WorkloadId) -> BTreeSet<NodeId> {
    view.running_of(workload).iter().map(|c| c.node).collect()
}

async fn start_two_agents(seed: u64) -> Result<SimCluster, SimError> {
    let mut sim = SimCluster::builder(seed)
        .coordinators(1)
        .agents_in_zones(2, &["zone-a", "zone-b"])
        .build()
        .await?;
    sim.run_until_nodes_ready(Duration::from_secs(20)).await?;
    Ok(sim)
}

#[tokio::test(start_paused = true)]
async fn three_host_port_replicas_on_two_agents_run_two_and_explain_the_third() {
    for_each_seed(|seed| async move {
        let mut sim = start_two_agents(seed).await?;
        let web = apply_one(&mut sim, &manifest("web", 3, 8080, "tcp")).await?;
        sim.run_until(
            Duration::from_secs(30),
            "2 web replicas running and the third explained",
            |v| {
                v.running_of(web).len() == 2
                    && unschedulable(v, web)
                        .is_some_and(|m| m.contains("0/2 nodes fit: 2 host port 8080/TCP in use"))
            },
        )
        .await?;
        assert_eq!(
            nodes_of(sim.view(), web).len(),
            2,
            "seed {seed}: one per node"
        );

        // Same port and protocol: no node is left for another workload.
        let proxy = apply_one(&mut sim, &manifest("proxy", 1, 8080, "tcp")).await?;
        // Another protocol: fits next to web, one replica per node.
        let stats = apply_one(&mut sim, &manifest("stats", 2, 8080, "udp")).await?;
        sim.run_until(
            Duration::from_secs(30),
            "stats running on both nodes and proxy explained",
            |v| {
                nodes_of(v, stats).len() == 2
                    && unschedulable(v, proxy)
                        .is_some_and(|m| m.contains("2 host port 8080/TCP in use"))
            },
        )
        .await?;

        // And it stays that way, with at most one holder of 8080/TCP per node in the ledger.
        sim.run_for(Duration::from_secs(20)).await?;
        let v = sim.view();
        assert_eq!(v.running_of(web).len(), 2, "seed {seed}");
        assert!(v.running_of(proxy).is_empty(), "seed {seed}");
        assert_eq!(nodes_of(v, stats).len(), 2, "seed {seed}");
        let state = v.state.as_ref().expect("state observed");
        for node in state.nodes.keys() {
            let tcp = state
                .replicas_on(*node)
                .filter(|r| r.holds_reservation() && (r.workload == web || r.workload == proxy))
                .count();
            assert!(tcp <= 1, "seed {seed}: {tcp} holders of 8080/TCP on {node}");
        }
        sim.shutdown().await;
        Ok(())
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_rollout_of_a_host_port_workload_on_as_many_nodes_as_replicas_completes() {
    // No node is free for a surge replica: the rollout must retire an old replica first
    // (minAvailable 1 of 2 allows it) and place the new one on the node it freed.
    for_each_seed(|seed| async move {
        let mut sim = start_two_agents(seed).await?;
        let web = apply_one(&mut sim, &manifest("web", 2, 8080, "tcp")).await?;
        sim.run_until(Duration::from_secs(30), "2 web replicas running", |v| {
            settled(v, web, 2)
        })
        .await?;
        let mut spec = sim
            .view()
            .state
            .as_ref()
            .and_then(|s| s.workloads.get(&web))
            .map(|w| w.spec.clone())
            .expect("web in the state");
        spec.image = "web:2".into();
        sim.update_workload(web, spec).await?;
        sim.run_until(Duration::from_secs(120), "2 web:2 replicas running", |v| {
            settled(v, web, 2)
                && v.state
                    .as_ref()
                    .is_some_and(|s| s.workloads.get(&web).is_some_and(|w| w.generation.0 == 2))
        })
        .await?;
        assert_eq!(nodes_of(sim.view(), web).len(), 2, "seed {seed}");
        sim.shutdown().await;
        Ok(())
    })
    .await;
}
