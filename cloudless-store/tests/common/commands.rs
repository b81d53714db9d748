//! Commands the cluster tests propose.
#![allow(dead_code, unreachable_pub)]

use cloudless_core::event::{EventCategory, Severity};
use cloudless_core::ids::{Generation, NodeId, NodeName, WorkloadId};
use cloudless_core::node::{Liveness, NodeReport, Platform};
use cloudless_core::resources::Resources;
use cloudless_core::state::{Assignment, ClusterState, Command, CommandEnvelope};
use cloudless_core::workload::WorkloadSpec;

pub const T0: u64 = 1_700_000_000_000;

/// An event whose message is `msg`.
pub fn event(msg: &str) -> CommandEnvelope {
    CommandEnvelope::new(
        T0,
        Command::RecordEvent {
            category: EventCategory::Workload,
            severity: Severity::Info,
            subject: "raft-test".into(),
            reason: "Probe".into(),
            message: msg.into(),
        },
    )
}

pub fn has_event(state: &ClusterState, msg: &str) -> bool {
    state.events.iter().any(|e| e.message == msg)
}

pub fn resources(cpu_millis: u64, memory_mib: u64) -> Resources {
    Resources {
        cpu_millis,
        memory_mib,
        ..Resources::ZERO
    }
}

pub fn register(name: &str, cpu_millis: u64) -> CommandEnvelope {
    let r = resources(cpu_millis, 4096);
    CommandEnvelope::new(
        T0,
        Command::RegisterNode {
            name: NodeName::new(name).unwrap(),
            report: NodeReport {
                platform: Platform::linux_amd64(),
                region: String::new(),
                zone: String::new(),
                labels: Default::default(),
                capacity: r,
                allocatable: r,
                power: Default::default(),
                reliability: Default::default(),
            },
        },
    )
}

pub fn ready(node: NodeId) -> CommandEnvelope {
    CommandEnvelope::new(
        T0,
        Command::SetLiveness {
            changes: vec![(node, Liveness::Ready)],
        },
    )
}

pub fn create_workload(name: &str) -> CommandEnvelope {
    CommandEnvelope::new(
        T0,
        Command::CreateWorkload {
            namespace: "default".into(),
            name: name.into(),
            labels: Default::default(),
            spec: WorkloadSpec::new("app:1"),
        },
    )
}

pub fn assign(workload: WorkloadId, node: NodeId, cpu_millis: u64) -> CommandEnvelope {
    CommandEnvelope::new(
        T0,
        Command::AssignReplicas {
            workload,
            generation: Generation(1),
            assignments: vec![Assignment {
                node,
                resources: resources(cpu_millis, 16),
            }],
        },
    )
}
