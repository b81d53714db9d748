//! # cloudless-core
//!
//! The vocabulary and the contracts of Cloudless. Every other crate depends on this one; a
//! vendor who implements a building block (say, a `Runtime`) depends on this crate alone. It has
//! no protoc step, no async runtime and no network.
//!
//! ```text
//!  manifests (YAML/JSON) ──parse+validate──▶ WorkloadSpec, ServiceSpec, ...
//!                                                   │
//!                                                   ▼
//!  drivers ──Command──▶ Consensus ──apply (pure, here)──▶ ClusterState ──changes──▶ watchers
//!                                                   │
//!                                 snapshot ─────────┴────────▶ Scheduler (Filter, Scorer)
//!
//!  Transport, Runtime, ObjectStore, SecretStore, Clock: traits here, implementations elsewhere;
//!  reference implementations and conformance suites in `testing` (feature "testing").
//! ```
//!
//! Decision logic never reads the clock: time is a parameter (DESIGN §4, §8).
//!
//! # Example
//!
//! A manifest parsed and validated, a node registered and the workload created by applying
//! [`state::Command`]s to a [`state::ClusterState`] with the pure [`state::apply`] — exactly
//! what every coordinator does with each committed command:
//!
//! ```rust
//! use cloudless_core::event::EventCategory;
//! use cloudless_core::ids::NodeName;
//! use cloudless_core::manifest::{self, Format, ManifestSpec};
//! use cloudless_core::node::{Liveness, NodeReport, Platform};
//! use cloudless_core::resources::Resources;
//! use cloudless_core::state::{ClusterState, Command, CommandEnvelope, CommandResult, apply};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let manifests = manifest::parse_str(
//!     "apiVersion: cloudless.dev/v1\n\
//!      kind: Workload\n\
//!      metadata: {name: web, namespace: shop}\n\
//!      spec: {image: nginx:1.27, replicas: 2}\n",
//!     Format::Yaml,
//! )?;
//! let ManifestSpec::Workload(spec) = manifests[0].spec.clone() else {
//!     return Err("expected a Workload".into());
//! };
//!
//! let mut state = ClusterState::new();
//! let size = Resources { cpu_millis: 4_000, memory_mib: 8_192, ..Resources::ZERO };
//! let report = NodeReport {
//!     platform: Platform::linux_amd64(),
//!     region: "home".into(),
//!     zone: "attic".into(),
//!     labels: Default::default(),
//!     capacity: size,
//!     allocatable: size,
//!     power: Default::default(),
//!     reliability: Default::default(),
//! };
//! let name = NodeName::new("edge-1")?;
//! let applied = apply(&mut state, &CommandEnvelope::new(1_000, Command::RegisterNode { name, report }))?;
//! let CommandResult::NodeRegistered { node } = applied.result else {
//!     return Err("expected NodeRegistered".into());
//! };
//! // New work waits for the first heartbeat (`Command::SetLiveness`, from the coordinator).
//! assert_eq!(state.nodes[&node].liveness, Liveness::Joining);
//! assert!(!state.nodes[&node].accepts_new_work());
//!
//! let create = Command::CreateWorkload {
//!     namespace: "shop".into(),
//!     name: "web".into(),
//!     labels: Default::default(),
//!     spec,
//! };
//! apply(&mut state, &CommandEnvelope::new(2_000, create))?;
//! let web = state.workload_by_name("shop", "web").ok_or("web was not created")?;
//! assert_eq!(web.spec.replicas, 2);
//! assert_eq!(state.revision.get(), 2);
//! // Decisions are recorded as events in the state itself.
//! assert!(state.events.iter().any(|e| e.category == EventCategory::Membership));
//! # Ok(())
//! # }
//! ```
//!
//! # The building blocks
//!
//! Six traits, each with a `# Contract`, a reference implementation and a conformance suite
//! in the `testing` module (feature `testing`); each trait's docs show it in use:
//! [`consensus::Consensus`], [`transport::Transport`], [`runtime::Runtime`],
//! [`object_store::ObjectStore`], [`secret_store::SecretStore`] and [`scheduler::Scheduler`]
//! (with its [`scheduler::Filter`] and [`scheduler::Scorer`] plugins); time comes from a
//! [`clock::Clock`].
//!
//! An agent drives whatever [`runtime::Runtime`] it was given; chained runtimes answer
//! [`runtime::Support::No`] for specs that are not theirs:
//!
//! ```rust
//! use cloudless_core::runtime::{ContainerId, ContainerState, Runtime, RuntimeError, Support};
//!
//! /// Stops a container (10 s grace) unless it already exited; returns its exit code.
//! async fn stop_replica(rt: &dyn Runtime, id: &ContainerId) -> Result<Option<i32>, RuntimeError> {
//!     if let ContainerState::Exited { code } = rt.status(id).await?.state {
//!         return Ok(Some(code));
//!     }
//!     rt.stop(id, 10_000).await?;
//!     match rt.status(id).await?.state {
//!         ContainerState::Exited { code } => Ok(Some(code)),
//!         _ => Ok(None),
//!     }
//! }
//!
//! /// The first runtime of a chain that accepts `spec`.
//! fn pick<'a>(
//!     chain: &'a [Box<dyn Runtime>],
//!     spec: &cloudless_core::runtime::ContainerSpec,
//! ) -> Option<&'a dyn Runtime> {
//!     chain.iter().map(|r| r.as_ref()).find(|r| r.supports(spec) == Support::Yes)
//! }
//! ```

pub mod change_hub;
pub mod clock;
pub mod consensus;
pub mod event;
pub mod ids;
pub mod manifest;
pub mod node;
pub mod object_store;
pub mod policy;
pub mod quantity;
pub mod replica;
pub mod resources;
pub mod runtime;
pub mod scheduler;
pub mod secret;
pub mod secret_store;
pub mod service;
pub mod state;
pub mod storage;
pub mod transport;
pub mod workload;

#[cfg(any(test, feature = "testing"))]
pub mod testing;

/// An error from a plugin or a vendor implementation, carried through our typed errors.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;
