//! # Cloudless
//!
//! The facade crate of Cloudless: it re-exports the building blocks so an application depends on
//! one crate, and wires them into roles: the [`fabric::Fabric`] builder, the [`coordinator`] and
//! [`agent`] drivers, the agent/coordinator [`control`] contract and its wire [`protocol`], and
//! the public gRPC [`api`] with its Rust [`Client`]. `docs/architecture.md` has the whole map.
//!
//! ```text
//!  cloudless (facade) ──▶ cloudless-core   vocabulary, state machine, manifests, traits
//!                    ├──▶ cloudless-sched  Scheduler (WeightedScheduler), rollout, reconciler
//!                    ├──▶ cloudless-net    Transport (QUIC + mTLS), wire types, RPC, identity
//!                    ├──▶ cloudless-store  Consensus (RaftConsensus on redb)
//!                    └──▶ cloudless-runtime Runtime (containerd, process, chain)
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
