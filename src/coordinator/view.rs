//! The coordinator's view of the cluster state: the latest state it read, plus the index the
//! agents' protocol needs, the revision of the last ledger change that touched each node.

use std::collections::BTreeMap;
use std::sync::Arc;

use cloudless_core::ids::{NodeId, ReplicaId, Revision};
use cloudless_core::replica::ReplicaPhase;
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
    /// The newest change noted (or the base): the state watch resumes after it, so a change
    /// is never skipped because a newer state was installed before it was noted.
    noted: Revision,
    /// Replicas seen Stopping, with the revision of the change that first showed them so
    /// (replicas already Stopping when the view was built: the base, an upper bound).
    stopping_since: BTreeMap<ReplicaId, Revision>,
}

impl View {
    pub(crate) fn new(state: Arc<ClusterState>) -> Self {
        let replica_node = state.replicas.values().map(|r| (r.id, r.node)).collect();
        let stopping_since = state
            .replicas
            .values()
            .filter(|r| r.phase == ReplicaPhase::Stopping)
            .map(|r| (r.id, state.revision))
            .collect();
        Self {
            base: state.revision,
            noted: state.revision,
            state,
            node_revision: BTreeMap::new(),
            replica_node,
            stopping_since,
        }
    }

    /// The revision from which `replica` is known to be Stopping: the change that made it so,
    /// or an upper bound of it (the base of the view, or the installed state's revision when
    /// the state shows it Stopping before the watch delivered the change). `None` if the
    /// installed state does not have it Stopping.
    pub(crate) fn stopping_since(&self, replica: ReplicaId) -> Option<Revision> {
        let r = self.state.replicas.get(&replica)?;
        if r.phase != ReplicaPhase::Stopping {
            return None;
        }
        Some(
            self.stopping_since
                .get(&replica)
                .copied()
                .unwrap_or(self.state.revision),
        )
    }

    /// The revision the state watch resumes after: every change up to it has been noted.
    pub(crate) fn noted(&self) -> Revision {
        self.noted
    }

    /// The revision of `node`'s assignment set.
    ///
    /// Never ahead of the installed state: changes are noted before their state is read, and a
    /// set built from an older state must not carry a revision that claims it is current (the
    /// agent would never fetch again). Both inputs only grow, so the result only grows.
    pub(crate) fn assignments_revision(&self, node: NodeId) -> Revision {
        self.node_revision
            .get(&node)
            .copied()
            .unwrap_or(self.base)
            .min(self.state.revision)
    }

    /// Notes one applied change (before the new state is installed: the old state tells
    /// whether a workload's spec changed).
    pub(crate) fn note(&mut self, change: &Change) {
        self.noted = self.noted.max(change.revision);
        match (change.kind, &change.object) {
            (ObjectKind::Replica, object) => {
                let Ok(id) = change.key.trim_start_matches('r').parse::<u64>() else {
                    return;
                };
                let id = ReplicaId(id);
                let node = match object {
                    Some(Object::Replica(r)) => {
                        if r.phase == ReplicaPhase::Stopping {
                            self.stopping_since.entry(id).or_insert(change.revision);
                        } else {
                            self.stopping_since.remove(&id);
                        }
                        self.replica_node.insert(id, r.node);
                        Some(r.node)
                    }
                    _ => {
                        self.stopping_since.remove(&id);
                        self.replica_node.remove(&id)
                    }
                };
                if let Some(node) = node {
                    self.bump(node, change.revision);
                }
            }
            (ObjectKind::Workload, Some(Object::Workload(w))) => {
                // The set carries the workload's spec: a spec change touches every node
                // running one of its replicas. Status-only changes touch nobody. When the
                // installed state already contains this change (a refresh got ahead of the
                // watch), the old spec is unknown: count it as changed (an agent refetches
                // its set once more, nothing is missed).
                let changed = self.state.revision >= change.revision
                    || self
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
        // Changes the state this index was built from already contains.
        if revision <= self.base {
            return;
        }
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

#[cfg(test)]
mod tests {
    use cloudless_core::ids::{NodeName, WorkloadId};
    use cloudless_core::node::{Liveness, NodeReport, Platform};
    use cloudless_core::replica::ReplicaPhase;
    use cloudless_core::resources::Resources;
    use cloudless_core::state::{Applied, Assignment, Command, CommandEnvelope, apply};
    use cloudless_core::workload::WorkloadSpec;

    use super::*;

    fn run(state: &mut ClusterState, command: Command) -> Applied {
        match apply(state, &CommandEnvelope::new(1, command)) {
            Ok(a) => a,
            Err(e) => panic!("rejected: {e}"),
        }
    }

    fn node(state: &mut ClusterState, id: u64) {
        let r = Resources {
            cpu_millis: 1000,
            memory_mib: 1024,
            ..Resources::ZERO
        };
        run(
            state,
            Command::RegisterNodeAs {
                node: NodeId(id),
                name: NodeName::new(format!("node-{id}")).unwrap_or_else(|e| panic!("{e}")),
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
        );
        run(
            state,
            Command::SetLiveness {
                changes: vec![(NodeId(id), Liveness::Ready)],
            },
        );
    }

    /// Applies `command` to a copy of the view's state and feeds the view its changes.
    fn step(view: &mut View, command: Command) -> Revision {
        let mut next = (*view.state).clone();
        let applied = run(&mut next, command);
        for c in &applied.changes {
            view.note(c);
        }
        view.install(Arc::new(next));
        applied.revision
    }

    #[test]
    fn revisions_move_only_for_the_nodes_a_change_touches() {
        let mut state = ClusterState::new();
        node(&mut state, 1);
        node(&mut state, 2);
        run(
            &mut state,
            Command::CreateWorkload {
                namespace: "default".into(),
                name: "web".into(),
                labels: Default::default(),
                spec: WorkloadSpec::new("img"),
            },
        );
        let mut view = View::new(Arc::new(state));
        let base = view.state.revision;
        assert_eq!(view.assignments_revision(NodeId(1)), base);
        assert_eq!(view.assignments_revision(NodeId(9)), base);

        let assigned = step(
            &mut view,
            Command::AssignReplicas {
                workload: WorkloadId(1),
                generation: cloudless_core::ids::Generation(1),
                assignments: vec![Assignment {
                    node: NodeId(1),
                    resources: Resources::ZERO,
                }],
            },
        );
        assert_eq!(view.assignments_revision(NodeId(1)), assigned);
        assert_eq!(view.assignments_revision(NodeId(2)), base);
        let r1 = view.state.replicas[&ReplicaId(1)].clone();

        // A status report changes the replica (touches node 1) and the workload's counters
        // (a status-only workload change touches nobody else).
        let reported = step(
            &mut view,
            Command::UpdateReplica {
                replica: ReplicaId(1),
                phase: ReplicaPhase::Running,
                ready: true,
                restarts: 0,
                address: None,
                message: String::new(),
            },
        );
        assert_eq!(view.assignments_revision(NodeId(1)), reported);
        assert_eq!(view.assignments_revision(NodeId(2)), base);

        // A spec change touches every node running the workload.
        let mut spec = WorkloadSpec::new("img:2");
        spec.replicas = 1;
        let updated = step(
            &mut view,
            Command::UpdateWorkload {
                workload: WorkloadId(1),
                expected_generation: None,
                spec,
            },
        );
        assert_eq!(view.assignments_revision(NodeId(1)), updated);
        assert_eq!(view.assignments_revision(NodeId(2)), base);

        // A removal is charged to the node the replica was on.
        let removed = step(
            &mut view,
            Command::UnassignReplicas {
                replicas: vec![ReplicaId(1)],
            },
        );
        assert_eq!(view.assignments_revision(NodeId(1)), removed);

        // Changes at or below the base are already in the state the index was built from.
        let mut fresh = View::new(Arc::clone(&view.state));
        let old = Change {
            revision: Revision(1),
            kind: ObjectKind::Replica,
            key: "r1".into(),
            object: Some(Object::Replica(Box::new(r1))),
        };
        fresh.note(&old);
        assert_eq!(fresh.assignments_revision(NodeId(1)), fresh.state.revision);
    }
    #[test]
    fn changes_noted_after_a_newer_state_was_installed_still_move_revisions() {
        let mut state = ClusterState::new();
        node(&mut state, 1);
        run(
            &mut state,
            Command::CreateWorkload {
                namespace: "default".into(),
                name: "web".into(),
                labels: Default::default(),
                spec: WorkloadSpec::new("img"),
            },
        );
        let mut view = View::new(Arc::new(state.clone()));
        let base = view.noted();
        assert_eq!(base, view.state.revision);

        // Noted before the state holding it was read: the revision stays at the installed
        // state's, so an agent fetching now is not told its old set is current.
        let mut lagging = View::new(Arc::new(state.clone()));
        let mut ahead = state.clone();
        let early = run(
            &mut ahead,
            Command::AssignReplicas {
                workload: WorkloadId(1),
                generation: cloudless_core::ids::Generation(1),
                assignments: vec![Assignment {
                    node: NodeId(1),
                    resources: Resources::ZERO,
                }],
            },
        );
        for c in &early.changes {
            lagging.note(c);
        }
        assert_eq!(lagging.assignments_revision(NodeId(1)), base);
        lagging.install(Arc::new(ahead));
        assert_eq!(lagging.assignments_revision(NodeId(1)), early.revision);

        // A refresh installs the state after an assignment and a spec change before the watch
        // has delivered either change.
        let assigned = run(
            &mut state,
            Command::AssignReplicas {
                workload: WorkloadId(1),
                generation: cloudless_core::ids::Generation(1),
                assignments: vec![Assignment {
                    node: NodeId(1),
                    resources: Resources::ZERO,
                }],
            },
        );
        let mut spec = WorkloadSpec::new("img:2");
        spec.replicas = 1;
        let updated = run(
            &mut state,
            Command::UpdateWorkload {
                workload: WorkloadId(1),
                expected_generation: None,
                spec,
            },
        );
        view.install(Arc::new(state));
        // The watch resumes after what was noted, not after the installed state.
        assert_eq!(view.noted(), base);

        for c in &assigned.changes {
            view.note(c);
        }
        assert_eq!(view.assignments_revision(NodeId(1)), assigned.revision);
        // The installed state already holds the new spec: the change still counts.
        for c in &updated.changes {
            view.note(c);
        }
        assert_eq!(view.assignments_revision(NodeId(1)), updated.revision);
        assert_eq!(view.noted(), updated.revision);
    }

    #[test]
    fn stopping_since_is_the_change_that_made_a_replica_stopping_or_an_upper_bound() {
        let mut state = ClusterState::new();
        node(&mut state, 1);
        run(
            &mut state,
            Command::CreateWorkload {
                namespace: "default".into(),
                name: "web".into(),
                labels: Default::default(),
                spec: WorkloadSpec::new("img"),
            },
        );
        run(
            &mut state,
            Command::AssignReplicas {
                workload: WorkloadId(1),
                generation: cloudless_core::ids::Generation(1),
                assignments: vec![
                    Assignment {
                        node: NodeId(1),
                        resources: Resources::ZERO,
                    };
                    2
                ],
            },
        );
        let stop = |replica: u64| Command::UpdateReplica {
            replica: ReplicaId(replica),
            phase: ReplicaPhase::Stopping,
            ready: false,
            restarts: 0,
            address: None,
            message: String::new(),
        };
        // Already Stopping when the view is built: its base, an upper bound.
        run(&mut state, stop(1));
        let mut view = View::new(Arc::new(state));
        let base = view.state.revision;
        assert_eq!(view.stopping_since(ReplicaId(1)), Some(base));
        assert_eq!(view.stopping_since(ReplicaId(2)), None);

        let stopped = step(&mut view, stop(2));
        assert_eq!(view.stopping_since(ReplicaId(2)), Some(stopped));
        // Later changes (here a status report of the other replica) do not move it.
        step(
            &mut view,
            Command::UpdateReplica {
                replica: ReplicaId(1),
                phase: ReplicaPhase::Succeeded,
                ready: false,
                restarts: 0,
                address: None,
                message: String::new(),
            },
        );
        assert_eq!(view.stopping_since(ReplicaId(2)), Some(stopped));
        assert_eq!(view.stopping_since(ReplicaId(1)), None, "terminal now");
        assert_eq!(view.stopping_since(ReplicaId(9)), None, "unknown");
    }
}
