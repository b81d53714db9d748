//! The apply-time host-port check of `AssignReplicas`: the scheduler keeps two replicas that
//! publish the same `(hostPort, protocol)` off one node, and this check makes that hold for
//! committed state too, whatever two coordinators decided concurrently from older snapshots.

use std::collections::{BTreeMap, BTreeSet};

use super::{ApplyError, ClusterState};
use crate::ids::{NodeId, ReplicaId, WorkloadId};
use crate::state::Assignment;
use crate::workload::{HostPort, Workload};

/// Refuses the first assignment (in command order) to a node where one of `w`'s host ports is
/// published by a replica holding a reservation — of any workload, `w` included, each counted
/// with the ports recorded when it was assigned (or, for a replica assigned before ports were
/// recorded, its workload's current spec) — or by an earlier assignment of the same command. The
/// port named is the first of `w`'s in declaration order, the holder the lowest replica id.
///
/// Free for a workload without host ports; otherwise one pass over the workloads and one over
/// the replica ledger, in key order, so every member of the state machine answers alike.
pub(super) fn check(
    state: &ClusterState,
    w: &Workload,
    assignments: &[Assignment],
) -> Result<(), ApplyError> {
    let mut wanted: Vec<HostPort> = Vec::new();
    for p in w.spec.host_ports() {
        if !wanted.contains(&p) {
            wanted.push(p);
        }
    }
    let Some(&first) = wanted.first() else {
        return Ok(());
    };
    let nodes: BTreeSet<NodeId> = assignments.iter().map(|a| a.node).collect();
    let mut publishes: BTreeMap<WorkloadId, Vec<HostPort>> = BTreeMap::new();
    for (id, other) in &state.workloads {
        let taken: Vec<HostPort> = other
            .spec
            .host_ports()
            .filter(|p| wanted.contains(p))
            .collect();
        if !taken.is_empty() {
            publishes.insert(*id, taken);
        }
    }
    // Per node, each taken port with its first holder (replicas are visited in id order).
    let mut held: BTreeMap<NodeId, Vec<(HostPort, ReplicaId)>> = BTreeMap::new();
    for r in state.replicas.values() {
        if !r.holds_reservation() || !nodes.contains(&r.node) {
            continue;
        }
        // Recorded at assignment; for replicas assigned before that, the workload's spec.
        let ports: Vec<HostPort> = match &r.host_ports {
            Some(recorded) => recorded
                .iter()
                .copied()
                .filter(|p| wanted.contains(p))
                .collect(),
            None => publishes.get(&r.workload).cloned().unwrap_or_default(),
        };
        if ports.is_empty() {
            continue;
        }
        let on_node = held.entry(r.node).or_default();
        for p in &ports {
            if !on_node.iter().any(|(q, _)| q == p) {
                on_node.push((*p, r.id));
            }
        }
    }
    let mut placed: BTreeSet<NodeId> = BTreeSet::new();
    for a in assignments {
        if let Some(on_node) = held.get(&a.node) {
            for p in &wanted {
                if let Some((_, holder)) = on_node.iter().find(|(q, _)| q == p) {
                    return Err(ApplyError::HostPortInUse {
                        node: a.node,
                        port: *p,
                        holder: Some(*holder),
                    });
                }
            }
        }
        if !placed.insert(a.node) {
            return Err(ApplyError::HostPortInUse {
                node: a.node,
                port: first,
                holder: None,
            });
        }
    }
    Ok(())
}
