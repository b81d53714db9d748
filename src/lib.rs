//! # Cloudless
//!
//! The facade crate of Cloudless: it re-exports the building blocks so an application depends on
//! one crate. The `Fabric` builder, the coordinator and agent drivers and the public API arrive
//! with the control-plane work.
//!
//! ```text
//!  cloudless (facade) ──▶ cloudless-core   vocabulary, state machine, manifests, traits
//!                    ├──▶ cloudless-sched  Scheduler
//!                    ├──▶ cloudless-net    Transport, wire types, RPC
//!                    ├──▶ cloudless-store  Consensus, ObjectStore, SecretStore
//!                    └──▶ cloudless-runtime Runtime
//! ```

pub mod agent;
pub mod api;
pub mod client;
pub mod control;
pub mod coordinator;
pub mod fabric;
pub mod protocol;
#[cfg(feature = "sim")]
pub mod sim;

pub use cloudless_core as core;
pub use cloudless_net as net;
pub use cloudless_runtime as runtime;
pub use cloudless_sched as sched;
pub use cloudless_store as store;

pub use client::Client;
