//! Shared by the protocol test files: a scriptable test-double `ControlPlane` and sample values.

#![allow(dead_code)] // Each test file uses a different subset.
#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use cloudless::control::{
    AssignedReplica, AssignmentSet, ControlError, ControlPlane, HeartbeatAck, ReplicaReport,
};
use cloudless_core::ids::{Generation, NodeId, ReplicaId, Revision, WorkloadId};
use cloudless_core::node::{Liveness, NodeReport, Platform, PowerSource, Reliability};
use cloudless_core::replica::{Replica, ReplicaPhase};
use cloudless_core::resources::{IopsClass, Resources};
use cloudless_core::workload::{EnvVar, WorkloadSpec};

/// One call the double received, with the node it was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // A test record; size does not matter.
pub(crate) enum Call {
    Heartbeat(NodeId, NodeReport),
    Assignments(NodeId),
    Report(NodeId, Vec<ReplicaReport>),
}

/// How the double answers.
#[derive(Debug, Clone)]
pub(crate) enum Mode {
    Serve,
    Fail(ControlError),
}

/// A control plane that records calls and answers as scripted.
pub(crate) struct Double {
    pub(crate) mode: Mutex<Mode>,
    pub(crate) ack: HeartbeatAck,
    pub(crate) set: AssignmentSet,
    pub(crate) calls: Mutex<Vec<Call>>,
}

impl Double {
    pub(crate) fn new() -> Self {
        Self {
            mode: Mutex::new(Mode::Serve),
            ack: ack(),
            set: assignments(NodeId(10)),
            calls: Mutex::new(Vec::new()),
        }
    }

    pub(crate) fn failing(e: ControlError) -> Self {
        let d = Self::new();
        *d.mode.lock().unwrap() = Mode::Fail(e);
        d
    }

    pub(crate) fn set_mode(&self, m: Mode) {
        *self.mode.lock().unwrap() = m;
    }

    pub(crate) fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    fn answer<T>(&self, call: Call, ok: T) -> Result<T, ControlError> {
        self.calls.lock().unwrap().push(call);
        match &*self.mode.lock().unwrap() {
            Mode::Serve => Ok(ok),
            Mode::Fail(e) => Err(e.clone()),
        }
    }
}

#[async_trait]
impl ControlPlane for Double {
    async fn heartbeat(
        &self,
        node: NodeId,
        report: &NodeReport,
    ) -> Result<HeartbeatAck, ControlError> {
        self.answer(Call::Heartbeat(node, report.clone()), self.ack.clone())
    }

    async fn assignments(&self, node: NodeId) -> Result<AssignmentSet, ControlError> {
        self.answer(Call::Assignments(node), self.set.clone())
    }

    async fn report(&self, node: NodeId, reports: Vec<ReplicaReport>) -> Result<(), ControlError> {
        self.answer(Call::Report(node, reports), ())
    }
}

pub(crate) fn node_report() -> NodeReport {
    let r = Resources {
        cpu_millis: 4000,
        memory_mib: 8192,
        storage_gib: 100,
        storage_iops: IopsClass::High,
        egress_mbps: 250,
        gpus: 1,
    };
    NodeReport {
        platform: Platform {
            architecture: "arm64".into(),
            os: "linux".into(),
            variant: Some("v8".into()),
        },
        region: "eu-west".into(),
        zone: "home-1".into(),
        labels: BTreeMap::from([("disk".to_owned(), "ssd".to_owned())]),
        capacity: r,
        allocatable: r,
        power: PowerSource::Battery {
            level_percent: 80,
            charging: true,
        },
        reliability: Reliability {
            uptime_secs: 3600,
            recent_failures: 2,
        },
    }
}

pub(crate) fn ack() -> HeartbeatAck {
    HeartbeatAck {
        liveness: Liveness::Ready,
        assignments_revision: Revision(42),
        interval: Duration::from_millis(750),
        leader: Some(NodeId(1)),
    }
}

pub(crate) fn assignments(node: NodeId) -> AssignmentSet {
    let mut spec = WorkloadSpec::new("docker.io/library/nginx:1.27");
    spec.args = vec!["-g".into(), "daemon off;".into()];
    spec.env = vec![EnvVar {
        name: "MODE".into(),
        value: "edge".into(),
    }];
    spec.replicas = 3;
    AssignmentSet {
        revision: Revision(42),
        replicas: vec![AssignedReplica {
            replica: Replica {
                id: ReplicaId(7),
                workload: WorkloadId(3),
                generation: Generation(2),
                node,
                resources: Resources {
                    cpu_millis: 250,
                    memory_mib: 128,
                    ..Resources::default()
                },
                phase: ReplicaPhase::Pending,
                ready: false,
                restarts: 0,
                address: None,
                assigned_at_ms: 1_700_000_000_000,
                message: String::new(),
                host_ports: None,
            },
            namespace: "default".into(),
            workload_name: "web".into(),
            spec,
        }],
    }
}

pub(crate) fn reports() -> Vec<ReplicaReport> {
    vec![ReplicaReport {
        replica: ReplicaId(7),
        workload: WorkloadId(3),
        generation: Generation(2),
        phase: ReplicaPhase::Running,
        ready: true,
        restarts: 1,
        address: Some("10.0.0.7".into()),
        message: "started".into(),
    }]
}
