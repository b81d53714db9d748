//! The coordinator's view of the cluster state: the latest state it read, plus the index the
//! agents' protocol needs, the revision of the last ledger change that touched each node.

use std::collections::BTreeMap;
use std::sync::Arc;

use cloudless_core::ids::{NodeId, ReplicaId, Revision};
use cloudless_core::state::{Change, ClusterState, Object, ObjectKind};

/// Latest state plus per-node assignment revisions.
#[derive(Debug, Clone)]
pub(crate) struct View {
    pub(crate) state: Arc<ClusterState>,
    /// Revision every node starts with (the state's revision when the index was built): an
    /// agent fetches its set once after a coordinator (re)starts, then only on changes.
    base: Revision,
    node_revision: BTreeMap<NodeId, Revision>,
    replica_node: BTreeMap<ReplicaId, NodeId>,
}

impl View {
    pub(crate) fn new(state: Arc<ClusterState>) -> Self {
        let replica_node = state.replicas.values().map(|r| (r.id, r.node)).collect();
        Self {
            base: state.revision,
            state,
            node_revision: BTreeMap::new(),
            replica_node,
        }
    }

    /// The revision of `node`'s assignment set.
    pub(crate) fn assignments_revision(&self, node: NodeId) -> Revision {
        self.node_revision.get(&node).copied().unwrap_or(self.base)
    }

    /// Notes one applied change (before the new state is installed: the old state tells
    /// whether a workload's spec changed).
    pub(crate) fn note(&mut self, change: &Change) {
        match (change.kind, &change.object) {
            (ObjectKind::Replica, object) => {
                let Ok(id) = change.key.trim_start_matches('r').parse::<u64>() else {
                    return;
                };
                let id = ReplicaId(id);
                let node = match object {
                    Some(Object::Replica(r)) => {
                        self.replica_node.insert(id, r.node);
                        Some(r.node)
                    }
                    _ => self.replica_node.remove(&id),
                };
                if let Some(node) = node {
                    self.bump(node, change.revision);
                }
            }
            (ObjectKind::Workload, Some(Object::Workload(w))) => {
                // The set carries the workload's spec: a spec change touches every node
                // running one of its replicas. Status-only changes touch nobody.
                let changed = self
                    .state
                    .workloads
                    .get(&w.id)
                    .is_none_or(|old| old.spec != w.spec || old.generation != w.generation);
                if changed {
                    let nodes: Vec<NodeId> = self.state.replicas_of(w.id).map(|r| r.node).collect();
                    for node in nodes {
                        self.bump(node, change.revision);
                    }
                }
            }
            _ => {}
        }
    }

    fn bump(&mut self, node: NodeId, revision: Revision) {
        let r = self.node_revision.entry(node).or_insert(revision);
        *r = (*r).max(revision);
    }

    /// Installs a newer state (older ones are ignored).
    pub(crate) fn install(&mut self, state: Arc<ClusterState>) {
        if state.revision >= self.state.revision {
            self.state = state;
        }
    }
}
