//! Workloads: the spec a user declares (CLD-REQ-020) and what the cluster records about it.
//!
//! The spec types are the manifest types: serde with camelCase names and unknown fields
//! rejected, human units through [`crate::quantity`], and a JSON Schema derived from them.
//! Semantic checks (ranges, names, contradictions) live in [`crate::manifest`].

pub mod placement;
pub mod probe;
pub mod security;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use placement::*;
pub use probe::*;
pub use security::*;

use crate::ids::{Generation, WorkloadId};
use crate::node::Platform;
use crate::quantity::{Bandwidth, Cpu, DurationSpec, Memory, Storage};
use crate::resources::{IopsClass, Resources};

/// Resources each replica requests (reserved on its node) and may use at most.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRequirements {
    /// Reserved for each replica; the scheduler fits these.
    #[serde(default)]
    pub requests: ResourceRequests,
    /// Upper limits enforced by cgroups; default to the requests.
    #[serde(default)]
    pub limits: ResourceLimits,
}

/// Requested resources per replica.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceRequests {
    /// CPU, e.g. `250m`.
    #[serde(default)]
    pub cpu: Cpu,
    /// Memory, e.g. `128Mi`.
    #[serde(default)]
    pub memory: Memory,
    /// Node storage, e.g. `1Gi`.
    #[serde(default)]
    pub storage: Storage,
    /// Minimum storage performance class.
    #[serde(default)]
    pub storage_iops: IopsClass,
    /// Egress bandwidth, e.g. `5Mbps`.
    #[serde(default)]
    pub egress: Bandwidth,
    /// Whole GPUs.
    #[serde(default)]
    pub gpus: u32,
}

/// Resource limits per replica.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResourceLimits {
    /// CPU limit (cgroup quota).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Cpu>,
    /// Memory limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<Memory>,
    /// Maximum number of processes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<u32>,
}

impl ResourceRequests {
    /// The reservation as plain numbers.
    pub fn to_resources(&self) -> Resources {
        Resources {
            cpu_millis: self.cpu.millis(),
            memory_mib: self.memory.mib(),
            storage_gib: self.storage.gib(),
            storage_iops: self.storage_iops,
            egress_mbps: self.egress.mbps(),
            gpus: self.gpus,
        }
    }
}

/// When a container that exits is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum RestartMode {
    /// Always restart.
    #[default]
    Always,
    /// Restart only after a non-zero exit.
    OnFailure,
    /// Never restart.
    Never,
}

/// Exponential backoff between restarts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Backoff {
    /// First delay.
    #[serde(default = "backoff_initial")]
    pub initial: DurationSpec,
    /// Largest delay.
    #[serde(default = "backoff_max")]
    pub max: DurationSpec,
    /// Factor per consecutive failure, in percent (200 = doubling).
    #[serde(default = "backoff_factor")]
    pub multiplier_percent: u32,
}

fn backoff_initial() -> DurationSpec {
    DurationSpec::from_millis(500)
}
fn backoff_max() -> DurationSpec {
    DurationSpec::from_secs(300)
}
fn backoff_factor() -> u32 {
    200
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: backoff_initial(),
            max: backoff_max(),
            multiplier_percent: backoff_factor(),
        }
    }
}

/// Restart policy of a workload's containers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RestartPolicy {
    /// always | onFailure | never.
    #[serde(default)]
    pub policy: RestartMode,
    /// Give up after this many consecutive restarts; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// Delay between restarts.
    #[serde(default)]
    pub backoff: Backoff,
}

/// Rolling update strategy (CLD-REQ-023). `minAvailable` lives on the spec, shared with failure handling.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Rollout {
    /// Extra replicas allowed above `replicas` during a rollout.
    #[serde(default = "one")]
    pub max_surge: u32,
}

fn one() -> u32 {
    1
}

impl Default for Rollout {
    fn default() -> Self {
        Self { max_surge: 1 }
    }
}

/// Transport protocol of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum Protocol {
    /// TCP.
    #[default]
    Tcp,
    /// UDP.
    Udp,
}

/// A port the container listens on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ContainerPort {
    /// Port name (DNS-1123 label), referenced by services.
    pub name: String,
    /// Port number inside the container.
    pub container_port: u16,
    /// Protocol.
    #[serde(default)]
    pub protocol: Protocol,
    /// Publish the port on the node: connections to this port of the node's addresses are
    /// forwarded to the container (a runtime with per-container networks only; two containers
    /// on one node cannot publish the same port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_port: Option<u16>,
}

/// A port published on the node, `(hostPort, protocol)`: a per-node resource, so no two
/// replicas on one node may publish the same one. Displayed as `8080/TCP`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HostPort {
    /// The port on the node.
    pub port: u16,
    /// Its protocol.
    pub protocol: Protocol,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let protocol = match self.protocol {
            Protocol::Tcp => "TCP",
            Protocol::Udp => "UDP",
        };
        write!(f, "{}/{protocol}", self.port)
    }
}

/// One port of an exposed service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServicePort {
    /// Port name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Port on the service's virtual IP.
    pub port: u16,
    /// Container port number or the name of a container port.
    pub target_port: PortRef,
    /// Protocol.
    #[serde(default)]
    pub protocol: Protocol,
}

/// A port by number or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PortRef {
    /// By number.
    Number(u16),
    /// By container port name.
    Name(String),
}

/// Expose the workload as a service with a stable name (CLD-REQ-041).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceExposure {
    /// Service name; the workload's name when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Ports.
    pub ports: Vec<ServicePort>,
}

/// An environment variable.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvVar {
    /// Variable name.
    pub name: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

/// A secret the workload uses, delivered as an env var or a file (CLD-REQ-063).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretRef {
    /// Secret name (same namespace).
    pub name: String,
    /// Key within the secret; all keys when absent (file delivery only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Deliver as this environment variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<String>,
    /// Deliver as files under this absolute path (in memory, never on disk unencrypted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mount_path: Option<String>,
}

/// Backing medium of an ephemeral volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum VolumeMedium {
    /// Node disk, in the workload's private directory.
    #[default]
    Disk,
    /// tmpfs (counts against the memory limit).
    Memory,
}

/// A node-local scratch volume private to one replica (CLD-REQ-052).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EphemeralVolume {
    /// Volume name (DNS-1123 label).
    pub name: String,
    /// Absolute mount path in the container.
    pub mount_path: String,
    /// Size limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size_limit: Option<Memory>,
    /// Disk or memory.
    #[serde(default)]
    pub medium: VolumeMedium,
}

/// The desired state of a workload (CLD-REQ-020).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadSpec {
    /// OCI image reference, e.g. `docker.io/library/nginx:1.27` or `localhost/cloudless/busybox:latest`.
    pub image: String,
    /// Platform the image is built for; any node platform the image index offers when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    /// Replaces the image's entrypoint.
    #[serde(default)]
    pub command: Vec<String>,
    /// Replaces the image's cmd.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: Vec<EnvVar>,
    /// Working directory (absolute).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Resources per replica.
    #[serde(default)]
    pub resources: ResourceRequirements,
    /// Desired number of replicas.
    #[serde(default = "one")]
    pub replicas: u32,
    /// Ready replicas to keep during rollouts and failures; `replicas - 1` (at least 0) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_available: Option<u32>,
    /// Placement constraints and preferences.
    #[serde(default)]
    pub placement: Placement,
    /// Restart policy.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Rollout strategy.
    #[serde(default)]
    pub rollout: Rollout,
    /// Health probes.
    #[serde(default)]
    pub probes: Probes,
    /// Container ports.
    #[serde(default)]
    pub ports: Vec<ContainerPort>,
    /// Service exposure.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<ServiceExposure>,
    /// Security context.
    #[serde(default)]
    pub security: SecurityContext,
    /// Secrets used.
    #[serde(default)]
    pub secrets: Vec<SecretRef>,
    /// Ephemeral volumes.
    #[serde(default)]
    pub volumes: Vec<EphemeralVolume>,
}

impl WorkloadSpec {
    /// The host ports each replica publishes on its node, in declaration order (a validated
    /// spec names each `(hostPort, protocol)` at most once).
    ///
    /// ```
    /// use cloudless_core::workload::{ContainerPort, HostPort, Protocol, WorkloadSpec};
    ///
    /// let mut spec = WorkloadSpec::new("nginx:1.27");
    /// spec.ports.push(ContainerPort { name: "metrics".into(), container_port: 9100, protocol: Protocol::Tcp, host_port: None });
    /// spec.ports.push(ContainerPort { name: "http".into(), container_port: 80, protocol: Protocol::Tcp, host_port: Some(8080) });
    /// let ports: Vec<HostPort> = spec.host_ports().collect();
    /// assert_eq!(ports, [HostPort { port: 8080, protocol: Protocol::Tcp }]);
    /// assert_eq!(ports[0].to_string(), "8080/TCP");
    /// ```
    pub fn host_ports(&self) -> impl Iterator<Item = HostPort> + '_ {
        self.ports.iter().filter_map(|p| {
            p.host_port.map(|port| HostPort {
                port,
                protocol: p.protocol,
            })
        })
    }

    /// [`Self::host_ports`] without repeats, in declaration order.
    pub fn distinct_host_ports(&self) -> Vec<HostPort> {
        let mut out: Vec<HostPort> = Vec::new();
        for p in self.host_ports() {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }
}

impl WorkloadSpec {
    /// A minimal spec: one replica of `image`, defaults everywhere else.
    pub fn new(image: impl Into<String>) -> Self {
        Self {
            image: image.into(),
            platform: None,
            command: Vec::new(),
            args: Vec::new(),
            env: Vec::new(),
            working_dir: None,
            resources: ResourceRequirements::default(),
            replicas: 1,
            min_available: None,
            placement: Placement::default(),
            restart: RestartPolicy::default(),
            rollout: Rollout::default(),
            probes: Probes::default(),
            ports: Vec::new(),
            service: None,
            security: SecurityContext::default(),
            secrets: Vec::new(),
            volumes: Vec::new(),
        }
    }

    /// The effective `minAvailable`: as set, or `replicas - 1` (never below 0).
    pub fn effective_min_available(&self) -> u32 {
        self.min_available
            .unwrap_or(self.replicas.saturating_sub(1))
    }
}

/// Condition types reported on a workload.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum ConditionKind {
    /// At least `minAvailable` replicas are ready.
    Available,
    /// A rollout is in progress.
    Progressing,
    /// Some replica cannot be placed.
    Unschedulable,
}

/// A condition on a workload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    /// Which condition.
    pub kind: ConditionKind,
    /// Whether it holds.
    pub status: bool,
    /// Short machine-readable reason.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
    /// When it last changed (ms since the Unix epoch).
    pub since_ms: u64,
}

/// Observed state of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkloadStatus {
    /// The spec generation the status describes.
    pub observed_generation: Generation,
    /// Replicas assigned to nodes (holding a reservation), whatever their node's liveness.
    pub assigned: u32,
    /// Replicas passing readiness on a node that is Ready or Suspect (replicas on Joining,
    /// Down, Left or removed nodes do not count); recomputed when a node's liveness changes.
    pub ready: u32,
    /// Ready replicas (as counted for `ready`) of the current generation.
    pub available: u32,
    /// Conditions.
    #[serde(default)]
    pub conditions: Vec<Condition>,
}

/// A workload as the cluster state records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Workload {
    /// Minted id.
    pub id: WorkloadId,
    /// Namespace.
    pub namespace: String,
    /// Name (DNS-1123 label).
    pub name: String,
    /// Labels.
    #[serde(default)]
    pub labels: std::collections::BTreeMap<String, String>,
    /// Desired state.
    pub spec: WorkloadSpec,
    /// Bumped on every spec change.
    pub generation: Generation,
    /// Creation time (ms since the Unix epoch, from the command).
    pub created_at_ms: u64,
    /// Observed state.
    #[serde(default)]
    pub status: WorkloadStatus,
    /// Rollouts paused by the operator.
    #[serde(default)]
    pub paused: bool,
}
