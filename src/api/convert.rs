//! Cluster-state types as API messages. Enums travel as their Debug names (`Ready`, `Running`),
//! whole objects also as their serde JSON form.

use cloudless_core::event::Event;
use cloudless_core::node::Node;
use cloudless_core::replica::Replica;
use cloudless_core::resources::Resources;
use cloudless_core::state::{Change, ClusterState, JoinTokenRecord, Object};
use cloudless_core::workload::{Condition, Workload};

use super::pb;

fn json<T: serde::Serialize>(v: &T) -> String {
    // Serializing cluster-state types cannot fail (no non-string map keys in these objects);
    // an empty string would show if it ever did.
    serde_json::to_string(v).unwrap_or_default()
}

fn debug_name<T: std::fmt::Debug>(v: &T) -> String {
    format!("{v:?}")
}

pub(crate) fn resources(r: &Resources) -> pb::Resources {
    pb::Resources {
        cpu_millis: r.cpu_millis,
        memory_mib: r.memory_mib,
        storage_gib: r.storage_gib,
        storage_iops: debug_name(&r.storage_iops),
        egress_mbps: r.egress_mbps,
        gpus: r.gpus,
    }
}

pub(crate) fn condition(c: &Condition) -> pb::Condition {
    pb::Condition {
        kind: debug_name(&c.kind),
        status: if c.status { "True" } else { "False" }.to_owned(),
        reason: c.reason.clone(),
        message: c.message.clone(),
        since_ms: c.since_ms,
    }
}

pub(crate) fn workload(w: &Workload) -> pb::Workload {
    pb::Workload {
        id: w.id.get(),
        namespace: w.namespace.clone(),
        name: w.name.clone(),
        labels: w.labels.clone().into_iter().collect(),
        image: w.spec.image.clone(),
        replicas: w.spec.replicas,
        generation: w.generation.get(),
        observed_generation: w.status.observed_generation.get(),
        assigned: w.status.assigned,
        ready: w.status.ready,
        available: w.status.available,
        paused: w.paused,
        created_at_ms: w.created_at_ms,
        conditions: w.status.conditions.iter().map(condition).collect(),
        workload_json: json(w),
    }
}

pub(crate) fn replica(r: &Replica) -> pb::Replica {
    pb::Replica {
        id: r.id.get(),
        node: r.node.get(),
        generation: r.generation.get(),
        phase: debug_name(&r.phase),
        ready: r.ready,
        restarts: r.restarts,
        address: r.address.clone().unwrap_or_default(),
        message: r.message.clone(),
    }
}

pub(crate) fn node(state: &ClusterState, n: &Node) -> pb::Node {
    let s = n.schedulability;
    let schedulability = if s.draining {
        "draining"
    } else if s.cordoned {
        "cordoned"
    } else {
        "schedulable"
    };
    let replicas = state
        .replicas_on(n.id)
        .filter(|r| !r.phase.is_terminal())
        .count();
    pb::Node {
        id: n.id.get(),
        name: n.name.as_str().to_owned(),
        liveness: debug_name(&n.liveness),
        schedulability: schedulability.to_owned(),
        region: n.report.region.clone(),
        zone: n.report.zone.clone(),
        labels: n.report.labels.clone().into_iter().collect(),
        architecture: n.report.platform.architecture.clone(),
        os: n.report.platform.os.clone(),
        capacity: Some(resources(&n.report.capacity)),
        allocatable: Some(resources(&n.report.allocatable)),
        reserved: Some(resources(
            &state.reserved.get(&n.id).copied().unwrap_or_default(),
        )),
        replicas: u32::try_from(replicas).unwrap_or(u32::MAX),
        registered_at_ms: n.registered_at_ms,
        last_seen_ms: n.last_seen_ms,
        node_json: json(n),
    }
}

pub(crate) fn event(e: &Event) -> pb::Event {
    pb::Event {
        revision: e.revision.0,
        at_ms: e.at_ms,
        category: debug_name(&e.category),
        severity: debug_name(&e.severity),
        subject: e.subject.clone(),
        reason: e.reason.clone(),
        message: e.message.clone(),
    }
}

pub(crate) fn join_token(t: &JoinTokenRecord) -> pb::JoinToken {
    pb::JoinToken {
        id: t.id.clone(),
        role: t.role.clone(),
        expires_at_ms: t.expires_at_ms,
        max_uses: t.max_uses.unwrap_or(0),
        uses: t.uses,
        revoked: t.revoked,
        created_at_ms: t.created_at_ms,
    }
}

pub(crate) fn change(c: &Change) -> pb::Change {
    let kind = serde_json::to_value(c.kind)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let (object_json, event) = match &c.object {
        None => (String::new(), None),
        Some(Object::Node(n)) => (json(n), None),
        Some(Object::Workload(w)) => (json(w), None),
        Some(Object::Replica(r)) => (json(r), None),
        Some(Object::Service(s)) => (json(s), None),
        Some(Object::JoinToken(t)) => (json(t), None),
        Some(Object::Event(e)) => (json(e), Some(self::event(e))),
    };
    pb::Change {
        revision: c.revision.0,
        kind,
        key: c.key.clone(),
        deleted: c.object.is_none(),
        object_json,
        event,
    }
}
