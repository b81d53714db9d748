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
