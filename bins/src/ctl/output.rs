//! Output: the stable JSON views (documented in `docs/cli.md`), YAML of the same documents,
//! and aligned tables.

use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};

use cloudless::api::pb;
use serde::Serialize;

use super::args::OutputFormat;
use super::error::{CtlError, CtlResult};

/// Prints a document as JSON or YAML.
pub(crate) fn print_doc<T: Serialize>(format: OutputFormat, doc: &T) -> CtlResult {
    let text = match format {
        OutputFormat::Yaml => serde_saphyr::to_string(doc)
            .map_err(|e| CtlError::general(format!("encoding YAML: {e}")))?,
        _ => {
            let mut s = serde_json::to_string_pretty(doc)
                .map_err(|e| CtlError::general(format!("encoding JSON: {e}")))?;
            s.push('\n');
            s
        }
    };
    print!("{text}");
    Ok(())
}

/// A list document: `{"kind": "<Kind>List", "items": [...]}`.
#[derive(Debug, Serialize)]
pub(crate) struct List<T> {
    pub(crate) kind: String,
    pub(crate) items: Vec<T>,
}

impl<T> List<T> {
    pub(crate) fn new(kind: &str, items: Vec<T>) -> Self {
        Self {
            kind: format!("{kind}List"),
            items,
        }
    }
}

/// A table: headers and rows, printed with columns aligned.
pub(crate) struct Table {
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(headers: &[&str]) -> Self {
        Self {
            rows: vec![headers.iter().map(|h| (*h).to_owned()).collect()],
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn render(&self) -> String {
        let cols = self.rows.iter().map(Vec::len).max().unwrap_or(0);
        let widths: Vec<usize> = (0..cols)
            .map(|c| {
                self.rows
                    .iter()
                    .map(|r| r.get(c).map_or(0, |s| s.chars().count()))
                    .max()
                    .unwrap_or(0)
            })
            .collect();
        let mut out = String::new();
        for r in &self.rows {
            let mut line = String::new();
            for (c, cell) in r.iter().enumerate() {
                if c + 1 == r.len() {
                    line.push_str(cell);
                } else {
                    let pad = widths[c].saturating_sub(cell.chars().count()) + 3;
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    pub(crate) fn print(&self) {
        print!("{}", self.render());
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `45s`, `12m`, `3h`, `5d` since `at_ms` (`-` when unknown).
pub(crate) fn age(at_ms: u64) -> String {
    if at_ms == 0 {
        return "-".into();
    }
    let s = now_ms().saturating_sub(at_ms) / 1000;
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        7200..=172_799 => format!("{}h", s / 3600),
        _ => format!("{}d", s / 86_400),
    }
}

/// `a=b,c=d` (`<none>` when empty).
pub(crate) fn labels(l: &BTreeMap<String, String>) -> String {
    if l.is_empty() {
        return "<none>".into();
    }
    l.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

// ---- stable views ----

/// A workload condition.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ConditionView {
    #[serde(rename = "type")]
    pub(crate) kind: String,
    pub(crate) status: String,
    pub(crate) reason: String,
    pub(crate) message: String,
    pub(crate) since_ms: u64,
}

impl From<&pb::Condition> for ConditionView {
    fn from(c: &pb::Condition) -> Self {
        Self {
            kind: c.kind.clone(),
            status: c.status.clone(),
            reason: c.reason.clone(),
            message: c.message.clone(),
            since_ms: c.since_ms,
        }
    }
}

/// A workload.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct WorkloadView {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) id: u64,
    pub(crate) image: String,
    pub(crate) replicas: u32,
    pub(crate) assigned: u32,
    pub(crate) ready: u32,
    pub(crate) available: u32,
    pub(crate) generation: u64,
    pub(crate) observed_generation: u64,
    pub(crate) paused: bool,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) created_at_ms: u64,
    pub(crate) conditions: Vec<ConditionView>,
    /// The full spec in manifest form (`null` if the server sent none).
    pub(crate) spec: serde_json::Value,
}

impl From<&pb::Workload> for WorkloadView {
    fn from(w: &pb::Workload) -> Self {
        let spec = serde_json::from_str::<serde_json::Value>(&w.workload_json)
            .ok()
            .and_then(|v| v.get("spec").cloned())
            .unwrap_or(serde_json::Value::Null);
        Self {
            namespace: w.namespace.clone(),
            name: w.name.clone(),
            id: w.id,
            image: w.image.clone(),
            replicas: w.replicas,
            assigned: w.assigned,
            ready: w.ready,
            available: w.available,
            generation: w.generation,
            observed_generation: w.observed_generation,
            paused: w.paused,
            labels: w.labels.clone().into_iter().collect(),
            created_at_ms: w.created_at_ms,
            conditions: w.conditions.iter().map(ConditionView::from).collect(),
            spec,
        }
    }
}

/// Resources in manifest units.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResourcesView {
    pub(crate) cpu_millis: u64,
    pub(crate) memory_mib: u64,
    pub(crate) storage_gib: u64,
    pub(crate) storage_iops: String,
    pub(crate) egress_mbps: u64,
    pub(crate) gpus: u32,
}

impl From<Option<&pb::Resources>> for ResourcesView {
    fn from(r: Option<&pb::Resources>) -> Self {
        r.map(|r| Self {
            cpu_millis: r.cpu_millis,
            memory_mib: r.memory_mib,
            storage_gib: r.storage_gib,
            storage_iops: r.storage_iops.clone(),
            egress_mbps: r.egress_mbps,
            gpus: r.gpus,
        })
        .unwrap_or_default()
    }
}

/// A node.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct NodeView {
    pub(crate) name: String,
    pub(crate) id: u64,
    pub(crate) liveness: String,
    pub(crate) schedulability: String,
    pub(crate) region: String,
    pub(crate) zone: String,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) architecture: String,
    pub(crate) os: String,
    pub(crate) capacity: ResourcesView,
    pub(crate) allocatable: ResourcesView,
    pub(crate) reserved: ResourcesView,
    pub(crate) replicas: u32,
    pub(crate) registered_at_ms: u64,
    pub(crate) last_seen_ms: u64,
}

impl From<&pb::Node> for NodeView {
    fn from(n: &pb::Node) -> Self {
        Self {
            name: n.name.clone(),
            id: n.id,
            liveness: n.liveness.clone(),
            schedulability: n.schedulability.clone(),
            region: n.region.clone(),
            zone: n.zone.clone(),
            labels: n.labels.clone().into_iter().collect(),
            architecture: n.architecture.clone(),
            os: n.os.clone(),
            capacity: n.capacity.as_ref().into(),
            allocatable: n.allocatable.as_ref().into(),
            reserved: n.reserved.as_ref().into(),
            replicas: n.replicas,
            registered_at_ms: n.registered_at_ms,
            last_seen_ms: n.last_seen_ms,
        }
    }
}

/// One replica in a rollout.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReplicaView {
    pub(crate) id: u64,
    pub(crate) node: u64,
    pub(crate) generation: u64,
    pub(crate) phase: String,
    pub(crate) ready: bool,
    pub(crate) restarts: u32,
    pub(crate) address: String,
    pub(crate) message: String,
}

/// A rollout.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RolloutView {
    pub(crate) namespace: String,
    pub(crate) name: String,
    pub(crate) generation: u64,
    pub(crate) observed_generation: u64,
    pub(crate) desired: u32,
    pub(crate) updated: u32,
    pub(crate) ready: u32,
    pub(crate) available: u32,
    pub(crate) paused: bool,
    pub(crate) complete: bool,
    pub(crate) replicas: Vec<ReplicaView>,
    pub(crate) conditions: Vec<ConditionView>,
}

impl From<&pb::RolloutStatusResponse> for RolloutView {
    fn from(r: &pb::RolloutStatusResponse) -> Self {
        let (namespace, name) = r
            .workload
            .as_ref()
            .map(|w| (w.namespace.clone(), w.name.clone()))
            .unwrap_or_default();
        Self {
            namespace,
            name,
            generation: r.generation,
            observed_generation: r.observed_generation,
            desired: r.desired,
            updated: r.updated,
            ready: r.ready,
            available: r.available,
            paused: r.paused,
            complete: r.complete,
            replicas: r
                .replicas
                .iter()
                .map(|p| ReplicaView {
                    id: p.id,
                    node: p.node,
                    generation: p.generation,
                    phase: p.phase.clone(),
                    ready: p.ready,
                    restarts: p.restarts,
                    address: p.address.clone(),
                    message: p.message.clone(),
                })
                .collect(),
            conditions: r.conditions.iter().map(ConditionView::from).collect(),
        }
    }
}

/// A cluster event.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct EventView {
    pub(crate) revision: u64,
    pub(crate) at_ms: u64,
    pub(crate) category: String,
    pub(crate) severity: String,
    pub(crate) subject: String,
    pub(crate) reason: String,
    pub(crate) message: String,
}

impl From<&pb::Event> for EventView {
    fn from(e: &pb::Event) -> Self {
        Self {
            revision: e.revision,
            at_ms: e.at_ms,
            category: e.category.clone(),
            severity: e.severity.clone(),
            subject: e.subject.clone(),
            reason: e.reason.clone(),
            message: e.message.clone(),
        }
    }
}

/// One change of `event watch`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ChangeView {
    pub(crate) revision: u64,
    pub(crate) kind: String,
    pub(crate) key: String,
    pub(crate) deleted: bool,
    pub(crate) object: serde_json::Value,
    pub(crate) event: Option<EventView>,
}

impl From<&pb::Change> for ChangeView {
    fn from(c: &pb::Change) -> Self {
        Self {
            revision: c.revision,
            kind: c.kind.clone(),
            key: c.key.clone(),
            deleted: c.deleted,
            object: serde_json::from_str(&c.object_json).unwrap_or(serde_json::Value::Null),
            event: c.event.as_ref().map(EventView::from),
        }
    }
}

/// A join token record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct TokenView {
    pub(crate) id: String,
    pub(crate) role: String,
    pub(crate) expires_at_ms: u64,
    pub(crate) max_uses: u32,
    pub(crate) uses: u32,
    pub(crate) revoked: bool,
    pub(crate) created_at_ms: u64,
}

impl From<&pb::JoinToken> for TokenView {
    fn from(t: &pb::JoinToken) -> Self {
        Self {
            id: t.id.clone(),
            role: t.role.clone(),
            expires_at_ms: t.expires_at_ms,
            max_uses: t.max_uses,
            uses: t.uses,
            revoked: t.revoked,
            created_at_ms: t.created_at_ms,
        }
    }
}

/// One object of `apply` / `delete`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ResultView {
    pub(crate) file: String,
    pub(crate) kind: String,
    pub(crate) namespace: String,
    pub(crate) name: String,
    /// `created`, `configured`, `unchanged`, `deleted` or `notFound`.
    pub(crate) action: String,
    pub(crate) generation: u64,
}
