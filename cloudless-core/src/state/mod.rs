//! The cluster state machine (DESIGN §8): [`Command`]s applied by a pure [`apply`] to a
//! [`ClusterState`]. The in-memory and the raft consensus both apply exactly this logic.
//!
//! ```text
//!  CommandEnvelope ──apply(&mut ClusterState)──▶ Ok(Applied { revision, result, changes })
//!                                         └────▶ Err(ApplyError)   (state unchanged)
//! ```
//!
//! `apply` never reads a clock, never does I/O and iterates only ordered maps, so the same
//! sequence of commands gives the same state on every replica.

mod apply;
mod command;
mod types;

pub use apply::apply;
pub use command::*;
pub use types::*;
