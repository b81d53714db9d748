//! The apply-time host-port check of `AssignReplicas`: the scheduler keeps two replicas that
//! publish the same `(hostPort, protocol)` off one node, and this check makes that hold for
//! committed state too, whatever two coordinators decided concurrently from older snapshots.

use std::collections::BTreeSet;

use super::{ApplyError, ClusterState};
use crate::ids::NodeId;
use crate::replica::held_host_ports;
use crate::state::Assignment;
use crate::workload::Workload;

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
    let wanted = w.spec.distinct_host_ports();
    let Some(&first) = wanted.first() else {
        return Ok(());
    };
    let nodes: BTreeSet<NodeId> = assignments.iter().map(|a| a.node).collect();
    let held = held_host_ports(
        &state.replicas,
        &wanted,
        |n| nodes.contains(&n),
        |id| state.workloads.get(&id).map(|w| &w.spec),
    );
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
