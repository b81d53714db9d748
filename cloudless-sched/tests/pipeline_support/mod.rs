//! Shared builders for the pipeline tests.
#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;

use cloudless_core::ids::{Generation, NodeId, NodeName, ReplicaId, WorkloadId};
use cloudless_core::node::{Liveness, Node, NodeReport, Platform};
use cloudless_core::replica::{Replica, ReplicaPhase};
use cloudless_core::resources::Resources;
use cloudless_core::scheduler::{ClusterSnapshot, PlacementRequest};
use cloudless_core::workload::Workload;
use cloudless_sched::pipeline::synthetic;

/// A Ready linux/amd64 node with `cpu` millicores and `mem` MiB allocatable.
pub(crate) fn node(id: u64, region: &str, zone: &str, cpu: u64, mem: u64) -> Node {
    let r = Resources {
        cpu_millis: cpu,
        memory_mib: mem,
        ..Resources::ZERO
    };
    Node {
        id: NodeId(id),
        name: NodeName::new(format!("node-{id}")).unwrap(),
        report: NodeReport {
            platform: Platform::linux_amd64(),
            region: region.into(),
            zone: zone.into(),
            labels: BTreeMap::new(),
            capacity: r,
            allocatable: r,
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

/// A snapshot holding `nodes`, nothing reserved.
pub(crate) fn snapshot(nodes: impl IntoIterator<Item = Node>) -> ClusterSnapshot {
    let mut s = ClusterSnapshot::default();
    for n in nodes {
        s.nodes.insert(n.id, n);
    }
    s
}

/// Adds an existing replica of `workload` on `node`, reserving its requests.
pub(crate) fn add_replica(s: &mut ClusterSnapshot, workload: &Workload, replica: u64, node: u64) {
    let resources = workload.spec.resources.requests.to_resources();
    s.workloads.insert(workload.id, workload.clone());
    s.replicas.insert(
        ReplicaId(replica),
        Replica {
            id: ReplicaId(replica),
            workload: workload.id,
            generation: Generation(1),
            node: NodeId(node),
            resources,
            phase: ReplicaPhase::Running,
            ready: true,
            restarts: 0,
            address: None,
            assigned_at_ms: 0,
            message: String::new(),
            host_ports: None,
        },
    );
    let r = s.reserved.entry(NodeId(node)).or_default();
    *r = r.checked_add(&resources).unwrap();
}

/// A workload `web` (id 1) requesting `cpu` millicores and `mem` MiB.
pub(crate) fn web(cpu: u64, mem: u64) -> Workload {
    synthetic::workload(1, "web", cpu, mem)
}

/// A request for `count` replicas with seed 7.
pub(crate) fn req(w: Workload, count: u32) -> PlacementRequest {
    synthetic::request(w, count, 7)
}

/// Chosen node ids, in order.
pub(crate) fn chosen(r: &cloudless_core::scheduler::PlacementResult) -> Vec<u64> {
    r.placements.iter().map(|p| p.node.get()).collect()
}

/// Shorthand for a `WorkloadId`.
pub(crate) fn wid(n: u64) -> WorkloadId {
    WorkloadId(n)
}
