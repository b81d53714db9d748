//! # cloudless-runtime
//!
//! Implementations of the [`Runtime`](cloudless_core::runtime::Runtime) building block. Today it
//! holds [`FakeRuntime`], the scripted in-memory runtime that the agent's tests, the in-process
//! cluster and the simulator run on; the containerd runtime and the process runtime (the weaker
//! fallback for devices without containerd) come next and pass the same conformance suite
//! (`cloudless_core::testing::runtime`).
//!
//! [`ContainerdRuntime`] is the default runtime, over containerd's gRPC API with the hardened
//! OCI spec of [`oci`] (design record: `docs/design/containerd-runtime.md`).
//!
//! [`ProcessRuntime`] runs host binaries (`process://` images) directly, under cgroup limits
//! where available, for devices without containerd — weaker isolation, documented in
//! `docs/design/process-runtime.md`; [`ChainRuntime`] asks runtimes in order and falls through
//! on "can't handle this spec".
//!
//! [`supervisor`] is the agent's pure node-local decision core (desired replicas + observed
//! containers + probe results → container actions; design record:
//! `docs/design/agent-supervisor.md`).
//!
//! ```text
//!  agent supervisor ──create/start/stop──▶ Runtime (FakeRuntime)
//!        ▲                                   │  Script per image / container id:
//!        │                                   │  exit N after D ms · run until stopped ·
//!        │                                   │  fail to start · pull fails
//!        │                                   ▼
//!        └──── events(): Exited{id, code} ◀── timeline task (tokio time) ──▶ log buffer
//!                                                                           (offsets, follow)
//! ```

pub mod fake;

pub use fake::FakeRuntime;
pub mod containerd;
pub mod oci;
pub mod supervisor;
pub use containerd::{ContainerdConfig, ContainerdRuntime};
pub mod process;
pub use process::{ProcessConfig, ProcessRuntime};
pub mod chain;
pub use chain::ChainRuntime;
pub mod busybox;
mod capped_log;
mod log_stream;
