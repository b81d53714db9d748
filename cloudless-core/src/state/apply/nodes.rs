//! Node commands: registration, reports, liveness, cordon/drain, taints, removal.

use std::collections::BTreeSet;

use super::{ApplyError, ClusterState, CommandResult, Ctx, Touched, node_not_found, replicas};
use crate::event::{EventCategory, Severity};
use crate::ids::{NodeId, NodeName};
use crate::node::{Liveness, Node, NodeReport, Schedulability, Taint};
use crate::replica::ReplicaPhase;

fn subject(name: &NodeName) -> String {
    format!("node/{name}")
}

/// Registers a node, or re-registers an existing name.
///
/// Like a kubelet re-registering its Node object (or a Nomad client coming back with its
/// persisted node id), a known name keeps its id, taints and cordon state; only the report and
/// `last_seen` change. A node that had been declared Down or Left starts over as Joining, since
/// the failure detector has not yet seen a heartbeat from the new incarnation.
pub(super) fn register(
    state: &mut ClusterState,
    cx: &mut Ctx,
    name: &NodeName,
    report: &NodeReport,
) -> Result<CommandResult, ApplyError> {
    if let Some(id) = state.node_by_name(name.as_str()).map(|n| n.id) {
        if let Some(node) = state.nodes.get_mut(&id) {
            node.report = report.clone();
            node.last_seen_ms = cx.at_ms;
            if matches!(node.liveness, Liveness::Down | Liveness::Left) {
                node.liveness = Liveness::Joining;
            }
        }
        // Whether its replicas count as ready depends on the liveness just set.
        replicas::refresh_counters(state, cx, &BTreeSet::from([id]));
        cx.touch(Touched::Node(id));
        cx.event(
            EventCategory::Membership,
            Severity::Info,
            subject(name),
            "NodeRegistered",
            format!("node {name} re-registered as {id}"),
        );
        return Ok(CommandResult::NodeRegistered { node: id });
    }
    let id = NodeId(state.next_node_id);
    let next = state
        .next_node_id
        .checked_add(1)
        .ok_or_else(|| ApplyError::Invalid("node id space exhausted".into()))?;
    state.next_node_id = next;
    state.nodes.insert(
        id,
        Node {
            id,
            name: name.clone(),
            report: report.clone(),
            taints: Vec::new(),
            liveness: Liveness::Joining,
            schedulability: Schedulability::default(),
            registered_at_ms: cx.at_ms,
            last_seen_ms: cx.at_ms,
        },
    );
    cx.touch(Touched::Node(id));
    cx.event(
        EventCategory::Membership,
        Severity::Info,
        subject(name),
        "NodeRegistered",
        format!("node {name} registered as {id}"),
    );
    Ok(CommandResult::NodeRegistered { node: id })
}

/// Stores a fresh report. A smaller allocatable than what is reserved is accepted: existing
/// replicas keep their reservations and nothing new fits until enough are released.
pub(super) fn report(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: NodeId,
    report: &NodeReport,
) -> Result<CommandResult, ApplyError> {
    let node = state.nodes.get_mut(&id).ok_or_else(|| node_not_found(id))?;
    node.report = report.clone();
    node.last_seen_ms = cx.at_ms;
    cx.touch(Touched::Node(id));
    Ok(CommandResult::Done)
}

/// Applies a batch of liveness changes; entries that change nothing are skipped silently.
///
/// The batch is all-or-nothing: an unknown node rejects it (the failure detector drops the
/// removed node and retries), so a half-applied batch never exists.
pub(super) fn set_liveness(
    state: &mut ClusterState,
    cx: &mut Ctx,
    changes: &[(NodeId, Liveness)],
) -> Result<CommandResult, ApplyError> {
    let mut seen = BTreeSet::new();
    for (id, _) in changes {
        if !state.nodes.contains_key(id) {
            return Err(node_not_found(*id));
        }
        if !seen.insert(*id) {
            return Err(ApplyError::Invalid(format!(
                "node {id} appears twice in one liveness batch"
            )));
        }
    }
    let mut changed = BTreeSet::new();
    for (id, liveness) in changes {
        let Some(node) = state.nodes.get_mut(id) else {
            continue;
        };
        if node.liveness == *liveness {
            continue;
        }
        changed.insert(*id);
        let from = node.liveness;
        node.liveness = *liveness;
        let (reason, severity) = match liveness {
            Liveness::Joining => ("NodeJoining", Severity::Info),
            Liveness::Ready => ("NodeReady", Severity::Info),
            Liveness::Suspect => ("NodeSuspect", Severity::Warning),
            Liveness::Down => ("NodeDown", Severity::Warning),
            Liveness::Left => ("NodeLeft", Severity::Info),
        };
        let name = node.name.clone();
        cx.touch(Touched::Node(*id));
        cx.event(
            EventCategory::Membership,
            severity,
            subject(&name),
            reason,
            format!("node {name} ({id}) liveness {from:?} -> {liveness:?}"),
        );
    }
    // Replicas on a Down (or Joining, Left) node stop counting as ready; on a Ready or
    // Suspect one they count again.
    replicas::refresh_counters(state, cx, &changed);
    Ok(CommandResult::Done)
}

/// Cordons or uncordons a node. Uncordoning also ends a drain.
pub(super) fn cordon(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: NodeId,
    cordoned: bool,
) -> Result<CommandResult, ApplyError> {
    let node = state.nodes.get_mut(&id).ok_or_else(|| node_not_found(id))?;
    let wanted = if cordoned {
        Schedulability {
            cordoned: true,
            draining: node.schedulability.draining,
        }
    } else {
        Schedulability::default()
    };
    if node.schedulability != wanted {
        node.schedulability = wanted;
        let name = node.name.clone();
        let reason = if cordoned {
            "NodeCordoned"
        } else {
            "NodeUncordoned"
        };
        cx.touch(Touched::Node(id));
        cx.event(
            EventCategory::Membership,
            Severity::Info,
            subject(&name),
            reason,
            format!(
                "node {name} ({id}) {}",
                reason.trim_start_matches("Node").to_lowercase()
            ),
        );
    }
    Ok(CommandResult::Done)
}

/// Cordons a node and marks it draining. Its replicas are left as they are: the reconciler
/// replaces them elsewhere first and stops the old copies afterwards, honouring `minAvailable`
/// (stopping them here would drop services below it, as an unthrottled eviction would).
pub(super) fn drain(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: NodeId,
) -> Result<CommandResult, ApplyError> {
    let node = state.nodes.get_mut(&id).ok_or_else(|| node_not_found(id))?;
    let wanted = Schedulability {
        cordoned: true,
        draining: true,
    };
    if node.schedulability != wanted {
        node.schedulability = wanted;
        let name = node.name.clone();
        cx.touch(Touched::Node(id));
        cx.event(
            EventCategory::Membership,
            Severity::Info,
            subject(&name),
            "NodeDraining",
            format!("node {name} ({id}) is draining"),
        );
    }
    Ok(CommandResult::Done)
}

/// Replaces a node's taints.
pub(super) fn set_taints(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: NodeId,
    taints: &[Taint],
) -> Result<CommandResult, ApplyError> {
    if taints.iter().any(|t| t.key.is_empty()) {
        return Err(ApplyError::Invalid("taint key must not be empty".into()));
    }
    let node = state.nodes.get_mut(&id).ok_or_else(|| node_not_found(id))?;
    if node.taints != taints {
        node.taints = taints.to_vec();
        cx.touch(Touched::Node(id));
    }
    Ok(CommandResult::Done)
}

/// Removes a node. Its replicas that still hold reservations become Failed (releasing them)
/// and stay in the ledger, so the reconciler sees what was lost, replaces it, and unassigns
/// the failed entries. The node object is deleted: its id is never minted again, and a later
/// registration under the same name gets a new id.
pub(super) fn remove(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: NodeId,
) -> Result<CommandResult, ApplyError> {
    let name = state
        .nodes
        .get(&id)
        .map(|n| n.name.clone())
        .ok_or_else(|| node_not_found(id))?;
    let lost: Vec<_> = state
        .replicas_on(id)
        .filter(|r| r.holds_reservation())
        .cloned()
        .collect();
    let count = lost.len();
    for mut r in lost {
        r.phase = ReplicaPhase::Failed;
        r.ready = false;
        r.message = format!("node {name} ({id}) was removed");
        replicas::replace(state, cx, r);
    }
    state.nodes.remove(&id);
    state.reserved.remove(&id);
    // Anything left on the node (terminal replicas, none counting) no longer has a node.
    replicas::refresh_counters(state, cx, &BTreeSet::from([id]));
    cx.touch(Touched::Node(id));
    cx.event(
        EventCategory::Membership,
        Severity::Warning,
        subject(&name),
        "NodeRemoved",
        format!("node {name} ({id}) removed; {count} replica(s) failed"),
    );
    Ok(CommandResult::Done)
}

/// Registers a node joining for the first time; a taken name is refused (see
/// `Command::EnrollNode`).
pub(super) fn enroll(
    state: &mut ClusterState,
    cx: &mut Ctx,
    name: &NodeName,
    report: &NodeReport,
) -> Result<CommandResult, ApplyError> {
    if state.node_by_name(name.as_str()).is_some() {
        return Err(ApplyError::AlreadyExists {
            kind: crate::state::ObjectKind::Node,
            key: name.to_string(),
        });
    }
    register(state, cx, name, report)
}

/// Registers a node under an id the caller chose (see `Command::RegisterNodeAs`).
pub(super) fn register_as(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: NodeId,
    name: &NodeName,
    report: &NodeReport,
) -> Result<CommandResult, ApplyError> {
    if state.revoked_nodes.contains(&id) {
        return Err(ApplyError::NodeUnavailable {
            node: id,
            reason: "its identity is revoked".into(),
        });
    }
    if let Some(existing) = state.nodes.get(&id) {
        if existing.name != *name {
            return Err(ApplyError::Invalid(format!(
                "node {id} is registered as {}, not {name}",
                existing.name
            )));
        }
        return register(state, cx, name, report);
    }
    if id.get() < state.next_node_id {
        return Err(ApplyError::Invalid(format!(
            "node id {id} was minted before and its node removed; ids are never reused"
        )));
    }
    if state.node_by_name(name.as_str()).is_some() {
        return Err(ApplyError::AlreadyExists {
            kind: crate::state::ObjectKind::Node,
            key: name.to_string(),
        });
    }
    state.next_node_id = id
        .get()
        .checked_add(1)
        .ok_or_else(|| ApplyError::Invalid("node id space exhausted".into()))?;
    state.nodes.insert(
        id,
        Node {
            id,
            name: name.clone(),
            report: report.clone(),
            taints: Vec::new(),
            liveness: Liveness::Joining,
            schedulability: Schedulability::default(),
            registered_at_ms: cx.at_ms,
            last_seen_ms: cx.at_ms,
        },
    );
    cx.touch(Touched::Node(id));
    cx.event(
        EventCategory::Membership,
        Severity::Info,
        subject(name),
        "NodeRegistered",
        format!("node {name} registered as {id}"),
    );
    Ok(CommandResult::NodeRegistered { node: id })
}

/// Longest revocation reason accepted, in bytes.
const MAX_REVOKE_REASON_LEN: usize = 512;

/// Revokes a node's identity; removes the node if it is still present. Revoking a revoked,
/// already removed node changes nothing.
pub(super) fn revoke(
    state: &mut ClusterState,
    cx: &mut Ctx,
    id: NodeId,
    reason: &str,
) -> Result<CommandResult, ApplyError> {
    if reason.len() > MAX_REVOKE_REASON_LEN {
        return Err(ApplyError::Invalid(format!(
            "revocation reason must be at most {MAX_REVOKE_REASON_LEN} bytes"
        )));
    }
    let present = state.nodes.get(&id).map(|n| n.name.clone());
    if present.is_none() && id.get() >= state.next_node_id {
        return Err(node_not_found(id));
    }
    if present.is_none() && state.revoked_nodes.contains(&id) {
        return Ok(CommandResult::Done);
    }
    let who = match &present {
        Some(name) => {
            remove(state, cx, id)?;
            format!("node {name} ({id})")
        }
        None => format!("node {id}"),
    };
    state.revoked_nodes.insert(id);
    let subject = match &present {
        Some(name) => subject(name),
        None => format!("node/{id}"),
    };
    let why = if reason.is_empty() {
        String::new()
    } else {
        format!(": {reason}")
    };
    cx.event(
        EventCategory::Security,
        Severity::Warning,
        subject,
        "NodeRevoked",
        format!("{who} revoked{why}"),
    );
    Ok(CommandResult::Done)
}
