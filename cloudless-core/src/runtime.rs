//! The `Runtime` building block: runs containers on a node.
//!
//! Runtimes chain: `supports` may answer "not mine", and the agent asks the next one (DESIGN §3).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::BoxError;
use crate::ids::{ReplicaId, WorkloadId};
use crate::node::Platform;
use crate::resources::Resources;
use crate::workload::{ContainerPort, EnvVar, EphemeralVolume, ResourceLimits, SecurityContext};

/// A container's name: one container per replica attempt (DESIGN §8), e.g. `r12-a3`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContainerId(pub String);

impl ContainerId {
    /// The container for attempt `attempt` of replica `replica`.
    pub fn for_replica(replica: ReplicaId, attempt: u32) -> Self {
        Self(format!("r{}-a{}", replica.get(), attempt))
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ContainerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Everything a runtime needs to create one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Container name (from the replica id and attempt).
    pub id: ContainerId,
    /// Owning workload.
    pub workload: WorkloadId,
    /// Replica.
    pub replica: ReplicaId,
    /// Attempt number, from 0.
    pub attempt: u32,
    /// Image reference.
    pub image: String,
    /// Image platform, when pinned.
    pub platform: Option<Platform>,
    /// Entrypoint override.
    pub command: Vec<String>,
    /// Arguments override.
    pub args: Vec<String>,
    /// Environment.
    pub env: Vec<EnvVar>,
    /// Working directory.
    pub working_dir: Option<String>,
    /// Reserved resources.
    pub requests: Resources,
    /// Limits (cgroups).
    pub limits: ResourceLimits,
    /// Security context.
    pub security: SecurityContext,
    /// Ports.
    pub ports: Vec<ContainerPort>,
    /// Ephemeral volumes.
    pub volumes: Vec<EphemeralVolume>,
    /// Runtime labels.
    pub labels: BTreeMap<String, String>,
}

/// Whether a runtime handles a spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Support {
    /// This runtime can run it.
    Yes,
    /// Not this runtime; the reason says why (the next runtime in the chain is asked).
    No(String),
}

/// A container's lifecycle state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum ContainerState {
    /// Created, not started.
    Created,
    /// Running.
    Running,
    /// Exited with a code.
    Exited {
        /// Exit code.
        code: i32,
    },
}

/// A container's status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStatus {
    /// Container.
    pub id: ContainerId,
    /// State.
    pub state: ContainerState,
    /// Network address probes and endpoints use, once known.
    pub address: Option<String>,
    /// Start time (ms since the Unix epoch), once started.
    pub started_at_ms: Option<u64>,
    /// Exit time (ms since the Unix epoch), once exited.
    pub finished_at_ms: Option<u64>,
    /// The kernel's OOM killer ended a process of the container because it exceeded its memory
    /// limit (known once the container exited; a runtime that cannot tell reports `false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_killed: bool,
}

/// An event from the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RuntimeEvent {
    /// A container exited.
    Exited {
        /// Container.
        id: ContainerId,
        /// Exit code.
        code: i32,
    },
}

/// A chunk of a container's combined log, with its logical byte offset in the log (bytes since
/// the container started, whether or not older bytes are still kept).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Offset of the first byte of `data`.
    pub offset: u64,
    /// Bytes.
    pub data: Bytes,
}

/// Output of a one-shot exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutput {
    /// Exit code.
    pub exit_code: i32,
    /// Standard output.
    pub stdout: Bytes,
    /// Standard error.
    pub stderr: Bytes,
}

/// Resource usage of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ContainerStats {
    /// Cumulative CPU time in nanoseconds.
    pub cpu_usage_ns: u64,
    /// Current memory in bytes.
    pub memory_bytes: u64,
    /// Current number of processes.
    pub pids: u64,
}

/// Information about an image present on the node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImageInfo {
    /// Reference it is known by.
    pub reference: String,
    /// Manifest digest, `sha256:<hex>`.
    pub digest: String,
    /// Size of its content in bytes.
    pub size: u64,
}

/// Errors of [`Runtime`] operations.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No such container.
    #[error("container {0} not found")]
    NotFound(ContainerId),
    /// A container with that id exists.
    #[error("container {0} already exists")]
    AlreadyExists(ContainerId),
    /// No such image locally.
    #[error("image {0} not found")]
    ImageNotFound(String),
    /// The image could not be fetched (registry down, auth refused...).
    #[error("image {image} unavailable: {reason}")]
    ImageUnavailable {
        /// Image.
        image: String,
        /// Why.
        reason: String,
    },
    /// The spec cannot be run (bad field, refused by policy such as runAsNonRoot).
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// The operation is not in the right state (e.g. start on a running container).
    #[error("invalid state: {0}")]
    InvalidState(String),
    /// This runtime does not handle the spec.
    #[error("unsupported by this runtime: {0}")]
    Unsupported(String),
    /// The runtime backend is unavailable.
    #[error("runtime unavailable: {0}")]
    Unavailable(String),
    /// Exec timed out.
    #[error("timed out")]
    Timeout,
    /// Any other implementation error.
    #[error(transparent)]
    Other(BoxError),
}

/// Runs containers.
///
/// # Contract
/// - `create` with an id that exists fails with `AlreadyExists`; `create` of a spec that
///   `supports` refuses fails with `Unsupported`; operations on an unknown id fail with
///   `NotFound`; `start` of a container that is not `Created` (running, or exited: one container
///   per attempt) fails with `InvalidState`.
/// - `stop` returns once the container has exited (`status` then reports `Exited`); `stop` of a
///   container that is not running succeeds and changes nothing.
/// - `remove` of a running container stops it first; `remove` is idempotent only in the sense
///   that a second call returns `NotFound`.
/// - Every exit of a started container (by itself, by `stop` or by `remove`) produces exactly one
///   `RuntimeEvent::Exited` on every stream returned by `events` that was open at the time, and
///   `status` reports `Exited { code }` by the time the event is delivered.
/// - `logs(from)` yields the log bytes from offset `from` in order with correct offsets (nothing
///   when `from` is at or past the end); without `follow` it ends at the bytes logged so far;
///   with `follow` it continues until the container exits and its log is drained. Offsets are
///   logical: bytes since the container started. A runtime that caps logs by rotation drops the
///   oldest bytes; a read from an offset that was dropped starts at the oldest byte kept, and the
///   chunk's `offset` (then greater than `from`) says how much was skipped.
/// - `exec` runs a one-shot command in a running container (else `InvalidState`) and returns its
///   exit code and output, or `Timeout` after `timeout_ms`.
/// - No method panics on any input.
#[async_trait]
pub trait Runtime: Send + Sync + 'static {
    /// A short name, e.g. `containerd`, `process`, `fake`.
    fn name(&self) -> &str;
    /// Whether this runtime handles `spec` (runtimes chain on `No`).
    fn supports(&self, spec: &ContainerSpec) -> Support;
    /// Makes `image` available locally (pulling it if needed).
    async fn pull_image(
        &self,
        image: &str,
        platform: Option<&Platform>,
    ) -> Result<ImageInfo, RuntimeError>;
    /// Imports an OCI image layout tarball.
    async fn import_image(&self, archive: &Path) -> Result<Vec<ImageInfo>, RuntimeError>;
    /// Creates a container (not started).
    async fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError>;
    /// Starts a created container.
    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError>;
    /// Stops a running container: graceful signal, then kill after `grace_ms`.
    async fn stop(&self, id: &ContainerId, grace_ms: u64) -> Result<(), RuntimeError>;
    /// Removes a container (stopping it first if needed).
    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError>;
    /// A container's status.
    async fn status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError>;
    /// All containers this runtime manages.
    async fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError>;
    /// Exit events from now on.
    async fn events(&self) -> Result<BoxStream<'static, RuntimeEvent>, RuntimeError>;
    /// Log bytes from `from` on; with `follow`, until the container exits.
    async fn logs(
        &self,
        id: &ContainerId,
        from: u64,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<LogChunk, RuntimeError>>, RuntimeError>;
    /// Runs `command` in the container and waits up to `timeout_ms`.
    async fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout_ms: u64,
    ) -> Result<ExecOutput, RuntimeError>;
    /// Resource usage.
    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError>;
}
