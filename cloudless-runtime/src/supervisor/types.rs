//! The supervisor's vocabulary: what it is asked to run, what it asks the driver to do, and what
//! the driver tells it back.

use std::collections::BTreeMap;

use cloudless_core::ids::{Generation, ReplicaId, WorkloadId};
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::runtime::{ContainerId, ContainerSpec, ContainerStatus};
use cloudless_core::workload::{Probe, Probes, RestartPolicy, WorkloadSpec};
use serde::{Deserialize, Serialize};

/// Runtime label naming the replica a container belongs to.
pub const REPLICA_LABEL: &str = "dev.cloudless.replica";
/// Runtime label naming the workload a container belongs to.
pub const WORKLOAD_LABEL: &str = "dev.cloudless.workload";

/// One replica this node should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredReplica {
    /// The replica.
    pub replica: ReplicaId,
    /// Its workload.
    pub workload: WorkloadId,
    /// The generation it runs (fixed for a replica's lifetime: an update makes new replicas).
    pub generation: Generation,
    /// The container to run; `id` and `attempt` are filled in per attempt.
    pub template: ContainerSpec,
    /// When its container is started again.
    pub restart: RestartPolicy,
    /// Its probes.
    pub probes: Probes,
}

impl DesiredReplica {
    /// The desired replica for `spec`.
    pub fn from_spec(
        replica: ReplicaId,
        workload: WorkloadId,
        generation: Generation,
        spec: &WorkloadSpec,
    ) -> Self {
        let mut labels = BTreeMap::new();
        labels.insert(REPLICA_LABEL.to_owned(), replica.get().to_string());
        labels.insert(WORKLOAD_LABEL.to_owned(), workload.get().to_string());
        let template = ContainerSpec {
            id: ContainerId::for_replica(replica, 0),
            workload,
            replica,
            attempt: 0,
            image: spec.image.clone(),
            platform: spec.platform.clone(),
            command: spec.command.clone(),
            args: spec.args.clone(),
            env: spec.env.clone(),
            working_dir: spec.working_dir.clone(),
            requests: spec.resources.requests.to_resources(),
            limits: spec.resources.limits.clone(),
            security: spec.security.clone(),
            ports: spec.ports.clone(),
            volumes: spec.volumes.clone(),
            labels,
        };
        Self {
            replica,
            workload,
            generation,
            template,
            restart: spec.restart.clone(),
            probes: spec.probes.clone(),
        }
    }

    /// The container spec of attempt `attempt`.
    pub fn container_spec(&self, attempt: u32) -> ContainerSpec {
        let mut spec = self.template.clone();
        spec.id = ContainerId::for_replica(self.replica, attempt);
        spec.attempt = attempt;
        spec
    }
}

/// The replica and attempt a container name encodes (`r<replica>-a<attempt>`), if it is one.
pub fn parse_container_id(id: &ContainerId) -> Option<(ReplicaId, u32)> {
    let rest = id.as_str().strip_prefix('r')?;
    let (replica, attempt) = rest.split_once("-a")?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(replica) || !digits(attempt) {
        return None;
    }
    Some((ReplicaId(replica.parse().ok()?), attempt.parse().ok()?))
}

/// Which probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum ProbeKind {
    /// Failing restarts the container.
    Liveness,
    /// Gates `ready`.
    Readiness,
}

/// A probe the driver should run now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRequest {
    /// The replica.
    pub replica: ReplicaId,
    /// The container probed (results for another container are ignored).
    pub container: ContainerId,
    /// Which probe.
    pub kind: ProbeKind,
    /// The probe (action, timeout).
    pub probe: Probe,
    /// The container's address, for TCP and HTTP probes.
    pub address: Option<String>,
}

/// Why a container is stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Its liveness probe failed.
    LivenessFailed,
    /// Its replica is no longer assigned to this node.
    Unassigned,
}

/// The replica status the supervisor reports (only when it changes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaStatus {
    /// The replica.
    pub replica: ReplicaId,
    /// Its workload.
    pub workload: WorkloadId,
    /// Its generation.
    pub generation: Generation,
    /// Lifecycle phase.
    pub phase: ReplicaPhase,
    /// Passing readiness (and running).
    pub ready: bool,
    /// Containers started after the first.
    pub restarts: u32,
    /// The running container's address.
    pub address: Option<String>,
    /// Human-readable detail.
    pub message: String,
}

/// What the supervisor asks the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Make the image local if needed, create the container, start it.
    Start {
        /// The replica.
        replica: ReplicaId,
        /// The container.
        spec: ContainerSpec,
    },
    /// Remove the replica's previous container `old` (exited or never started; a missing one is
    /// fine), then create and start `spec`, the next attempt.
    Restart {
        /// The replica.
        replica: ReplicaId,
        /// The container being replaced.
        old: ContainerId,
        /// The new container.
        spec: ContainerSpec,
    },
    /// Stop a running container: graceful signal, kill after `grace_ms`.
    Stop {
        /// The replica.
        replica: ReplicaId,
        /// The container.
        id: ContainerId,
        /// Grace period.
        grace_ms: u64,
        /// Why.
        reason: StopReason,
    },
    /// Remove a container (a stale attempt, or one of a replica no longer assigned).
    Remove {
        /// The replica.
        replica: ReplicaId,
        /// The container.
        id: ContainerId,
    },
    /// Run a probe and hand the result to `handle_probe_result`.
    Probe(ProbeRequest),
    /// A replica's status changed.
    Report(ReplicaStatus),
}

impl Action {
    /// The replica the action concerns.
    pub fn replica(&self) -> ReplicaId {
        match self {
            Action::Start { replica, .. }
            | Action::Restart { replica, .. }
            | Action::Stop { replica, .. }
            | Action::Remove { replica, .. } => *replica,
            Action::Probe(p) => p.replica,
            Action::Report(s) => s.replica,
        }
    }

    /// True for actions that change containers (one at a time per replica).
    pub fn touches_runtime(&self) -> bool {
        !matches!(self, Action::Probe(_) | Action::Report(_))
    }
}

/// How a runtime action ended; handed to `handle_outcome`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// `Start`/`Restart` succeeded; the container's status after the start.
    Started(ContainerStatus),
    /// `Start`/`Restart` failed (pull, create or start).
    StartFailed {
        /// The container that was to run.
        id: ContainerId,
        /// What failed.
        reason: String,
        /// True for failures that do not count against `maxRetries` (registry or runtime
        /// unreachable): the supervisor retries them with backoff for as long as it takes.
        transient: bool,
    },
    /// `Stop` returned; the container's status after it.
    Stopped(ContainerStatus),
    /// `Remove` succeeded (or the container was already gone).
    Removed(ContainerId),
    /// `Stop`/`Remove` failed; retried after the next observation.
    Failed {
        /// The container.
        id: ContainerId,
        /// What failed.
        reason: String,
    },
}

/// Per-replica counters that outlive the agent process (persisted by the driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ReplicaRecord {
    /// Attempt number of the next container.
    pub next_attempt: u32,
    /// Containers started after the first.
    pub restarts: u32,
    /// Restarts since the last run that lasted `reset_after` (drives the backoff).
    pub consecutive: u32,
    /// Readiness last reported (restored for an adopted container, so endpoints do not flap).
    pub ready: bool,
}
