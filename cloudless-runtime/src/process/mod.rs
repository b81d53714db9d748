//! [`ProcessRuntime`]: runs a workload's command directly on the host, for devices without
//! containerd — the documented, weaker fallback (design record: `docs/design/process-runtime.md`).
//!
//! ```text
//!  create: plan (argv, env, cwd, user) ─▶ replica dir (0700) ─▶ cgroup + limits ─▶ plan.json
//!  start:  shim launch ─▶ shim supervise (own session, outlives the agent) ─▶ shim run ─▶ exec
//!          ◀── "started <pid>" ── started.json (pid + start time)
//!          waiter thread: flock(shim.lock) returns when the shim is gone ─▶ exit.json ─▶ events()
//!  stop:   SIGTERM to the process group ─▶ grace ─▶ SIGKILL group + cgroup ─▶ the waiter's exit
//!  open:   every replica dir with started.json and no exit.json gets a waiter again (adoption)
//! ```
//!
//! It takes only specs whose image is `process://` (optionally `process:///path/to/program`,
//! the program when the spec has no command) and whose runtime class is absent or `process`;
//! anything else is `Support::No`, so a [`ChainRuntime`](crate::ChainRuntime) asks the next
//! runtime.

mod cgroup;

/// The cgroup OOM-kill counter parser, shared with the containerd runtime.
pub(crate) use cgroup::oom_kill_count;
mod ops;
mod plan;
mod record;
pub mod shim;
mod signal;
mod watch;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use async_trait::async_trait;
use cloudless_core::node::Platform;
use cloudless_core::runtime::{
    ContainerId, ContainerSpec, ContainerStats, ContainerStatus, ExecOutput, ImageInfo, LogChunk,
    Runtime, RuntimeError, RuntimeEvent, Support,
};
use futures::stream::BoxStream;

pub use cgroup::CgroupMode;
pub use plan::{ENV_EPHEMERAL_DIR, ENV_VOLUME_PREFIX, IMAGE_SCHEME, RUNTIME_CLASS};

/// Where and how a [`ProcessRuntime`] runs processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessConfig {
    /// The runtime's state: `replicas/<id>` (root-only records and logs) and `work/` (the
    /// per-replica ephemeral directories). A restarted agent with the same directory adopts the
    /// processes it finds there.
    pub state_dir: PathBuf,
    /// Path of the `cloudless-process-shim` binary.
    pub shim: PathBuf,
    /// cgroup hierarchy for limits and stats.
    pub cgroup: CgroupMode,
    /// Parent cgroup (inside each hierarchy) of the per-replica cgroups; give each runtime on a
    /// host its own.
    pub cgroup_parent: String,
    /// The address status reports for a running replica (processes share the host's network).
    pub address: Option<String>,
    /// Bytes kept per replica log: its files rotate, keeping the newest output (see
    /// `docs/design/log-rotation.md`).
    pub log_max_bytes: u64,
    /// Set no-new-privileges on every process (setuid binaries then gain nothing).
    pub no_new_privileges: bool,
    /// Grace period `remove` gives a running replica before SIGKILL, in ms.
    pub remove_grace_ms: u64,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        Self {
            state_dir: PathBuf::from("/var/lib/cloudless/process"),
            shim: PathBuf::from("/usr/libexec/cloudless/cloudless-process-shim"),
            cgroup: CgroupMode::Auto,
            cgroup_parent: "cloudless-process".to_owned(),
            address: Some("127.0.0.1".to_owned()),
            log_max_bytes: 16 << 20,
            no_new_privileges: true,
            remove_grace_ms: 0,
        }
    }
}

/// A [`ProcessConfig`] field that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("process runtime config: {field}: {reason}")]
pub struct ProcessConfigError {
    /// The field, e.g. `state_dir`.
    pub field: &'static str,
    /// Why.
    pub reason: String,
}

impl ProcessConfig {
    /// The defaults with `state_dir` and `shim`.
    pub fn new(state_dir: impl Into<PathBuf>, shim: impl Into<PathBuf>) -> Self {
        Self {
            state_dir: state_dir.into(),
            shim: shim.into(),
            ..Self::default()
        }
    }

    /// Checks every field, naming the first bad one.
    pub fn validate(&self) -> Result<(), ProcessConfigError> {
        let bad = |field, reason: String| Err(ProcessConfigError { field, reason });
        if !self.state_dir.is_absolute() {
            return bad("state_dir", format!("{:?} is not absolute", self.state_dir));
        }
        if !self.shim.is_absolute() {
            return bad("shim", format!("{:?} is not absolute", self.shim));
        }
        if !self.shim.is_file() {
            return bad("shim", format!("{} is not a file", self.shim.display()));
        }
        let parent = Path::new(&self.cgroup_parent);
        let clean = parent.components().all(|c| {
            matches!(
                c,
                std::path::Component::Normal(_) | std::path::Component::RootDir
            )
        });
        if self.cgroup_parent.trim_matches('/').is_empty() || !clean {
            return bad(
                "cgroup_parent",
                format!(
                    "{:?} must name a cgroup below the root without `..`",
                    self.cgroup_parent
                ),
            );
        }
        if self.log_max_bytes == 0 {
            return bad("log_max_bytes", "must be at least 1".into());
        }
        Ok(())
    }
}

/// What the process runtime knows about one replica beyond [`ContainerStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    /// The main process (also the process group id), once started.
    pub pid: Option<u32>,
    /// The shim supervising it, once started.
    pub shim_pid: Option<u32>,
    /// The replica's cgroup directories (none: it runs without limits).
    pub cgroup_dirs: Vec<PathBuf>,
    /// Why asked-for limits are not applied, when they are not.
    pub limits_note: Option<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The replica's ephemeral directory.
    pub work_dir: PathBuf,
    /// The log file.
    pub log_path: PathBuf,
    /// The shim vanished without recording the exit (the exit code is then 255).
    pub lost: bool,
}

pub(crate) struct Inner {
    pub(crate) cfg: ProcessConfig,
    /// `cfg.cgroup` with `Auto` resolved.
    pub(crate) cgroup: CgroupMode,
    pub(crate) euid: u32,
    pub(crate) watch: watch::Watch,
}

impl Inner {
    pub(crate) fn replica_dir(&self, id: &str) -> PathBuf {
        record::replica_dir(&self.cfg.state_dir, id)
    }

    pub(crate) fn work_root(&self) -> PathBuf {
        self.cfg.state_dir.join("work")
    }
}

/// The process runtime. Cheap to clone; clones share state.
#[derive(Clone)]
pub struct ProcessRuntime {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ProcessRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessRuntime")
            .field("config", &self.inner.cfg)
            .field("cgroup", &self.inner.cgroup)
            .finish()
    }
}

impl ProcessRuntime {
    /// Validates `cfg`, prepares the state directory and adopts the replicas running there
    /// (their exits are reported by [`Runtime::events`] from now on).
    pub async fn open(cfg: ProcessConfig) -> Result<Self, RuntimeError> {
        cfg.validate()
            .map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
        let cgroup = cfg.cgroup.resolve();
        let inner = Arc::new(Inner {
            euid: rustix::process::geteuid().as_raw(),
            cgroup,
            cfg,
            watch: watch::Watch::default(),
        });
        ops::prepare_dirs(&inner).await?;
        ops::adopt(&inner).await?;
        Ok(Self { inner })
    }

    /// The configuration.
    pub fn config(&self) -> &ProcessConfig {
        &self.inner.cfg
    }

    /// The cgroup hierarchy in use (`Auto` resolved).
    pub fn cgroup_mode(&self) -> &CgroupMode {
        &self.inner.cgroup
    }

    /// Pids, cgroup, directories and limit notes of replica `id`.
    pub async fn inspect(&self, id: &ContainerId) -> Result<ProcessInfo, RuntimeError> {
        ops::inspect(&self.inner, id).await
    }
}

#[async_trait]
impl Runtime for ProcessRuntime {
    fn name(&self) -> &str {
        "process"
    }

    fn supports(&self, spec: &ContainerSpec) -> Support {
        plan::support(spec)
    }

    async fn pull_image(
        &self,
        image: &str,
        _platform: Option<&Platform>,
    ) -> Result<ImageInfo, RuntimeError> {
        ops::pull_image(image).await
    }

    async fn import_image(&self, _archive: &Path) -> Result<Vec<ImageInfo>, RuntimeError> {
        Err(RuntimeError::Unsupported(
            "the process runtime runs host binaries and imports no images".into(),
        ))
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        ops::create(&self.inner, spec).await
    }

    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        ops::start(&self.inner, id).await
    }

    async fn stop(&self, id: &ContainerId, grace_ms: u64) -> Result<(), RuntimeError> {
        ops::stop(&self.inner, id, grace_ms).await
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        ops::remove(&self.inner, id).await
    }

    async fn status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        ops::status(&self.inner, id).await
    }

    async fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        ops::list(&self.inner).await
    }

    async fn events(&self) -> Result<BoxStream<'static, RuntimeEvent>, RuntimeError> {
        let rx = self.inner.watch.subscribe();
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
        ops::logs(&self.inner, id, from, follow).await
    }

    async fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout_ms: u64,
    ) -> Result<ExecOutput, RuntimeError> {
        ops::exec(&self.inner, id, command, timeout_ms).await
    }

    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        ops::stats(&self.inner, id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_errors_name_the_field() {
        let shim = std::env::current_exe().expect("exe");
        let ok = ProcessConfig::new("/tmp/x", &shim);
        assert_eq!(ok.validate(), Ok(()));
        let cases: [(&str, ProcessConfig); 5] = [
            ("state_dir", ProcessConfig::new("rel", &shim)),
            ("shim", ProcessConfig::new("/tmp/x", "/no/such/shim")),
            (
                "cgroup_parent",
                ProcessConfig {
                    cgroup_parent: "/".into(),
                    ..ok.clone()
                },
            ),
            (
                "cgroup_parent",
                ProcessConfig {
                    cgroup_parent: "a/../../b".into(),
                    ..ok.clone()
                },
            ),
            (
                "log_max_bytes",
                ProcessConfig {
                    log_max_bytes: 0,
                    ..ok.clone()
                },
            ),
        ];
        for (field, cfg) in cases {
            let err = cfg.validate().expect_err(field);
            assert_eq!(err.field, field, "{err}");
        }
    }
}
