//! Shared pieces of the simulator scenario tests: seeds, the 3-zone cluster, manifests.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::collections::BTreeSet;
use std::time::Duration;

use cloudless::sim::{SimBuilder, SimCluster, SimError, StepView};
use cloudless_core::ids::{NodeId, WorkloadId};

/// The seeds a scenario runs: `CLOUDLESS_SIM_SEEDS` of them (default 20) starting at
/// `CLOUDLESS_SIM_SEED_BASE` (default 0). `scripts/sim-seeds.sh` sets both.
pub fn seeds() -> Vec<u64> {
    let read = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(default)
    };
    let n = read("CLOUDLESS_SIM_SEEDS", 20);
    let base = read("CLOUDLESS_SIM_SEED_BASE", 0);
    (base..base.saturating_add(n)).collect()
}

pub const ZONES: [&str; 3] = ["zone-a", "zone-b", "zone-c"];

/// 3 coordinators on raft + 6 agents, two per zone.
pub fn three_zones(seed: u64) -> SimBuilder {
    SimCluster::builder(seed)
        .coordinators(3)
        .agents_in_zones(6, &ZONES)
}

/// The 3-zone cluster, built, with every node Ready.
pub async fn start(seed: u64) -> Result<SimCluster, SimError> {
    let mut sim = three_zones(seed).build().await?;
    sim.run_until_nodes_ready(Duration::from_secs(20)).await?;
    Ok(sim)
}

/// A workload manifest: `replicas` copies spread over zones, 500m / 256Mi each.
pub fn web_manifest(name: &str, image: &str, replicas: u32, min_available: u32) -> String {
    format!(
        "apiVersion: cloudless.dev/v1
kind: Workload
metadata:
  name: {name}
spec:
  image: {image}
  replicas: {replicas}
  minAvailable: {min_available}
  resources:
    requests:
      cpu: 500m
      memory: 256Mi
  placement:
    strategy: spread
    spread:
      topologyKey: zone
      maxSkew: 1
  rollout:
    maxSurge: 1
"
    )
}

/// Creates the manifest's single workload.
pub async fn apply_one(sim: &mut SimCluster, manifest: &str) -> Result<WorkloadId, SimError> {
    let ids = sim.apply_manifests(manifest).await?;
    ids.first().copied().ok_or_else(|| SimError::Command {
        what: "apply".into(),
        reason: "the manifest held no workload".into(),
    })
}

/// Zones of the nodes running `workload` now.
pub fn zones_of(sim: &SimCluster, view: &StepView, workload: WorkloadId) -> Vec<String> {
    view.running_of(workload)
        .iter()
        .filter_map(|c| sim.agent_index(c.node))
        .filter_map(|i| sim.agent_spec(i).map(|s| s.zone.clone()))
        .collect()
}

/// True if `workload` has exactly `n` running containers, on distinct nodes, all of the
/// workload's current generation, and the ledger agrees they are Running.
pub fn settled(view: &StepView, workload: WorkloadId, n: usize) -> bool {
    let running = view.running_of(workload);
    let nodes: BTreeSet<NodeId> = running.iter().map(|c| c.node).collect();
    let Some(state) = &view.state else {
        return false;
    };
    let Some(w) = state.workloads.get(&workload) else {
        return false;
    };
    running.len() == n
        && nodes.len() == n
        && running.iter().all(|c| {
            state.replicas.get(&c.replica).is_some_and(|r| {
                r.generation == w.generation
                    && r.phase == cloudless_core::replica::ReplicaPhase::Running
                    && r.node == c.node
            })
        })
}

/// Runs `scenario` for every seed; failures name the seed.
pub async fn for_each_seed<F, Fut>(scenario: F)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<(), SimError>>,
{
    if std::env::var("CLOUDLESS_SIM_LOG").is_ok() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(std::env::var("CLOUDLESS_SIM_LOG").unwrap_or_default())
            .with_test_writer()
            .try_init();
    }
    for seed in seeds() {
        if let Err(e) = scenario(seed).await {
            panic!("seed {seed}: {e}");
        }
    }
}

pub const MINUTE: Duration = Duration::from_secs(60);
