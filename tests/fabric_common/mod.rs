//! Shared by the Fabric test files: agent settings for tests, creating a workload, waiting.

#![allow(dead_code)] // Each test file uses a different subset.
#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

use std::collections::BTreeMap;
use std::time::Duration;

use cloudless::agent::{AgentConfig, FixedResourceProbe, HostResources};
use cloudless_core::clock::{Clock, SystemClock};
use cloudless_core::consensus::Consensus;
use cloudless_core::ids::WorkloadId;
use cloudless_core::node::PowerSource;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::state::{Command, CommandEnvelope, CommandResult};
use cloudless_core::workload::WorkloadSpec;

pub(crate) fn agent_config(dir: &std::path::Path) -> AgentConfig {
    let mut c = AgentConfig::new(dir);
    c.heartbeat_interval = Duration::from_millis(200);
    c.zone = "home-1".into();
    c
}

pub(crate) fn probe() -> FixedResourceProbe {
    FixedResourceProbe(HostResources {
        cpu_millis: 4000,
        memory_mib: 8192,
        storage_gib: 64,
        power: Some(PowerSource::Mains),
    })
}

/// Creates a one-replica workload through consensus (as an `apply` would).
pub(crate) async fn create_workload(consensus: &dyn Consensus, name: &str) -> WorkloadId {
    let applied = consensus
        .propose(CommandEnvelope::new(
            SystemClock.now_ms(),
            Command::CreateWorkload {
                namespace: "default".into(),
                name: name.into(),
                labels: BTreeMap::new(),
                spec: WorkloadSpec::new("docker.io/library/nginx:1.27"),
            },
        ))
        .await
        .unwrap();
    match applied.result {
        CommandResult::WorkloadCreated { workload } => workload,
        other => panic!("unexpected {other:?}"),
    }
}

/// Waits (tokio time) until a replica of `workload` is Running and ready in the cluster state.
pub(crate) async fn wait_running(consensus: &dyn Consensus, workload: WorkloadId) {
    for _ in 0..600 {
        let state = consensus.state().await.unwrap();
        if state
            .replicas
            .values()
            .any(|r| r.workload == workload && r.phase == ReplicaPhase::Running && r.ready)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let state = consensus.state().await.unwrap();
    panic!(
        "no replica of {workload:?} became Running: nodes {:?}, replicas {:?}",
        state.nodes.keys().collect::<Vec<_>>(),
        state.replicas
    );
}
