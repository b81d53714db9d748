//! Seeded synthetic clusters for examples, benchmarks and tests: heterogeneous nodes across
//! regions and zones, mixed platforms, power sources, costs, taints and existing load.

use cloudless_core::ids::{Generation, NodeId, NodeName, Revision, WorkloadId};
use cloudless_core::node::{
    Liveness, Node, NodeReport, Platform, PowerSource, Reliability, Schedulability, Taint,
    TaintEffect,
};
use cloudless_core::quantity::{Cpu, Memory};
use cloudless_core::resources::{IopsClass, Resources};
use cloudless_core::scheduler::{ClusterSnapshot, PlacementRequest};
use cloudless_core::workload::{Workload, WorkloadSpec, WorkloadStatus};

use super::tiebreak::SeededRng;
use crate::config::COST_LABEL;

/// Shape of a synthetic cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyntheticCluster {
    /// Number of nodes.
    pub nodes: usize,
    /// Number of regions (`region-0`, ...).
    pub regions: u32,
    /// Zones per region (`<region>-z0`, ...).
    pub zones_per_region: u32,
    /// Existing reservations: each node has up to this percentage of CPU and memory reserved.
    pub max_load_percent: u64,
    /// Seed: the same shape and seed give the same cluster.
    pub seed: u64,
}

impl SyntheticCluster {
    /// `nodes` nodes in 3 regions of 3 zones, up to 60 % loaded.
    pub fn new(nodes: usize, seed: u64) -> Self {
        Self {
            nodes,
            regions: 3,
            zones_per_region: 3,
            max_load_percent: 60,
            seed,
        }
    }

    /// Generates the snapshot.
    pub fn snapshot(&self) -> ClusterSnapshot {
        let mut rng = SeededRng::new(self.seed);
        let mut snap = ClusterSnapshot {
            revision: Revision(1),
            ..ClusterSnapshot::default()
        };
        for i in 0..self.nodes {
            // "node-<i>" is always a valid DNS label, so no node is ever skipped.
            let Some(node) = self.node(i, &mut rng) else {
                continue;
            };
            let a = node.report.allocatable;
            let load = rng.range(0, self.max_load_percent + 1);
            let reserved = Resources {
                cpu_millis: a.cpu_millis * load / 100,
                memory_mib: a.memory_mib * load / 100,
                ..Resources::ZERO
            };
            snap.reserved.insert(node.id, reserved);
            snap.nodes.insert(node.id, node);
        }
        snap
    }

    fn node(&self, i: usize, rng: &mut SeededRng) -> Option<Node> {
        let region = i as u64 % u64::from(self.regions.max(1));
        let zone =
            (i as u64 / u64::from(self.regions.max(1))) % u64::from(self.zones_per_region.max(1));
        let platform = if rng.chance(15) {
            Platform {
                architecture: "arm64".into(),
                os: "linux".into(),
                variant: None,
            }
        } else {
            Platform::linux_amd64()
        };
        let cpu = [2000, 4000, 8000, 16000][rng.range(0, 4) as usize];
        let mem = [2048, 4096, 8192, 16384, 32768][rng.range(0, 5) as usize];
        let capacity = Resources {
            cpu_millis: cpu,
            memory_mib: mem,
            storage_gib: rng.range(32, 512),
            storage_iops: [IopsClass::Low, IopsClass::Standard, IopsClass::High]
                [rng.range(0, 3) as usize],
            egress_mbps: rng.range(100, 1000),
            gpus: u32::from(rng.chance(5)),
        };
        // A tenth of CPU and memory is the system reserve.
        let allocatable = Resources {
            cpu_millis: cpu * 9 / 10,
            memory_mib: mem * 9 / 10,
            ..capacity
        };
        let power = if rng.chance(70) {
            PowerSource::Mains
        } else {
            PowerSource::Battery {
                level_percent: rng.range(5, 101) as u8,
                charging: rng.chance(50),
            }
        };
        let mut taints = Vec::new();
        if rng.chance(3) {
            taints.push(Taint {
                key: "maintenance".into(),
                value: String::new(),
                effect: TaintEffect::PreferNoSchedule,
            });
        }
        if rng.chance(2) {
            taints.push(Taint {
                key: "dedicated".into(),
                value: "gpu".into(),
                effect: TaintEffect::NoSchedule,
            });
        }
        let liveness = match rng.range(0, 100) {
            0 => Liveness::Down,
            1 => Liveness::Suspect,
            _ => Liveness::Ready,
        };
        let region_name = format!("region-{region}");
        let mut labels = std::collections::BTreeMap::new();
        labels.insert(
            COST_LABEL.to_owned(),
            format!("{:.2}", rng.range(50, 201) as f64 / 100.0),
        );
        Some(Node {
            id: NodeId(i as u64 + 1),
            name: NodeName::new(format!("node-{i}")).ok()?,
            report: NodeReport {
                platform,
                zone: format!("{region_name}-z{zone}"),
                region: region_name,
                labels,
                capacity,
                allocatable,
                power,
                reliability: Reliability {
                    uptime_secs: rng.range(0, 30 * 86_400),
                    recent_failures: [0, 0, 0, 1, 2, 5][rng.range(0, 6) as usize],
                },
            },
            taints,
            liveness,
            schedulability: Schedulability {
                cordoned: rng.chance(1),
                draining: false,
            },
            registered_at_ms: 0,
            last_seen_ms: 0,
        })
    }
}

/// A workload `name` (namespace `default`) requesting `cpu_millis` and `memory_mib` per
/// replica, with default placement.
pub fn workload(id: u64, name: &str, cpu_millis: u64, memory_mib: u64) -> Workload {
    let mut spec = WorkloadSpec::new("localhost/cloudless/busybox:latest");
    spec.resources.requests.cpu = Cpu(cpu_millis);
    spec.resources.requests.memory = Memory(memory_mib);
    Workload {
        id: WorkloadId(id),
        namespace: "default".into(),
        name: name.into(),
        labels: Default::default(),
        spec,
        generation: Generation(1),
        created_at_ms: 0,
        status: WorkloadStatus::default(),
        paused: false,
    }
}

/// A request for `count` replicas of `workload`, seeded.
pub fn request(workload: Workload, count: u32, seed: u64) -> PlacementRequest {
    PlacementRequest {
        workload,
        count,
        exclude: Vec::new(),
        seed,
    }
}
