//! The pure apply function, split by concern.
//!
//! ```text
//!  envelope ─▶ version check ─▶ idempotency lookup ─▶ handler (validate, then mutate)
//!                                                        │ touched objects + new events
//!                                                        ▼
//!                       revision += 1, events appended, key remembered, changes built
//! ```
//!
//! Every handler validates the whole command before its first mutation, so a rejection leaves
//! the state exactly as it was. Handlers only say *which* objects they touched; the changes are
//! built once at the end from the final state, sorted by kind and id, events last. That keeps
//! the change list deterministic and free of duplicates however a handler is written.

mod events;
mod host_ports;
mod nodes;
mod replicas;
mod services;
mod tokens;
mod workloads;

use std::collections::BTreeSet;

use super::{
    Applied, ApplyError, COMMAND_VERSION, Change, ClusterState, Command, CommandEnvelope,
    CommandResult, MAX_IDEMPOTENCY_KEY_LEN, MAX_IDEMPOTENCY_KEYS, MIN_COMMAND_VERSION, Object,
    ObjectKind,
};
use crate::event::{Event, EventCategory, Severity};
use crate::ids::{NodeId, ReplicaId, Revision, WorkloadId};

/// Applies `cmd` to `state`. On error `state` is unchanged.
///
/// Never reads a clock (time comes from `cmd.at_ms`), does no I/O and iterates only ordered
/// maps, so every replica of the state machine computes the same result.
pub fn apply(state: &mut ClusterState, cmd: &CommandEnvelope) -> Result<Applied, ApplyError> {
    if !(MIN_COMMAND_VERSION..=COMMAND_VERSION).contains(&cmd.version) {
        return Err(ApplyError::UnsupportedVersion {
            found: cmd.version,
            supported: COMMAND_VERSION,
        });
    }
    if let Some(key) = &cmd.idempotency_key {
        if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(ApplyError::Invalid(format!(
                "idempotency key must be 1..={MAX_IDEMPOTENCY_KEY_LEN} bytes"
            )));
        }
        if let Some((_, result)) = state.idempotency.iter().find(|(k, _)| k == key) {
            return Ok(Applied {
                revision: state.revision,
                result: result.clone(),
                changes: Vec::new(),
                deduplicated: true,
            });
        }
    }
    let revision = state
        .revision
        .0
        .checked_add(1)
        .map(Revision)
        .ok_or_else(|| ApplyError::Invalid("revision space exhausted".into()))?;

    let mut cx = Ctx {
        version: cmd.version,
        at_ms: cmd.at_ms,
        revision,
        touched: BTreeSet::new(),
        events: Vec::new(),
    };
    let result = dispatch(state, &mut cx, &cmd.command)?;

    // From here on nothing can fail: the command is applied.
    state.revision = revision;
    if let Some(key) = &cmd.idempotency_key {
        state.idempotency.push_back((key.clone(), result.clone()));
        while state.idempotency.len() > MAX_IDEMPOTENCY_KEYS {
            state.idempotency.pop_front();
        }
    }
    let changes = cx.finish(state);
    Ok(Applied {
        revision,
        result,
        changes,
        deduplicated: false,
    })
}

fn dispatch(
    state: &mut ClusterState,
    cx: &mut Ctx,
    command: &Command,
) -> Result<CommandResult, ApplyError> {
    match command {
        Command::RegisterNode { name, report } => nodes::register(state, cx, name, report),
        Command::ReportNode { node, report } => nodes::report(state, cx, *node, report),
        Command::SetLiveness { changes } => nodes::set_liveness(state, cx, changes),
        Command::Cordon { node, cordoned } => nodes::cordon(state, cx, *node, *cordoned),
        Command::Drain { node } => nodes::drain(state, cx, *node),
        Command::SetTaints { node, taints } => nodes::set_taints(state, cx, *node, taints),
        Command::RemoveNode { node } => nodes::remove(state, cx, *node),
        Command::CreateWorkload {
            namespace,
            name,
            labels,
            spec,
        } => workloads::create(state, cx, namespace, name, labels, spec),
        Command::UpdateWorkload {
            workload,
            expected_generation,
            spec,
        } => workloads::update(state, cx, *workload, *expected_generation, spec),
        Command::ScaleWorkload { workload, replicas } => {
            workloads::scale(state, cx, *workload, *replicas)
        }
        Command::PauseRollout { workload, paused } => {
            workloads::pause(state, cx, *workload, *paused)
        }
        Command::DeleteWorkload { workload } => workloads::delete(state, cx, *workload),
        Command::AssignReplicas {
            workload,
            generation,
            assignments,
        } => replicas::assign(state, cx, *workload, *generation, assignments),
        Command::UpdateReplica {
            replica,
            phase,
            ready,
            restarts,
            address,
            message,
        } => replicas::update(
            state,
            cx,
            replicas::ReplicaReport {
                id: *replica,
                phase: *phase,
                ready: *ready,
                restarts: *restarts,
                address: address.as_deref(),
                message,
            },
        ),
        Command::UnassignReplicas { replicas } => replicas::unassign(state, cx, replicas),
        Command::PutService {
            namespace,
            name,
            spec,
        } => services::put(state, cx, namespace, name, spec),
        Command::DeleteService { namespace, name } => services::delete(state, cx, namespace, name),
        Command::CreateJoinToken { token } => tokens::create(state, cx, token),
        Command::UseJoinToken { id, secret_sha256 } => {
            tokens::use_token(state, cx, id, secret_sha256)
        }
        Command::RevokeJoinToken { id } => tokens::revoke(state, cx, id),
        Command::RegisterNodeAs { node, name, report } => {
            nodes::register_as(state, cx, *node, name, report)
        }
        Command::RevokeNode { node, reason } => nodes::revoke(state, cx, *node, reason),
        Command::EnrollNode { name, report } => nodes::enroll(state, cx, name, report),
        Command::PruneJoinTokens { now_ms } => tokens::prune(state, cx, *now_ms),
        Command::SetWorkloadStatus {
            workload,
            observed_generation,
            conditions,
        } => workloads::set_status(state, cx, *workload, *observed_generation, conditions),
        Command::RecordEvent {
            category,
            severity,
            subject,
            reason,
            message,
        } => events::record(cx, *category, *severity, subject, reason, message),
    }
}

/// An object a handler touched; its final value (or absence) becomes a [`Change`].
///
/// The derived order (kind first, then id) is the order changes are reported in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Touched {
    Node(NodeId),
    Workload(WorkloadId),
    Replica(ReplicaId),
    Service(String, String),
    JoinToken(String),
}

/// An event a handler wants recorded; stamped with revision and time at the end.
struct NewEvent {
    category: EventCategory,
    severity: Severity,
    subject: String,
    reason: String,
    message: String,
}

/// Per-command context handed to every handler.
struct Ctx {
    /// The command's format version (rules added later apply from their version on).
    version: u32,
    /// The command's wall clock.
    at_ms: u64,
    /// The revision the command gets if it is applied.
    revision: Revision,
    touched: BTreeSet<Touched>,
    events: Vec<NewEvent>,
}

impl Ctx {
    fn touch(&mut self, t: Touched) {
        self.touched.insert(t);
    }

    fn event(
        &mut self,
        category: EventCategory,
        severity: Severity,
        subject: String,
        reason: &str,
        message: String,
    ) {
        self.events.push(NewEvent {
            category,
            severity,
            subject,
            reason: reason.to_owned(),
            message,
        });
    }

    /// Appends the events to the bounded log and builds the change list from the final state.
    fn finish(self, state: &mut ClusterState) -> Vec<Change> {
        let revision = self.revision;
        let mut changes = Vec::with_capacity(self.touched.len() + self.events.len());
        for t in self.touched {
            let (kind, key, object) = match t {
                Touched::Node(id) => (
                    ObjectKind::Node,
                    id.to_string(),
                    state
                        .nodes
                        .get(&id)
                        .map(|n| Object::Node(Box::new(n.clone()))),
                ),
                Touched::Workload(id) => (
                    ObjectKind::Workload,
                    id.to_string(),
                    state
                        .workloads
                        .get(&id)
                        .map(|w| Object::Workload(Box::new(w.clone()))),
                ),
                Touched::Replica(id) => (
                    ObjectKind::Replica,
                    id.to_string(),
                    state
                        .replicas
                        .get(&id)
                        .map(|r| Object::Replica(Box::new(r.clone()))),
                ),
                Touched::Service(ns, name) => {
                    let object = state
                        .services
                        .get(&(ns.clone(), name.clone()))
                        .map(|s| Object::Service(Box::new(s.clone())));
                    (ObjectKind::Service, format!("{ns}/{name}"), object)
                }
                Touched::JoinToken(id) => {
                    let object = state
                        .join_tokens
                        .get(&id)
                        .map(|t| Object::JoinToken(Box::new(t.clone())));
                    (ObjectKind::JoinToken, id, object)
                }
            };
            changes.push(Change {
                revision,
                kind,
                key,
                object,
            });
        }
        for (index, e) in self.events.into_iter().enumerate() {
            let event = Event {
                revision,
                at_ms: self.at_ms,
                category: e.category,
                severity: e.severity,
                subject: e.subject,
                reason: e.reason,
                message: e.message,
            };
            changes.push(Change {
                revision,
                kind: ObjectKind::Event,
                key: super::event_key(revision, index),
                object: Some(Object::Event(Box::new(event.clone()))),
            });
            state.events.push_back(event);
        }
        // Evicting old events is not reported as a deletion: the log is history, not state
        // anyone mirrors, and a delete per command would double the event traffic.
        while state.events.len() > super::MAX_EVENTS {
            state.events.pop_front();
        }
        changes
    }
}

/// `NotFound` for a node.
fn node_not_found(id: NodeId) -> ApplyError {
    ApplyError::NotFound {
        kind: ObjectKind::Node,
        key: id.to_string(),
    }
}

/// `NotFound` for a workload.
fn workload_not_found(id: WorkloadId) -> ApplyError {
    ApplyError::NotFound {
        kind: ObjectKind::Workload,
        key: id.to_string(),
    }
}

/// Rejects names that are not DNS-1123 labels, naming the field.
fn check_label(field: &str, value: &str) -> Result<(), ApplyError> {
    crate::ids::validate_dns_label(value).map_err(|e| ApplyError::Invalid(format!("{field}: {e}")))
}
