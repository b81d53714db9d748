//! The `Scheduler` building block and the researcher-facing `Filter` and `Scorer` plugins.
//!
//! ```text
//!  ClusterSnapshot + PlacementRequest ──▶ filters ──▶ scorers (each in [0,1]) ──▶ S = Σ wᵢ·sᵢ ──▶ select
//!                                            │
//!                                            └─ rejections counted per filter ─▶ Unplaceable
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, Revision, WorkloadId};
use crate::node::Node;
use crate::replica::{Replica, held_host_ports};
use crate::resources::Resources;
use crate::state::ClusterState;
use crate::workload::{HostPort, TopologyKey, Workload};

/// An immutable view of the cluster for one scheduling pass.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    /// Revision the snapshot was taken at.
    pub revision: Revision,
    /// Nodes by id.
    pub nodes: BTreeMap<NodeId, Node>,
    /// Reserved resources per node.
    pub reserved: BTreeMap<NodeId, Resources>,
    /// Replicas holding reservations.
    pub replicas: BTreeMap<crate::ids::ReplicaId, Replica>,
    /// Workloads by id.
    pub workloads: BTreeMap<WorkloadId, Workload>,
}

impl ClusterSnapshot {
    /// Takes a snapshot of `state`.
    pub fn from_state(state: &ClusterState) -> Self {
        Self {
            revision: state.revision,
            nodes: state.nodes.clone(),
            reserved: state.reserved.clone(),
            replicas: state
                .replicas
                .iter()
                .filter(|(_, r)| r.holds_reservation())
                .map(|(k, v)| (*k, v.clone()))
                .collect(),
            workloads: state.workloads.clone(),
        }
    }

    /// Free resources on `node`: allocatable minus reservations (zero-clamped).
    pub fn free_on(&self, node: NodeId) -> Resources {
        let Some(n) = self.nodes.get(&node) else {
            return Resources::ZERO;
        };
        let reserved = self.reserved.get(&node).copied().unwrap_or_default();
        n.report.allocatable.saturating_sub(&reserved)
    }
}

/// Ask to place `count` new replicas of a workload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementRequest {
    /// The workload (its spec and name come from the snapshot or from `workload` below).
    pub workload: Workload,
    /// How many replicas to place.
    pub count: u32,
    /// Nodes not to use (e.g. the node a replica is moving away from).
    pub exclude: Vec<NodeId>,
    /// Seed for any randomness; same snapshot + request + seed gives the same answer.
    pub seed: u64,
}

/// One chosen node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Placement {
    /// Chosen node.
    pub node: NodeId,
    /// Its final score.
    pub score: f64,
}

/// Why a replica could not be placed: how many nodes each filter rejected.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Unplaceable {
    /// Nodes considered.
    pub total_nodes: usize,
    /// Rejections per reason (e.g. "insufficient memory" -> 3120), in a stable order.
    pub rejected: BTreeMap<String, usize>,
}

impl fmt::Display for Unplaceable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0/{} nodes fit", self.total_nodes)?;
        let mut items: Vec<_> = self.rejected.iter().collect();
        // Largest counts first; ties by reason for determinism.
        items.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (i, (reason, n)) in items.iter().enumerate() {
            f.write_str(if i == 0 { ": " } else { ", " })?;
            write!(f, "{n} {reason}")?;
        }
        Ok(())
    }
}

/// The answer to a [`PlacementRequest`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlacementResult {
    /// Chosen nodes, one per placed replica.
    pub placements: Vec<Placement>,
    /// One explanation per replica that could not be placed.
    pub unplaced: Vec<Unplaceable>,
}

/// A scheduler configuration or plugin error.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The configuration is invalid (which field, what was wrong).
    #[error("invalid scheduler config: {0}")]
    InvalidConfig(String),
    /// A plugin failed.
    #[error(transparent)]
    Other(crate::BoxError),
}

/// Decides where new replicas go.
///
/// # Contract
/// - **Pure and deterministic**: the same snapshot, request and seed give the same result; no
///   I/O, no clock, no global randomness.
/// - **Never over-commits**: the placements of one call fit together on their nodes (capacity is
///   reserved as the batch is placed).
/// - `placements.len() + unplaced.len() == request.count`.
/// - Never panics, whatever the snapshot holds.
///
/// # Example
///
/// A (naive) scheduler that puts every replica on the fitting node with the most free memory;
/// `cloudless_sched::WeightedScheduler` is the real one.
///
/// ```rust
/// use cloudless_core::ids::{Generation, WorkloadId};
/// use cloudless_core::scheduler::{
///     ClusterSnapshot, Placement, PlacementRequest, PlacementResult, Scheduler, Unplaceable,
/// };
/// use cloudless_core::workload::{Workload, WorkloadSpec};
///
/// struct MostMemory;
///
/// impl Scheduler for MostMemory {
///     fn place(&self, snapshot: &ClusterSnapshot, request: &PlacementRequest) -> PlacementResult {
///         let need = request.workload.spec.resources.requests.to_resources();
///         let mut free: Vec<_> = snapshot
///             .nodes
///             .values()
///             .filter(|n| n.accepts_new_work() && !request.exclude.contains(&n.id))
///             .map(|n| (n.id, snapshot.free_on(n.id)))
///             .collect();
///         let mut result = PlacementResult::default();
///         for _ in 0..request.count {
///             // Most free memory first; ties by node id, so the answer is deterministic.
///             free.sort_by(|a, b| b.1.memory_mib.cmp(&a.1.memory_mib).then(a.0.cmp(&b.0)));
///             match free.iter_mut().find(|(_, f)| f.fits(&need)) {
///                 Some((node, f)) => {
///                     *f = f.saturating_sub(&need);
///                     result.placements.push(Placement { node: *node, score: 1.0 });
///                 }
///                 None => result.unplaced.push(Unplaceable {
///                     total_nodes: snapshot.nodes.len(),
///                     ..Unplaceable::default()
///                 }),
///             }
///         }
///         result
///     }
/// }
///
/// // Nothing fits in an empty cluster: one explanation per replica.
/// let workload = Workload {
///     id: WorkloadId(1),
///     namespace: "shop".into(),
///     name: "web".into(),
///     labels: Default::default(),
///     spec: WorkloadSpec::new("nginx:1.27"),
///     generation: Generation(1),
///     created_at_ms: 0,
///     status: Default::default(),
///     paused: false,
/// };
/// let request = PlacementRequest { workload, count: 2, exclude: Vec::new(), seed: 7 };
/// let result = MostMemory.place(&ClusterSnapshot::default(), &request);
/// assert_eq!((result.placements.len(), result.unplaced.len()), (0, 2));
/// assert_eq!(result.unplaced[0].to_string(), "0/0 nodes fit");
/// ```
pub trait Scheduler: Send + Sync + 'static {
    /// Places `request.count` replicas.
    fn place(&self, snapshot: &ClusterSnapshot, request: &PlacementRequest) -> PlacementResult;
}

/// What a filter or scorer sees about the request while a batch is being placed.
#[derive(Debug, Clone, Copy)]
pub struct PlacementContext<'a> {
    /// The snapshot.
    pub snapshot: &'a ClusterSnapshot,
    /// The request.
    pub request: &'a PlacementRequest,
    /// Nodes already chosen earlier in this batch, in order.
    pub batch: &'a [NodeId],
    /// Free resources of the nodes this batch has placed on so far (after its reservations);
    /// every other node is as in the snapshot. Use [`PlacementContext::free_on`].
    pub batch_free: &'a BTreeMap<NodeId, Resources>,
    /// Free resources of the node being checked or scored: `free_on(node.id)`, precomputed so
    /// per-node plugins avoid a map lookup on the hot path.
    pub node_free: Resources,
    /// Replicas per topology domain of the workloads the request relates to (itself and the
    /// workloads its affinity terms name), existing reservations plus the batch so far. See
    /// [`TopologyCounts::for_request`] for when existing replicas are counted.
    pub topology: &'a TopologyCounts,
    /// Host ports already published per node among those the request publishes, existing
    /// reservations plus the batch so far (empty when the request publishes none). See
    /// [`HostPortsInUse::for_request`].
    pub host_ports: &'a HostPortsInUse,
}

impl PlacementContext<'_> {
    /// Free resources on `node` after the batch so far (zero for an unknown node).
    pub fn free_on(&self, node: NodeId) -> Resources {
        match self.batch_free.get(&node) {
            Some(free) => *free,
            None => self.snapshot.free_on(node),
        }
    }
}

/// How a filter's or scorer's answer for one node can change while a batch is being placed.
///
/// The pipeline evaluates every node once per request, then after each placement re-evaluates
/// only the nodes the declaration says may have changed. Declaring too narrow a scope gives
/// stale answers; [`Volatility::Any`] (the default) is always correct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Volatility {
    /// Depends only on the snapshot, the request and the node: never changes within a batch.
    Fixed,
    /// Changes only when a replica of the batch lands on this very node (e.g. free resources).
    OnNode,
    /// Changes when a replica of the batch lands in the node's domain of this key.
    InDomain(TopologyKey),
    /// May change after any placement.
    Any,
}

impl Volatility {
    /// The wider of two scopes (`Fixed` < `OnNode` = `InDomain(Node)` < zone < region < `Any`).
    pub fn widen(self, other: Volatility) -> Volatility {
        fn rank(v: Volatility) -> u8 {
            match v {
                Volatility::Fixed => 0,
                Volatility::OnNode | Volatility::InDomain(TopologyKey::Node) => 1,
                Volatility::InDomain(TopologyKey::Zone) => 2,
                Volatility::InDomain(TopologyKey::Region) => 3,
                Volatility::Any => 4,
            }
        }
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }
}

/// Replica counts of a few workloads per topology domain (node, zone within region, region).
///
/// Built per request for the workloads it names, so filters and scorers answer affinity and
/// spread questions with a map lookup instead of a scan of the replica ledger.
#[derive(Debug, Clone, Default)]
pub struct TopologyCounts {
    by_workload: BTreeMap<String, DomainCounts>,
}

/// Counts of one workload's replicas per domain.
#[derive(Debug, Clone, Default)]
struct DomainCounts {
    total: u32,
    nodes: BTreeMap<NodeId, u32>,
    regions: BTreeMap<String, RegionCounts>,
}

#[derive(Debug, Clone, Default)]
struct RegionCounts {
    total: u32,
    zones: BTreeMap<String, u32>,
}

impl TopologyCounts {
    /// Counts the replicas holding reservations in `snapshot` of the request's own workload and of
    /// every workload its affinity and anti-affinity terms name (same namespace, by name).
    ///
    /// Only when the request's placement uses them — a spread constraint or any workload
    /// affinity or anti-affinity term; otherwise the counts start empty (and hold only the
    /// batch), because scanning the replica ledger would dominate a decision in a large cluster.
    pub fn for_request(snapshot: &ClusterSnapshot, request: &PlacementRequest) -> Self {
        let own = &request.workload;
        let placement = &own.spec.placement;
        let uses_counts = placement.spread.is_some()
            || [
                &placement.workload_affinity,
                &placement.workload_anti_affinity,
            ]
            .iter()
            .any(|t| !t.required.is_empty() || !t.preferred.is_empty());
        if !uses_counts {
            return Self::default();
        }
        let mut names: Vec<&str> = vec![own.name.as_str()];
        for terms in [
            &placement.workload_affinity,
            &placement.workload_anti_affinity,
        ] {
            names.extend(terms.required.iter().map(|t| t.workload.as_str()));
            names.extend(terms.preferred.iter().map(|p| p.term.workload.as_str()));
        }
        let mut out = Self::default();
        for name in &names {
            out.by_workload.entry((*name).to_owned()).or_default();
        }
        // Which workload ids count under which name: the request's own id always counts as
        // itself, other workloads of the namespace by their name.
        let mut ids: BTreeMap<WorkloadId, &str> = BTreeMap::new();
        for (id, w) in &snapshot.workloads {
            if w.namespace == own.namespace && names.contains(&w.name.as_str()) {
                ids.insert(*id, w.name.as_str());
            }
        }
        ids.insert(own.id, own.name.as_str());
        for replica in snapshot.replicas.values() {
            if !replica.holds_reservation() {
                continue;
            }
            let (Some(name), Some(node)) = (
                ids.get(&replica.workload),
                snapshot.nodes.get(&replica.node),
            ) else {
                continue;
            };
            out.record(name, node);
        }
        out
    }

    /// Adds one replica of `workload` on `node` (the pipeline calls this as the batch is placed).
    pub fn record(&mut self, workload: &str, node: &Node) {
        // Look up before inserting: the batch records one replica per placement, and the keys
        // almost always exist already, so no string is allocated on the hot path.
        if !self.by_workload.contains_key(workload) {
            self.by_workload
                .insert(workload.to_owned(), DomainCounts::default());
        }
        let Some(counts) = self.by_workload.get_mut(workload) else {
            return;
        };
        counts.total = counts.total.saturating_add(1);
        let on_node = counts.nodes.entry(node.id).or_default();
        *on_node = on_node.saturating_add(1);
        if !counts.regions.contains_key(&node.report.region) {
            counts
                .regions
                .insert(node.report.region.clone(), RegionCounts::default());
        }
        if let Some(region) = counts.regions.get_mut(&node.report.region) {
            region.total = region.total.saturating_add(1);
            match region.zones.get_mut(&node.report.zone) {
                Some(n) => *n = n.saturating_add(1),
                None => {
                    region.zones.insert(node.report.zone.clone(), 1);
                }
            }
        }
    }

    /// Replicas of `workload` in `node`'s domain of `key` (0 for a workload not counted).
    pub fn count(&self, workload: &str, key: TopologyKey, node: &Node) -> u32 {
        let Some(counts) = self.by_workload.get(workload) else {
            return 0;
        };
        match key {
            TopologyKey::Node => counts.nodes.get(&node.id).copied().unwrap_or(0),
            TopologyKey::Region => counts
                .regions
                .get(&node.report.region)
                .map_or(0, |r| r.total),
            TopologyKey::Zone => counts
                .regions
                .get(&node.report.region)
                .and_then(|r| r.zones.get(&node.report.zone))
                .copied()
                .unwrap_or(0),
        }
    }

    /// Replicas of `workload` in the whole cluster.
    pub fn total(&self, workload: &str) -> u32 {
        self.by_workload.get(workload).map_or(0, |c| c.total)
    }
}

/// Host ports already published per node, among the `(hostPort, protocol)` pairs one request
/// publishes: by replicas holding reservations (of any workload, the request's own included)
/// and by the replicas the batch has placed so far.
///
/// Built per request so the host-port filter answers with a map lookup instead of a scan of
/// the replica ledger; a request publishing no host port (the common case) gets an empty
/// index without scanning or allocating anything.
///
/// ```
/// use cloudless_core::ids::NodeId;
/// use cloudless_core::scheduler::HostPortsInUse;
/// use cloudless_core::workload::{HostPort, Protocol};
///
/// let mut idx = HostPortsInUse::new(vec![HostPort { port: 8080, protocol: Protocol::Tcp }]);
/// assert_eq!(idx.conflict(NodeId(1)), None);
/// idx.record(NodeId(1)); // a replica of the batch lands on node 1
/// assert_eq!(idx.conflict(NodeId(1)).map(|p| p.to_string()).as_deref(), Some("8080/TCP"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct HostPortsInUse {
    /// The request's host ports, deduplicated, in declaration order.
    wanted: Vec<HostPort>,
    /// Per node, which of `wanted` are taken there.
    held: BTreeMap<NodeId, Vec<HostPort>>,
}

impl HostPortsInUse {
    /// An index for a request publishing `wanted`, with nothing held yet (duplicates are
    /// dropped; the order is kept).
    pub fn new(wanted: impl IntoIterator<Item = HostPort>) -> Self {
        let mut out = Self::default();
        for p in wanted {
            if !out.wanted.contains(&p) {
                out.wanted.push(p);
            }
        }
        out
    }

    /// The ports of `request` held on each node of `snapshot` by replicas holding a
    /// reservation. A replica counts with the ports recorded when it was assigned; one assigned
    /// before ports were recorded counts with its workload's current spec (replicas of the
    /// request's own workload id: with the request's spec).
    /// One pass over the workloads and one over the replicas, only when the request publishes
    /// a host port.
    pub fn for_request(snapshot: &ClusterSnapshot, request: &PlacementRequest) -> Self {
        let own = &request.workload;
        let mut out = Self::new(own.spec.host_ports());
        if out.wanted.is_empty() {
            return out;
        }
        let held = held_host_ports(
            &snapshot.replicas,
            &out.wanted,
            |_| true,
            |id| {
                if id == own.id {
                    Some(&own.spec)
                } else {
                    snapshot.workloads.get(&id).map(|w| &w.spec)
                }
            },
        );
        out.held = held
            .into_iter()
            .map(|(node, ports)| (node, ports.into_iter().map(|(p, _)| p).collect()))
            .collect();
        out
    }

    /// The request's host ports, deduplicated, in declaration order (empty: nothing to check).
    pub fn wanted(&self) -> &[HostPort] {
        &self.wanted
    }

    /// A replica of the request lands on `node`: its ports are taken there (the pipeline calls
    /// this as the batch is placed).
    pub fn record(&mut self, node: NodeId) {
        if self.wanted.is_empty() {
            return;
        }
        let on_node = self.held.entry(node).or_default();
        for p in &self.wanted {
            if !on_node.contains(p) {
                on_node.push(*p);
            }
        }
    }

    /// The first of the request's ports (in declaration order) already taken on `node`.
    pub fn conflict(&self, node: NodeId) -> Option<HostPort> {
        let held = self.held.get(&node)?;
        self.wanted.iter().copied().find(|p| held.contains(p))
    }
}

/// A hard constraint: may this replica go on this node?
///
/// # Contract
/// Pure, deterministic, no panics. `Err(reason)` gives a short, stable reason used for counting
/// (e.g. "insufficient memory"), so rejections can be summed per reason.
///
/// # Example
///
/// A filter that keeps replicas off battery-powered nodes; register it with
/// `cloudless_sched::WeightedScheduler::builder().with_filter(...)`.
///
/// ```rust
/// use cloudless_core::node::{Node, PowerSource};
/// use cloudless_core::scheduler::{Filter, PlacementContext, PlacementRequest, Volatility};
///
/// struct MainsPowerOnly;
///
/// impl Filter for MainsPowerOnly {
///     fn name(&self) -> &str {
///         "mains_power_only"
///     }
///     fn check(&self, _ctx: &PlacementContext<'_>, node: &Node) -> Result<(), String> {
///         match node.report.power {
///             PowerSource::Battery { .. } => Err("on battery".to_owned()),
///             _ => Ok(()),
///         }
///     }
///     // The answer depends on the node alone, so the pipeline need not re-check it
///     // after each placement of a batch.
///     fn volatility(&self, _request: &PlacementRequest) -> Volatility {
///         Volatility::Fixed
///     }
/// }
/// # let _ = MainsPowerOnly;
/// ```
pub trait Filter: Send + Sync + 'static {
    /// Stable name, e.g. `resource_fit`.
    fn name(&self) -> &str;
    /// `Ok(())` if the node is feasible, else a short reason.
    fn check(&self, ctx: &PlacementContext<'_>, node: &Node) -> Result<(), String>;
    /// How the answer can change while a batch of `request` is placed; [`Volatility::Any`]
    /// (always correct) unless overridden.
    fn volatility(&self, request: &PlacementRequest) -> Volatility {
        let _ = request;
        Volatility::Any
    }
}

/// A soft preference: how good is this node for the replica?
///
/// # Contract
/// Pure, deterministic, no panics; returns a value in `[0, 1]` (values outside, and NaN, are
/// clamped to the range / treated as 0 by the pipeline). Higher is better, except for scorers
/// configured with a negative weight (penalties).
///
/// # Example
///
/// Prefer nodes with the most free CPU left after the batch so far:
///
/// ```rust
/// use cloudless_core::node::Node;
/// use cloudless_core::scheduler::{PlacementContext, Scorer};
///
/// struct MostFreeCpu;
///
/// impl Scorer for MostFreeCpu {
///     fn name(&self) -> &str {
///         "most_free_cpu"
///     }
///     fn score(&self, ctx: &PlacementContext<'_>, node: &Node) -> f64 {
///         let total = node.report.allocatable.cpu_millis;
///         if total == 0 {
///             return 0.0;
///         }
///         ctx.node_free.cpu_millis as f64 / total as f64
///     }
/// }
/// # let _ = MostFreeCpu;
/// ```
pub trait Scorer: Send + Sync + 'static {
    /// Stable name, e.g. `locality`.
    fn name(&self) -> &str;
    /// A score in `[0, 1]`.
    fn score(&self, ctx: &PlacementContext<'_>, node: &Node) -> f64;
    /// How the answer can change while a batch of `request` is placed; [`Volatility::Any`]
    /// (always correct) unless overridden.
    fn volatility(&self, request: &PlacementRequest) -> Volatility {
        let _ = request;
        Volatility::Any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{Generation, NodeName, ReplicaId};
    use crate::node::{Liveness, NodeReport, Platform};
    use crate::replica::ReplicaPhase;
    use crate::workload::{SpreadConstraint, WorkloadSpec, WorkloadStatus};

    fn node(id: u64, region: &str, zone: &str) -> Node {
        Node {
            id: NodeId(id),
            name: NodeName::new(format!("n{id}")).unwrap(),
            report: NodeReport {
                platform: Platform::linux_amd64(),
                region: region.into(),
                zone: zone.into(),
                labels: BTreeMap::new(),
                capacity: Resources::ZERO,
                allocatable: Resources::ZERO,
                power: Default::default(),
                reliability: Default::default(),
            },
            taints: Vec::new(),
            liveness: Liveness::Ready,
            schedulability: Default::default(),
            registered_at_ms: 0,
            last_seen_ms: 0,
        }
    }

    #[test]
    fn topology_counts_per_domain_only_when_the_request_uses_them() {
        let mut snap = ClusterSnapshot::default();
        for n in [
            node(1, "eu", "a"),
            node(2, "eu", "a"),
            node(3, "eu", "b"),
            node(4, "us", "a"),
        ] {
            snap.nodes.insert(n.id, n);
        }
        let mut spec = WorkloadSpec::new("img");
        spec.placement.spread = Some(SpreadConstraint {
            topology_key: TopologyKey::Zone,
            max_skew: 1,
        });
        let w = Workload {
            id: WorkloadId(1),
            namespace: "default".into(),
            name: "web".into(),
            labels: BTreeMap::new(),
            spec,
            generation: Generation(1),
            created_at_ms: 0,
            status: WorkloadStatus::default(),
            paused: false,
        };
        for (r, n, phase) in [
            (1, 1, ReplicaPhase::Running),
            (2, 2, ReplicaPhase::Pending),
            (3, 3, ReplicaPhase::Failed),
            (4, 99, ReplicaPhase::Running),
        ] {
            snap.replicas.insert(
                ReplicaId(r),
                Replica {
                    id: ReplicaId(r),
                    workload: w.id,
                    generation: Generation(1),
                    node: NodeId(n),
                    resources: Resources::ZERO,
                    phase,
                    ready: true,
                    restarts: 0,
                    address: None,
                    assigned_at_ms: 0,
                    message: String::new(),
                    host_ports: None,
                },
            );
        }
        let mut req = PlacementRequest {
            workload: w,
            count: 1,
            exclude: Vec::new(),
            seed: 0,
        };
        let mut t = TopologyCounts::for_request(&snap, &req);
        // The failed replica holds nothing and the one on an unknown node is skipped.
        assert_eq!(t.total("web"), 2);
        assert_eq!(
            t.count("web", TopologyKey::Node, &snap.nodes[&NodeId(1)]),
            1
        );
        assert_eq!(
            t.count("web", TopologyKey::Zone, &snap.nodes[&NodeId(2)]),
            2
        );
        assert_eq!(
            t.count("web", TopologyKey::Zone, &snap.nodes[&NodeId(4)]),
            0
        );
        assert_eq!(
            t.count("web", TopologyKey::Region, &snap.nodes[&NodeId(3)]),
            2
        );
        t.record("web", &snap.nodes[&NodeId(4)]);
        assert_eq!(
            t.count("web", TopologyKey::Region, &snap.nodes[&NodeId(4)]),
            1
        );
        assert_eq!(
            t.count("other", TopologyKey::Region, &snap.nodes[&NodeId(4)]),
            0
        );

        req.workload.spec.placement.spread = None;
        assert_eq!(TopologyCounts::for_request(&snap, &req).total("web"), 0);
    }

    #[test]
    fn volatility_widens() {
        use Volatility::*;
        assert_eq!(Fixed.widen(OnNode), OnNode);
        assert_eq!(
            InDomain(TopologyKey::Region).widen(InDomain(TopologyKey::Zone)),
            InDomain(TopologyKey::Region)
        );
        assert_eq!(OnNode.widen(Any), Any);
        assert_eq!(
            InDomain(TopologyKey::Node).widen(Fixed),
            InDomain(TopologyKey::Node)
        );
    }

    #[test]
    fn unplaceable_reads_like_an_operator_message() {
        let u = Unplaceable {
            total_nodes: 5000,
            rejected: BTreeMap::from([
                ("insufficient memory".to_owned(), 3120),
                ("zone not allowed".to_owned(), 1880),
            ]),
        };
        assert_eq!(
            u.to_string(),
            "0/5000 nodes fit: 3120 insufficient memory, 1880 zone not allowed"
        );
    }
}
