//! [`ContainerdRuntime`]: the default [`Runtime`], over containerd's gRPC API (1.6 and newer).
//!
//! ```text
//!  ContainerdRuntime ── unix socket, namespace + lease metadata on every call ──▶ containerd
//!     import_image: tar ─▶ content.write ─▶ images.create ─▶ snapshots.prepare + diff.apply
//!     create: images.get/content.read ─▶ hardened OCI spec (crate::oci) ─▶ lease ─▶
//!             snapshots.prepare(key = id) ─▶ containers.create(labels)
//!     start:  tasks.create(stdout/stderr = file://<data>/logs/<ns>/<id>.log) ─▶ tasks.start
//!             ─▶ waiter: tasks.wait ─▶ tasks.delete ─▶ exit code into labels ─▶ events()
//!     stop:   SIGTERM, grace, SIGKILL ─▶ the waiter's exit
//!     remove: stop ─▶ containers.delete ─▶ snapshots.remove ─▶ leases.delete
//! ```
//!
//! The container's exit is stored in its containerd labels, so a restarted agent reads the
//! state back rather than remembering it. Logs are files the shim appends to; the agent only
//! reads them, so a stopped agent never blocks its containers.

mod client;
mod cni;
mod container;
mod create;
pub mod disk_gc;
mod exec;
mod gc;
mod image;
mod import;
mod local;
pub mod logger;
mod logs;
mod registry;
mod registry_auth;
pub mod registry_config;
mod task;
mod tls;
mod volumes;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use cloudless_core::node::Platform;
use cloudless_core::runtime::{
    ContainerId, ContainerSpec, ContainerStats, ContainerStatus, ExecOutput, ImageInfo, LogChunk,
    Runtime, RuntimeError, RuntimeEvent, Support,
};
use futures::stream::BoxStream;

use crate::oci::{HostSecurity, NetworkMode};
use client::Client;
pub use cni::{BridgeNetwork, LABEL_HOST_PORTS};
pub use disk_gc::{DiskGcPolicy, FreeSpace, FsUsage, ImageGc, Statvfs, Watermark};
use local::Local;
pub use registry_auth::RegistryError;
pub use registry_config::load_agent_registries;
pub use registry_config::{
    REGISTRIES_FILE, RegistryConfig, RegistryConfigError, RegistryCredentials, load_registries_file,
};

/// Label marking containers this runtime manages (`list` and adoption select on it).
pub const LABEL_MANAGED: &str = "cloudless.io/managed";
/// Label with the owning workload id.
pub const LABEL_WORKLOAD: &str = "cloudless.io/workload";
/// Label with the replica id.
pub const LABEL_REPLICA: &str = "cloudless.io/replica";
/// Label with the attempt number.
pub const LABEL_ATTEMPT: &str = "cloudless.io/attempt";
/// Label with the start time (ms since the Unix epoch).
pub const LABEL_STARTED_AT: &str = "cloudless.io/started-at-ms";
/// Label with the container's address on the agent's bridge network.
pub const LABEL_ADDRESS: &str = "cloudless.io/address";
/// Label with the exit code, once the container exited.
pub const LABEL_EXIT_CODE: &str = "cloudless.io/exit-code";
/// Label set to `true` when the OOM killer ended a process of the container.
pub const LABEL_OOM_KILLED: &str = "cloudless.io/oom-killed";
/// Label with the exit time (ms since the Unix epoch).
pub const LABEL_FINISHED_AT: &str = "cloudless.io/finished-at-ms";

/// Where and how a [`ContainerdRuntime`] runs containers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerdConfig {
    /// containerd's gRPC socket, e.g. `/run/containerd/containerd.sock`.
    pub socket: PathBuf,
    /// containerd namespace holding this agent's images and containers.
    pub namespace: String,
    /// The agent's data directory; logs go to `<data_dir>/logs/<namespace>/<id>.log`.
    pub data_dir: PathBuf,
    /// Snapshotter, e.g. `overlayfs`.
    pub snapshotter: String,
    /// Runtime (shim) name, e.g. `io.containerd.runc.v2`.
    pub runtime: String,
    /// Network namespace mode.
    pub network: NetworkMode,
    /// With `NetworkMode::Isolated`: the bridge network giving each container an address
    /// reachable from the host (none: loopback only).
    pub bridge: Option<BridgeNetwork>,
    /// Parent cgroup; containers get `<parent>/<namespace>/<id>`.
    pub cgroup_parent: String,
    /// AppArmor profile used for `runtimeDefault` when the host has it loaded.
    pub apparmor_profile: String,
    /// Caps each container's log: the shim runs this logger binary instead of appending to
    /// the file itself (none: uncapped `file://` logs).
    pub log_limit: Option<LogLimit>,
    /// Registries (`host:port`) pulled from over plain HTTP, e.g. one on the node's own network;
    /// the same as an entry in `registries` with `insecure_http` (every other registry: HTTPS).
    pub plain_http_registries: Vec<String>,
    /// How each registry (`host[:port]` as in image references) is reached: TLS trust,
    /// plain-HTTP opt-in, credentials (read with [`load_registries_file`]). A registry not listed
    /// is pulled from over HTTPS, trusting the system roots, anonymously.
    pub registries: std::collections::BTreeMap<String, RegistryConfig>,
    /// Grace period `remove` gives a running container before SIGKILL, in ms.
    pub remove_grace_ms: u64,
}

impl ContainerdConfig {
    /// Defaults for `socket`, `namespace` and `data_dir`: overlayfs, runc v2, isolated network,
    /// cgroups under `/cloudless`.
    pub fn new(socket: impl Into<PathBuf>, namespace: &str, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            namespace: namespace.to_owned(),
            data_dir: data_dir.into(),
            snapshotter: "overlayfs".to_owned(),
            runtime: "io.containerd.runc.v2".to_owned(),
            network: NetworkMode::Isolated,
            bridge: None,
            cgroup_parent: "/cloudless".to_owned(),
            apparmor_profile: "cloudless-default".to_owned(),
            remove_grace_ms: 0,
            log_limit: None,
            plain_http_registries: Vec::new(),
            registries: std::collections::BTreeMap::new(),
        }
    }
}

/// A cap on container logs, enforced by the `cloudless-logger` binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLimit {
    /// Path of the `cloudless-logger` binary.
    pub logger: PathBuf,
    /// Bytes kept per container log: its files rotate, keeping the newest output (see
    /// `docs/design/log-rotation.md`).
    pub max_bytes: u64,
}

pub(crate) struct Inner {
    pub(crate) cfg: ContainerdConfig,
    pub(crate) client: Client,
    pub(crate) host: HostSecurity,
    pub(crate) local: Local,
    /// Registry clients and the token cache of pulls.
    pub(crate) pulls: registry::RegistryState,
}

impl Inner {
    /// The bridge network, when containers get their own namespace and one is configured.
    pub(crate) fn bridge(&self) -> Option<&BridgeNetwork> {
        match self.cfg.network {
            NetworkMode::Isolated => self.cfg.bridge.as_ref(),
            NetworkMode::Host => None,
        }
    }

    /// Adds (`ADD`, with the netns of `pid`) or releases (`DEL`) `id`'s bridge address.
    pub(crate) async fn cni(
        &self,
        id: &str,
        pid: Option<u32>,
    ) -> Result<Option<String>, RuntimeError> {
        let Some(net) = self.bridge() else {
            return Ok(None);
        };
        let config = net.config(
            // Named after the bridge: runtimes sharing a bridge by mistake share its leases
            // instead of handing out the same address twice.
            &format!("cloudless-{}", net.bridge),
            &self.cfg.data_dir.join("cni").join(&net.bridge),
        );
        let cni_id = format!("{}-{id}", self.cfg.namespace);
        cni::attach_or_detach(self, net, &config, &cni_id, id, pid).await
    }

    /// The log file of container `id`.
    pub(crate) fn log_path(&self, id: &str) -> PathBuf {
        self.cfg
            .data_dir
            .join("logs")
            .join(&self.cfg.namespace)
            .join(format!("{id}.log"))
    }
}

/// Creates `dir` (and parents) and makes it accessible to root only: logs and exec output of
/// containers may hold secrets.
pub(crate) async fn private_dir(dir: &Path) -> Result<(), RuntimeError> {
    use std::os::unix::fs::PermissionsExt;
    let io = |e: std::io::Error| RuntimeError::Other(Box::new(e));
    tokio::fs::create_dir_all(dir).await.map_err(io)?;
    tokio::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .await
        .map_err(io)
}

/// The containerd runtime. Cheap to clone; clones share one connection.
#[derive(Clone)]
pub struct ContainerdRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ContainerdRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContainerdRuntime")
            .field("config", &self.inner.cfg)
            .finish()
    }
}

/// Whether `id` is a valid containerd identifier Cloudless accepts: ASCII letters and digits,
/// separated by single `.`, `_` or `-`, at most 64 characters (room for suffixes like the
/// lease's).
pub(crate) fn valid_id(id: &str) -> bool {
    if id.is_empty() || id.len() > 64 {
        return false;
    }
    let mut prev_sep = true;
    for c in id.chars() {
        let sep = matches!(c, '.' | '_' | '-');
        if !(c.is_ascii_alphanumeric() || sep) || (sep && prev_sep) {
            return false;
        }
        prev_sep = sep;
    }
    !prev_sep
}

/// Whether a runtime with `cfg` handles `spec`: any spec without a foreign runtime class.
pub(crate) fn support(cfg: &ContainerdConfig, spec: &ContainerSpec) -> Support {
    match &spec.security.runtime_class {
        Some(class) if class != "containerd" && class != &cfg.runtime => Support::No(format!(
            "runtime class {class} is not handled by containerd"
        )),
        _ => Support::Yes,
    }
}

impl ContainerdRuntime {
    /// Connects to containerd (`Unavailable` if it does not answer) and detects host features.
    pub async fn connect(cfg: ContainerdConfig) -> Result<Self, RuntimeError> {
        if !valid_id(&cfg.namespace) {
            return Err(RuntimeError::InvalidSpec(format!(
                "namespace {:?} is not a valid containerd identifier",
                cfg.namespace
            )));
        }
        let client = Client::connect(&cfg.socket, &cfg.namespace).await?;
        let host = HostSecurity::detect(&cfg.apparmor_profile);
        Ok(Self {
            inner: Arc::new(Inner {
                cfg,
                client,
                host,
                local: Local::default(),
                pulls: registry::RegistryState::default(),
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &ContainerdConfig {
        &self.inner.cfg
    }

    /// The host security features detected at connect time.
    pub fn host_security(&self) -> &HostSecurity {
        &self.inner.host
    }

    /// Whether the OOM killer ended a process of container `id` (known once it exited).
    pub async fn oom_killed(&self, id: &ContainerId) -> Result<bool, RuntimeError> {
        let c = container::get(&self.inner, id).await?;
        Ok(c.labels.get(LABEL_OOM_KILLED).is_some_and(|v| v == "true"))
    }

    /// Removes the images no container of this namespace uses, waiting for containerd's
    /// garbage collector to free their content and snapshots; returns the removed names.
    pub async fn prune_images(&self) -> Result<Vec<String>, RuntimeError> {
        gc::prune_images(&self.inner).await
    }

    /// The log file of container `id` (it exists once the container started).
    pub fn log_path(&self, id: &ContainerId) -> PathBuf {
        self.inner.log_path(id.as_str())
    }
}

#[async_trait]
impl Runtime for ContainerdRuntime {
    fn name(&self) -> &str {
        "containerd"
    }

    fn supports(&self, spec: &ContainerSpec) -> Support {
        support(&self.inner.cfg, spec)
    }

    async fn pull_image(
        &self,
        image: &str,
        _platform: Option<&Platform>,
    ) -> Result<ImageInfo, RuntimeError> {
        create::local_image(&self.inner, image).await
    }

    async fn import_image(&self, archive: &Path) -> Result<Vec<ImageInfo>, RuntimeError> {
        create::import(&self.inner, archive).await
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        create::create(&self.inner, spec).await
    }

    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        task::start(&self.inner, id).await
    }

    async fn stop(&self, id: &ContainerId, grace_ms: u64) -> Result<(), RuntimeError> {
        task::stop(&self.inner, id, grace_ms).await
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        container::remove(&self.inner, id).await
    }

    async fn status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        container::status(&self.inner, id).await
    }

    async fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        container::list(&self.inner).await
    }

    async fn events(&self) -> Result<BoxStream<'static, RuntimeEvent>, RuntimeError> {
        let rx = self.inner.local.subscribe();
        Ok(Box::pin(futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|e| (e, rx))
        })))
    }

    async fn logs(
        &self,
        id: &ContainerId,
        from: u64,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<LogChunk, RuntimeError>>, RuntimeError> {
        logs::logs(&self.inner, id, from, follow).await
    }

    async fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout_ms: u64,
    ) -> Result<ExecOutput, RuntimeError> {
        exec::exec(&self.inner, id, command, timeout_ms).await
    }

    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        exec::stats(&self.inner, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::valid_id;

    #[test]
    fn identifiers() {
        for ok in ["a", "r1-a0", "conformance-exit-3", "a.b_c-d"] {
            assert!(valid_id(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a--b", "../x", "ü", "a\0b", &"x".repeat(65)] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }
}
