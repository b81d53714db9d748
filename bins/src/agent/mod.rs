//! `cloudless-agent`: settings, data directory, and the `join | run` commands. Design record:
//! `docs/design/daemons.md`.
//!
//! ```text
//!  <data-dir>/ (0700)
//!    identity/node.key (0600), node.pem    from `join` (enrollment with a token)
//!    coordinators.json                      coordinator node ids by control address
//!    state/                                 the agent's ledger (AgentConfig::data_dir)
//!    process/                               process runtime state (adopted on restart)
//!    containerd/                            containerd runtime scratch
//! ```
//!
//! Images without a registry: `images:` in the config file lists OCI image layout tarballs
//! (e.g. from `cloudless_runtime::busybox::write_oci_layout`, `docker save`, `skopeo copy
//! oci-archive:`); `run` imports each into the agent's containerd namespace before the agent
//! starts (idempotent: an image already there is kept), so workloads can name them.
//!
//! Files: `config` (flags, config file, resolved settings), `image_gc` (the `image_gc:`
//! key and the collector), `join` (enrollment and the known coordinators), `runtime`
//! (containerd / process runtime wiring and image import), `run` (the running agent),
//! [`cgroups`] (removal of the agent's empty cgroups at stop).

pub mod cgroups;
mod config;
mod image_gc;
mod join;
mod run;
mod runtime;

pub use config::{AgentFile, AgentFlags, AgentSettings, RuntimeKind};
pub use image_gc::{ImageGcFile, ImageGcSettings};
pub use join::{KnownCoordinator, join_cmd};
pub use run::{RunningAgent, run};

/// File of learned coordinator ids.
pub const COORDINATORS_FILE: &str = "coordinators.json";
/// Default containerd namespace.
pub const DEFAULT_NAMESPACE: &str = "cloudless";
/// Default bridge name when a subnet is given.
pub const DEFAULT_BRIDGE: &str = "cloudless0";
/// Name of the shim binary next to the agent.
pub const SHIM_NAME: &str = "cloudless-agent-shim";
/// Default bytes of log kept per container (containerd runtime).
pub const DEFAULT_LOG_MAX_BYTES: u64 = 10 << 20;
/// Smallest accepted `log_max_bytes` other than 0.
pub const MIN_LOG_MAX_BYTES: u64 = 16 << 10;
/// Default seconds between image GC checks.
pub const DEFAULT_IMAGE_GC_PERIOD_SECS: u64 = 60;
/// Name of the container log writer next to the agent.
pub const LOGGER_NAME: &str = "cloudless-agent-logger";
