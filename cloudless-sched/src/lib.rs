//! # cloudless-sched
//!
//! The default [`Scheduler`](cloudless_core::scheduler::Scheduler) of Cloudless and the pure
//! decision logic that turns desired state into placement commands.
//!
//! ```text
//!  ClusterSnapshot + PlacementRequest ─▶ filters ─▶ scorers ─▶ S = Σ wᵢ·sᵢ ─▶ select (batch)
//!  desired workloads + replica ledger ─▶ reconcile ─▶ place / replace / stop commands
//!  old + new replica sets + readiness ─▶ rollout   ─▶ next rollout steps
//! ```

pub mod config;
pub mod filters;
pub mod pipeline;
pub mod reconcile;
pub mod rollout;
pub mod scorers;

pub use config::{SchedulerConfig, Weights};
pub use pipeline::{WeightedScheduler, WeightedSchedulerBuilder};
