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
//!
//! # Examples
//!
//! Embedding a node: see [`fabric::Fabric`] for a coordinator and an agent in one process,
//! and [`fabric::FabricBuilder`] for what each role needs.
//!
//! Talking to a running cluster through the public API with an admin certificate (what
//! `cloudlessctl` does):
//!
//! ```no_run
//! use cloudless::Client;
//! use cloudless::net::identity::NodeCredentials;
//!
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let creds = NodeCredentials::load("/home/me/.config/cloudless/admin".as_ref())?;
//! let client = Client::new(["10.0.0.1:7443", "10.0.0.2:7443", "10.0.0.3:7443"], &creds)?;
//! let applied = client.apply(&std::fs::read_to_string("web.yaml")?).await?;
//! println!("{applied:?}");
//! let rollout = client.rollout_status("default", "web").await?;
//! println!("{}/{} ready, complete: {}", rollout.ready, rollout.desired, rollout.complete);
//! # Ok(())
//! # }
//! ```
//!
//! A whole cluster in one thread on virtual time, for experiments and tests (feature `sim`):
//!
//! ```rust
//! # #[cfg(feature = "sim")]
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//!
//! use cloudless::core::workload::WorkloadSpec;
//! use cloudless::sim::SimCluster;
//!
//! let rt = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build()?;
//! rt.block_on(async {
//!     let mut sim = SimCluster::builder(42).coordinators(1).agents_in_zones(3, &["a", "b", "c"]).build().await?;
//!     let mut spec = WorkloadSpec::new("web:1");
//!     spec.replicas = 3;
//!     let web = sim.create_workload("default", "web", spec).await?;
//!     sim.run_until(Duration::from_secs(60), "3 replicas running", |v| v.running_of(web).len() == 3)
//!         .await?;
//!     sim.shutdown().await;
//!     Ok::<(), cloudless::sim::SimError>(())
//! })?;
//! # Ok(())
//! # }
//! # #[cfg(not(feature = "sim"))]
//! # fn main() {}
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
