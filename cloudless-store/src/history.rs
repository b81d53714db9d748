//! The applied state shared between the raft state machine and
//! [`RaftConsensus`](crate::RaftConsensus): core's [`ChangeHub`] (state, bounded change
//! history, watch streams) with the raft bookkeeping kept under the same lock.
//!
//! The state machine (owned by openraft) writes under the lock; consensus handles read.

use std::sync::Arc;

use cloudless_core::change_hub::ChangeHub;
use cloudless_core::state::ClusterState;

use crate::types::{LogId, StoredMembership};

/// Raft bookkeeping applied together with the state.
#[derive(Debug, Clone, Default)]
pub(crate) struct RaftApplied {
    /// The last applied log id.
    pub(crate) last_applied: Option<LogId>,
    /// The last applied membership.
    pub(crate) membership: StoredMembership,
}

/// The applied state and the signal that wakes watch streams.
pub(crate) type Hub = ChangeHub<RaftApplied>;

/// A hub holding `state` as applied up to `last_applied`.
pub(crate) fn new_hub(
    state: ClusterState,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    retained: usize,
) -> Arc<Hub> {
    ChangeHub::new(
        state,
        RaftApplied {
            last_applied,
            membership,
        },
        retained,
    )
}
