//! The [`ControlPlane`] the coordinator serves: heartbeats (registration, inventory, liveness,
//! adaptive interval), assignment sets, and replica status reports.

use std::sync::Arc;

use async_trait::async_trait;
use cloudless_core::consensus::ConsensusError;
use cloudless_core::ids::{NodeId, NodeName};
use cloudless_core::node::{Liveness, NodeReport};
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::state::{ApplyError, Command};

use super::driver::Shared;
use crate::control::{
    AssignedReplica, AssignmentSet, ControlError, ControlPlane, HeartbeatAck, ReplicaReport,
    StoppedReplica,
};

/// The coordinator's side of the agent protocol.
pub(crate) struct Service {
    shared: Arc<Shared>,
}

impl Service {
    pub(crate) fn new(shared: Arc<Shared>) -> Self {
        Self { shared }
    }

    fn require_leader(&self) -> Result<(), ControlError> {
        if self.shared.is_leader() {
            Ok(())
        } else {
            Err(self.shared.not_leader())
        }
    }

    fn consensus_error(&self, e: ConsensusError) -> ControlError {
        match e {
            ConsensusError::NotLeader { .. } => self.shared.not_leader(),
            ConsensusError::Rejected(e) => ControlError::Rejected(e.to_string()),
            other => ControlError::Unavailable(other.to_string()),
        }
    }

    /// Proposes an agent's status commands concurrently (so a raft batcher can group them); a
    /// command the state machine rejects is logged and skipped, any other failure answers the
    /// call.
    async fn propose_reports(
        &self,
        node: NodeId,
        commands: Vec<Command>,
        what: &str,
    ) -> Result<(), ControlError> {
        let results =
            futures::future::join_all(commands.into_iter().map(|c| self.shared.propose(c))).await;
        for result in results {
            match result {
                Ok(_) => {}
                Err(ConsensusError::Rejected(e)) => {
                    tracing::debug!(%node, error = %e, "{what} rejected by the state machine");
                }
                Err(e) => return Err(self.consensus_error(e)),
            }
        }
        Ok(())
    }

    /// Registers a node the state does not know yet under the id its agent holds.
    async fn register(&self, node: NodeId, report: &NodeReport) -> Result<(), ControlError> {
        let name = NodeName::new(format!("node-{}", node.get()))
            .map_err(|e| ControlError::Rejected(format!("no name for {node}: {e}")))?;
        match self
            .shared
            .propose(Command::RegisterNodeAs {
                node,
                name,
                report: report.clone(),
            })
            .await
        {
            Ok(_) => {}
            Err(ConsensusError::Rejected(ApplyError::NodeUnavailable { reason, .. })) => {
                return Err(ControlError::PermissionDenied(format!("{node}: {reason}")));
            }
            Err(e) => return Err(self.consensus_error(e)),
        }
        self.shared
            .refresh()
            .await
            .map_err(|e| self.consensus_error(e))?;
        Ok(())
    }
}

/// True if the inventory part of a report (CLD-REQ-010: platform, region, zone, labels,
/// capacity, allocatable, power, failure count) differs. Uptime is left out: it changes with
/// every heartbeat and would turn each one into a commit.
pub(crate) fn inventory_changed(old: &NodeReport, new: &NodeReport) -> bool {
    old.platform != new.platform
        || old.region != new.region
        || old.zone != new.zone
        || old.labels != new.labels
        || old.capacity != new.capacity
        || old.allocatable != new.allocatable
        || old.power != new.power
        || old.reliability.recent_failures != new.reliability.recent_failures
}

#[async_trait]
impl ControlPlane for Service {
    async fn heartbeat(
        &self,
        node: NodeId,
        report: &NodeReport,
    ) -> Result<HeartbeatAck, ControlError> {
        self.require_leader()?;
        let mut state = self.shared.state();
        if state.revoked_nodes.contains(&node) {
            return Err(ControlError::PermissionDenied(format!(
                "{node}: identity revoked"
            )));
        }
        if !state.nodes.contains_key(&node) {
            // The cached view may not have applied this node's registration (enrollment
            // commits it through consensus, possibly on another coordinator): read again
            // before treating the node as unknown.
            state = self
                .shared
                .refresh()
                .await
                .map_err(|e| self.consensus_error(e))?;
        }
        match state.nodes.get(&node) {
            None => {
                if node.get() < state.next_node_id {
                    return Err(ControlError::PermissionDenied(format!(
                        "{node} was removed from the cluster; re-join with a token"
                    )));
                }
                self.register(node, report).await?;
                state = self.shared.state();
            }
            Some(n) if inventory_changed(&n.report, report) => {
                match self
                    .shared
                    .propose(Command::ReportNode {
                        node,
                        report: report.clone(),
                    })
                    .await
                {
                    Ok(_) => {}
                    Err(ConsensusError::NotLeader { .. }) => return Err(self.shared.not_leader()),
                    // The inventory is sent again with the next heartbeat.
                    Err(e) => tracing::debug!(%node, error = %e, "inventory not committed"),
                }
            }
            Some(_) => {}
        }
        let now = self.shared.now();
        let (liveness, interval) = {
            let mut d = self.shared.detector();
            let mut seen = d.observe(node, now);
            if seen.is_none() {
                d.sync(now, state.nodes.values().map(|n| (n.id, n.liveness)));
                seen = d.observe(node, now);
            }
            (seen.unwrap_or(Liveness::Joining), d.interval())
        };
        let (_, revision) = self.shared.state_and_revision(node);
        Ok(HeartbeatAck {
            liveness,
            assignments_revision: revision,
            interval,
            leader: Some(self.shared.node),
        })
    }

    async fn assignments(&self, node: NodeId) -> Result<AssignmentSet, ControlError> {
        self.require_leader()?;
        if !self.shared.state().nodes.contains_key(&node) {
            // As in `heartbeat`: the view may lag the node's registration.
            self.shared
                .refresh()
                .await
                .map_err(|e| self.consensus_error(e))?;
        }
        let (state, revision) = self.shared.state_and_revision(node);
        if state.revoked_nodes.contains(&node) {
            return Err(ControlError::PermissionDenied(format!(
                "{node}: identity revoked"
            )));
        }
        if !state.nodes.contains_key(&node) {
            return Err(ControlError::Rejected(format!("{node} is not registered")));
        }
        let mut replicas = Vec::new();
        let mut stopping = Vec::new();
        for r in state.replicas_on(node) {
            // A Stopping replica is left out: its agent stops what it is not assigned.
            if r.phase == ReplicaPhase::Stopping {
                stopping.push(r.id);
                continue;
            }
            if r.phase.is_terminal() {
                continue;
            }
            let Some(w) = state.workloads.get(&r.workload) else {
                continue;
            };
            replicas.push(AssignedReplica {
                replica: r.clone(),
                namespace: w.namespace.clone(),
                workload_name: w.name.clone(),
                spec: w.spec.clone(),
            });
        }
        self.shared.saw_stop(stopping);
        Ok(AssignmentSet { revision, replicas })
    }

    async fn report(&self, node: NodeId, reports: Vec<ReplicaReport>) -> Result<(), ControlError> {
        self.require_leader()?;
        let state = self.shared.state();
        if state.revoked_nodes.contains(&node) {
            return Err(ControlError::PermissionDenied(format!(
                "{node}: identity revoked"
            )));
        }
        let mut commands = Vec::new();
        for rep in &reports {
            let Some(r) = state.replicas.get(&rep.replica) else {
                tracing::debug!(%node, replica = %rep.replica, "report for a replica not in the ledger ignored");
                continue;
            };
            if r.node != node {
                return Err(ControlError::PermissionDenied(format!(
                    "replica {} is assigned to {}, not {node}",
                    rep.replica, r.node
                )));
            }
            let ready = rep.ready && rep.phase == ReplicaPhase::Running;
            let address_changed = rep.address.is_some() && rep.address != r.address;
            let changed = r.phase != rep.phase
                || r.ready != ready
                || r.restarts != rep.restarts
                || address_changed;
            if !changed || !r.phase.can_become(rep.phase) {
                continue;
            }
            commands.push(Command::UpdateReplica {
                replica: rep.replica,
                phase: rep.phase,
                ready,
                restarts: rep.restarts,
                address: rep.address.clone(),
                message: rep.message.clone(),
            });
        }
        // A rejection raced with a coordinator decision (e.g. the replica is now Stopping).
        self.propose_reports(node, commands, "replica report").await
    }

    /// Finishes (`Succeeded`) the replicas the agent has stopped because its set left them
    /// out — only those the ledger has `Stopping` since no later than the set the agent names.
    /// A stop report for a replica that is not Stopping (the agent followed a set that was not
    /// built after the coordinator stopped it) is ignored: the replica keeps its phase and
    /// nothing becomes terminal; a replica the coordinator did stop but whose report is ignored
    /// is still finished after `stop_grace`.
    async fn report_stopped(
        &self,
        node: NodeId,
        stopped: Vec<StoppedReplica>,
    ) -> Result<(), ControlError> {
        self.require_leader()?;
        let state = self.shared.state();
        if state.revoked_nodes.contains(&node) {
            return Err(ControlError::PermissionDenied(format!(
                "{node}: identity revoked"
            )));
        }
        let mut commands = Vec::new();
        for s in &stopped {
            let (state, since) = self.shared.state_and_stopping_since(s.replica);
            let Some(r) = state.replicas.get(&s.replica) else {
                tracing::debug!(%node, replica = %s.replica, "stop report for a replica not in the ledger ignored");
                continue;
            };
            if r.node != node {
                return Err(ControlError::PermissionDenied(format!(
                    "replica {} is assigned to {}, not {node}",
                    s.replica, r.node
                )));
            }
            match since {
                Some(since) if s.set_revision >= since => {}
                Some(since) => {
                    tracing::debug!(%node, replica = %s.replica, set = %s.set_revision, %since, "stop report from a set older than the stop ignored");
                    continue;
                }
                None => {
                    tracing::debug!(%node, replica = %s.replica, phase = ?r.phase, "stop report for a replica that is not Stopping ignored");
                    continue;
                }
            }
            commands.push(Command::UpdateReplica {
                replica: s.replica,
                phase: ReplicaPhase::Succeeded,
                ready: false,
                restarts: r.restarts,
                address: None,
                message: "stopped by its agent".into(),
            });
        }
        // A rejection: finished meanwhile (a second report, or the stop grace).
        self.propose_reports(node, commands, "stop report").await
    }
}
