//! Measures one reconcile round on a large cluster: 5,000 nodes in 10 zones, 1,000 workloads
//! of 20 replicas (20,000 replicas), with 50 nodes Down, one node draining and 100 workloads
//! mid-rollout. Prints the action counts and P50/P99 of `reconcile` and `to_commands`.
//!
//! ```text
//! cargo run --release -p cloudless-sched --example reconcile_round
//! ```

use std::error::Error;
use std::time::{Duration, Instant};

use cloudless_core::ids::{NodeId, NodeName, WorkloadId};
use cloudless_core::node::{Liveness, NodeReport, Platform};
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::resources::Resources;
use cloudless_core::state::{
    Assignment, ClusterState, Command, CommandEnvelope, CommandResult, apply,
};
use cloudless_core::workload::WorkloadSpec;
use cloudless_sched::reconcile::{ReconcileAction, reconcile, to_commands};

const NODES: u64 = 5_000;
const WORKLOADS: u64 = 1_000;
const REPLICAS: u32 = 20;
const ROUNDS: usize = 50;

fn run(state: &mut ClusterState, command: Command) -> Result<CommandResult, Box<dyn Error>> {
    Ok(apply(state, &CommandEnvelope::new(1, command))?.result)
}

fn request() -> Resources {
    Resources {
        cpu_millis: 100,
        memory_mib: 64,
        ..Resources::ZERO
    }
}

/// The built cluster: state, node ids, workload ids.
type Cluster = (ClusterState, Vec<NodeId>, Vec<WorkloadId>);

fn build() -> Result<Cluster, Box<dyn Error>> {
    let mut s = ClusterState::new();
    let size = Resources {
        cpu_millis: 1_600,
        memory_mib: 1_024,
        ..Resources::ZERO
    };
    let mut nodes = Vec::new();
    for i in 0..NODES {
        let report = NodeReport {
            platform: Platform::linux_amd64(),
            region: "eu".into(),
            zone: format!("z{}", i % 10),
            labels: Default::default(),
            capacity: size,
            allocatable: size,
            power: Default::default(),
            reliability: Default::default(),
        };
        let name = NodeName::new(format!("n{i}"))?;
        if let CommandResult::NodeRegistered { node } =
            run(&mut s, Command::RegisterNode { name, report })?
        {
            nodes.push(node);
        }
    }
    let changes = nodes.iter().map(|&n| (n, Liveness::Ready)).collect();
    run(&mut s, Command::SetLiveness { changes })?;
    let mut workloads = Vec::new();
    let mut next_node = 0usize;
    for i in 0..WORKLOADS {
        let mut spec = WorkloadSpec::new("localhost/cloudless/busybox:latest");
        spec.replicas = REPLICAS;
        let CommandResult::WorkloadCreated { workload } = run(
            &mut s,
            Command::CreateWorkload {
                namespace: "default".into(),
                name: format!("w{i}"),
                labels: Default::default(),
                spec,
            },
        )?
        else {
            return Err("no workload id".into());
        };
        workloads.push(workload);
        let assignments = (0..REPLICAS)
            .map(|_| {
                next_node = (next_node + 1) % nodes.len();
                Assignment {
                    node: nodes[next_node],
                    resources: request(),
                }
            })
            .collect();
        let generation = s.workloads[&workload].generation;
        let CommandResult::ReplicasAssigned { replicas } = run(
            &mut s,
            Command::AssignReplicas {
                workload,
                generation,
                assignments,
            },
        )?
        else {
            return Err("no replica ids".into());
        };
        for replica in replicas {
            run(
                &mut s,
                Command::UpdateReplica {
                    replica,
                    phase: ReplicaPhase::Running,
                    ready: true,
                    restarts: 0,
                    address: None,
                    message: String::new(),
                },
            )?;
        }
    }
    Ok((s, nodes, workloads))
}

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

fn main() -> Result<(), Box<dyn Error>> {
    let (mut s, nodes, workloads) = build()?;
    let changes = nodes[..50].iter().map(|&n| (n, Liveness::Down)).collect();
    run(&mut s, Command::SetLiveness { changes })?;
    run(&mut s, Command::Drain { node: nodes[100] })?;
    for &w in &workloads[..100] {
        let mut spec = s.workloads[&w].spec.clone();
        spec.image = "localhost/cloudless/busybox:next".into();
        run(
            &mut s,
            Command::UpdateWorkload {
                workload: w,
                expected_generation: None,
                spec,
            },
        )?;
    }

    let (mut rec, mut cmd) = (Vec::new(), Vec::new());
    let mut last = Vec::new();
    for _ in 0..ROUNDS {
        let t = Instant::now();
        let r = reconcile(&s);
        rec.push(t.elapsed());
        let t = Instant::now();
        let commands = to_commands(&s, &r.actions);
        cmd.push(t.elapsed());
        std::hint::black_box(commands);
        last = r.actions;
    }
    rec.sort();
    cmd.sort();
    let places: u32 = last
        .iter()
        .map(|a| match a {
            ReconcileAction::Place { count, .. } => *count,
            _ => 0,
        })
        .sum();
    let stops = last
        .iter()
        .filter(|a| matches!(a, ReconcileAction::Stop { .. }))
        .count();
    println!(
        "{NODES} nodes, {WORKLOADS} workloads x {REPLICAS} replicas = {} replicas; \
         50 nodes down, 1 draining, 100 workloads rolling out",
        s.replicas.len()
    );
    println!(
        "actions: {} ({places} replicas to place, {stops} stops)",
        last.len()
    );
    println!(
        "reconcile:   P50 {:?}  P99 {:?}  ({ROUNDS} rounds)",
        percentile(&rec, 50),
        percentile(&rec, 99)
    );
    println!(
        "to_commands: P50 {:?}  P99 {:?}",
        percentile(&cmd, 50),
        percentile(&cmd, 99)
    );
    Ok(())
}
