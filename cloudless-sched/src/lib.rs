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
//!
//! # Example
//!
//! One round of what a coordinator does: reconcile the state, ask the scheduler where the
//! missing replicas go, and commit the assignment.
//!
//! ```rust
//! use cloudless_core::ids::NodeName;
//! use cloudless_core::node::{Liveness, NodeReport, Platform};
//! use cloudless_core::resources::Resources;
//! use cloudless_core::scheduler::{ClusterSnapshot, PlacementRequest, Scheduler};
//! use cloudless_core::state::{Assignment, ClusterState, Command, CommandEnvelope, apply};
//! use cloudless_core::workload::WorkloadSpec;
//! use cloudless_sched::reconcile::{PlaceReason, ReconcileAction, reconcile};
//! use cloudless_sched::{SchedulerConfig, WeightedScheduler};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut state = ClusterState::new();
//! let mut now = 1_000;
//! let mut run = |state: &mut ClusterState, command| {
//!     now += 1;
//!     apply(state, &CommandEnvelope::new(now, command))
//! };
//! // Two Ready nodes with 2 cores and 2 GiB each.
//! let size = Resources { cpu_millis: 2_000, memory_mib: 2_048, ..Resources::ZERO };
//! for name in ["pi-1", "pi-2"] {
//!     let report = NodeReport {
//!         platform: Platform::linux_amd64(),
//!         region: "home".into(),
//!         zone: name.into(),
//!         labels: Default::default(),
//!         capacity: size,
//!         allocatable: size,
//!         power: Default::default(),
//!         reliability: Default::default(),
//!     };
//!     run(&mut state, Command::RegisterNode { name: NodeName::new(name)?, report })?;
//! }
//! let ready = state.nodes.keys().map(|id| (*id, Liveness::Ready)).collect();
//! run(&mut state, Command::SetLiveness { changes: ready })?;
//!
//! let mut spec = WorkloadSpec::new("nginx:1.27");
//! spec.replicas = 2;
//! spec.resources.requests.memory = "1536Mi".parse()?; // one replica per node fits
//! let create = Command::CreateWorkload {
//!     namespace: "shop".into(),
//!     name: "web".into(),
//!     labels: Default::default(),
//!     spec,
//! };
//! run(&mut state, create)?;
//!
//! // The reconciler says what is missing ...
//! let round = reconcile(&state);
//! let [ReconcileAction::Place { workload, generation, count, exclude, reason }] = &round.actions[..] else {
//!     return Err(format!("unexpected actions {:?}", round.actions).into());
//! };
//! assert_eq!((*count, *reason), (2, PlaceReason::ScaleUp));
//!
//! // ... the scheduler says where ...
//! let scheduler = WeightedScheduler::new(SchedulerConfig::default())?;
//! let request = PlacementRequest {
//!     workload: state.workloads[workload].clone(),
//!     count: *count,
//!     exclude: exclude.clone(),
//!     seed: 42,
//! };
//! let result = scheduler.place(&ClusterSnapshot::from_state(&state), &request);
//! assert!(result.unplaced.is_empty());
//! assert_ne!(result.placements[0].node, result.placements[1].node);
//!
//! // ... and the assignment is committed like any other command.
//! let need = request.workload.spec.resources.requests.to_resources();
//! let assignments = result
//!     .placements
//!     .iter()
//!     .map(|p| Assignment { node: p.node, resources: need })
//!     .collect();
//! let assign = Command::AssignReplicas { workload: *workload, generation: *generation, assignments };
//! run(&mut state, assign)?;
//! assert_eq!(state.replicas.len(), 2);
//! assert!(!reconcile(&state).actions.iter().any(|a| matches!(a, ReconcileAction::Place { .. })));
//! # Ok(())
//! # }
//! ```

pub mod config;
pub mod filters;
pub mod pipeline;
pub mod reconcile;
pub mod rollout;
pub mod scorers;

pub use config::{SchedulerConfig, Weights};
pub use pipeline::{WeightedScheduler, WeightedSchedulerBuilder};
