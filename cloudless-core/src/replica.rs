//! The replica ledger's entries: which replica of which workload runs where, with what reserved.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{Generation, NodeId, ReplicaId, WorkloadId};
use crate::resources::Resources;
use crate::workload::{HostPort, WorkloadSpec};

/// A reservation of resources on a node for one replica (CLD-REQ-012: the fragment inventory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Fragment {
    /// The node the resources are reserved on.
    pub node: NodeId,
    /// The replica holding the reservation.
    pub replica: ReplicaId,
    /// What is reserved.
    pub resources: Resources,
}

/// Lifecycle of a replica, as reported by its agent.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    Default,
)]
#[serde(rename_all = "camelCase")]
pub enum ReplicaPhase {
    /// Assigned; the agent has not started it yet.
    #[default]
    Pending,
    /// Image pulling or container starting.
    Starting,
    /// Container running.
    Running,
    /// Being stopped (replaced, scaled down, node draining).
    Stopping,
    /// Exited successfully and will not restart.
    Succeeded,
    /// Exited with failure and will not restart (retries exhausted, or the node was lost).
    Failed,
}

impl ReplicaPhase {
    /// True for phases a replica never leaves.
    pub fn is_terminal(self) -> bool {
        matches!(self, ReplicaPhase::Succeeded | ReplicaPhase::Failed)
    }

    /// True if moving from `self` to `next` is allowed.
    pub fn can_become(self, next: ReplicaPhase) -> bool {
        use ReplicaPhase::*;
        if self == next {
            return true;
        }
        match self {
            Pending => true,
            Starting => !matches!(next, Pending),
            Running => matches!(next, Starting | Stopping | Succeeded | Failed),
            Stopping => matches!(next, Succeeded | Failed),
            Succeeded | Failed => false,
        }
    }
}

/// A replica of a workload assigned to a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Replica {
    /// Minted id.
    pub id: ReplicaId,
    /// Owning workload.
    pub workload: WorkloadId,
    /// The workload generation this replica runs.
    pub generation: Generation,
    /// The node it is assigned to.
    pub node: NodeId,
    /// Reserved resources (its fragment).
    pub resources: Resources,
    /// Lifecycle phase.
    pub phase: ReplicaPhase,
    /// Passing readiness.
    pub ready: bool,
    /// Container restarts so far.
    pub restarts: u32,
    /// The container's network address, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Assignment time (ms since the Unix epoch, from the command).
    pub assigned_at_ms: u64,
    /// Human-readable detail of the last status change.
    #[serde(default)]
    pub message: String,
    /// The host ports it publishes, recorded when it was assigned (command version ≥ 2), so a
    /// port stays held while the replica does — after its workload was deleted or a rollout
    /// changed the ports. `None` for a replica assigned before ports were recorded: its
    /// workload's current spec stands in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ports: Option<Vec<HostPort>>,
}

impl Replica {
    /// The fragment this replica holds.
    pub fn fragment(&self) -> Fragment {
        Fragment {
            node: self.node,
            replica: self.id,
            resources: self.resources,
        }
    }

    /// True if the replica still holds its reservation (not in a terminal phase).
    pub fn holds_reservation(&self) -> bool {
        !self.phase.is_terminal()
    }
}

/// Per node accepted by `on`, which of `wanted` are published there by replicas holding a
/// reservation, each with its first holder (replicas are visited in id order).
///
/// A replica publishes the ports recorded on it when it was assigned; one assigned before ports
/// were recorded publishes what `spec_of` gives for its workload (`None`: nothing). Iterates
/// only ordered maps, so the state machine can use it.
pub fn held_host_ports<'a>(
    replicas: &BTreeMap<ReplicaId, Replica>,
    wanted: &[HostPort],
    on: impl Fn(NodeId) -> bool,
    spec_of: impl Fn(WorkloadId) -> Option<&'a WorkloadSpec>,
) -> BTreeMap<NodeId, Vec<(HostPort, ReplicaId)>> {
    let mut held: BTreeMap<NodeId, Vec<(HostPort, ReplicaId)>> = BTreeMap::new();
    if wanted.is_empty() {
        return held;
    }
    // Which of the wanted ports each workload's spec publishes, looked up once per workload.
    let mut from_spec: BTreeMap<WorkloadId, Vec<HostPort>> = BTreeMap::new();
    for r in replicas.values() {
        if !r.holds_reservation() || !on(r.node) {
            continue;
        }
        let ports: Vec<HostPort> = match &r.host_ports {
            Some(recorded) => recorded
                .iter()
                .copied()
                .filter(|p| wanted.contains(p))
                .collect(),
            None => from_spec
                .entry(r.workload)
                .or_insert_with(|| {
                    spec_of(r.workload)
                        .map(|s| s.host_ports().filter(|p| wanted.contains(p)).collect())
                        .unwrap_or_default()
                })
                .clone(),
        };
        if ports.is_empty() {
            continue;
        }
        let on_node = held.entry(r.node).or_default();
        for p in ports {
            if !on_node.iter().any(|(q, _)| *q == p) {
                on_node.push((p, r.id));
            }
        }
    }
    held
}

#[cfg(test)]
mod tests {
    use super::ReplicaPhase::*;

    #[test]
    fn phase_transitions() {
        assert!(Pending.can_become(Running));
        assert!(Running.can_become(Stopping));
        assert!(!Running.can_become(Pending));
        assert!(!Failed.can_become(Running));
        assert!(!Succeeded.can_become(Failed));
        assert!(Stopping.can_become(Failed));
        assert!(Failed.is_terminal());
    }
}
