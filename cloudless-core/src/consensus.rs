//! The `Consensus` building block: the strongly consistent metadata store of the control plane.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::BoxError;
use crate::ids::{NodeId, Revision};
use crate::state::{Applied, ApplyError, Change, ClusterState, CommandEnvelope, ObjectKind};

/// Which changes a watch delivers.
///
/// ```rust
/// use cloudless_core::consensus::WatchFilter;
/// use cloudless_core::ids::Revision;
/// use cloudless_core::state::{Change, ObjectKind};
///
/// let change = |kind, key: &str| Change { revision: Revision(9), kind, key: key.into(), object: None };
/// let workloads = WatchFilter::kind(ObjectKind::Workload);
/// assert!(workloads.matches(&change(ObjectKind::Workload, "w3")));
/// assert!(!workloads.matches(&change(ObjectKind::Node, "n1")));
///
/// let shop_services = WatchFilter { key_prefix: "shop/".into(), ..WatchFilter::kind(ObjectKind::Service) };
/// assert!(shop_services.matches(&change(ObjectKind::Service, "shop/web")));
/// assert!(!shop_services.matches(&change(ObjectKind::Service, "default/web")));
/// assert!(WatchFilter::all().matches(&change(ObjectKind::Event, "9.0")));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchFilter {
    /// Only these kinds; every kind when empty.
    pub kinds: BTreeSet<ObjectKind>,
    /// Only keys starting with this prefix; every key when empty.
    pub key_prefix: String,
}

impl WatchFilter {
    /// Every change.
    pub fn all() -> Self {
        Self::default()
    }

    /// Changes of one kind.
    pub fn kind(kind: ObjectKind) -> Self {
        Self {
            kinds: BTreeSet::from([kind]),
            key_prefix: String::new(),
        }
    }

    /// True if `change` passes the filter.
    pub fn matches(&self, change: &Change) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&change.kind))
            && change.key.starts_with(&self.key_prefix)
    }
}

/// A stream of applied changes, in revision order.
pub type ChangeStream = BoxStream<'static, Result<Change, ConsensusError>>;

/// Leadership and membership as this node sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusStatus {
    /// This member's id.
    pub id: NodeId,
    /// The current leader, if known.
    pub leader: Option<NodeId>,
    /// The current term.
    pub term: u64,
    /// Voting members.
    pub voters: BTreeSet<NodeId>,
    /// Last applied revision on this member.
    pub applied: Revision,
}

/// Errors of [`Consensus`] operations.
#[derive(Debug, thiserror::Error)]
pub enum ConsensusError {
    /// The command was committed and applied but the state machine rejected it.
    #[error("rejected: {0}")]
    Rejected(#[from] ApplyError),
    /// This member is not the leader; retry at the hinted leader.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// The leader, if known.
        leader: Option<NodeId>,
    },
    /// No quorum can be reached now; the command may or may not commit later.
    #[error("consensus unavailable: {0}")]
    Unavailable(String),
    /// The requested watch revision has been compacted away.
    #[error("revision {requested} is compacted; the oldest available is {oldest}")]
    Compacted {
        /// Revision asked for.
        requested: Revision,
        /// Oldest revision still available.
        oldest: Revision,
    },
    /// A membership change was refused.
    #[error("membership change refused: {0}")]
    Membership(String),
    /// The member is shutting down.
    #[error("consensus is shut down")]
    Shutdown,
    /// Storage failed; the member stops serving.
    #[error("storage failure: {0}")]
    Storage(String),
    /// Any other implementation error.
    #[error(transparent)]
    Other(BoxError),
}

/// Propose typed commands, read consistent state, watch applied changes.
///
/// # Contract
/// Every implementation must guarantee:
/// - **Apply semantics**: commands are applied with [`crate::state::apply`], in one total order,
///   exactly once each. `propose` returns only after the command is durably committed and applied
///   on this member; a state-machine rejection is `Err(Rejected)`, never a silent success.
/// - **Revisions**: every applied (non-rejected) command advances the revision by one; revisions
///   are dense and never reused.
/// - **Linearizable reads**: `state()` reflects every command whose `propose` returned before the
///   call started.
/// - **Watch**: `watch(filter, from)` delivers every change with revision ≥ `from` that matches
///   the filter, in revision order, without gaps or duplicates, then follows new changes. If
///   `from` is older than the retained history the call (or the stream's first item) is
///   `Err(Compacted)`. `from = Revision(0)` means "from the oldest retained".
/// - **Idempotency**: envelopes carrying an idempotency key seen before return the first result
///   with `deduplicated = true` and change nothing.
///
/// # Example
///
/// Callers depend on `dyn Consensus`; here with the in-memory reference implementation
/// (feature `testing`; production uses `cloudless_store::RaftConsensus`):
///
/// ```rust
/// # #[cfg(feature = "testing")] {
/// use cloudless_core::consensus::{Consensus, WatchFilter};
/// use cloudless_core::event::{EventCategory, Severity};
/// use cloudless_core::ids::Revision;
/// use cloudless_core::state::{Command, CommandEnvelope, ObjectKind};
/// use cloudless_core::testing::consensus::MemConsensus;
/// use futures::StreamExt;
///
/// # futures::executor::block_on(async {
/// let consensus: Box<dyn Consensus> = Box::new(MemConsensus::new());
/// let mut events = consensus.watch(WatchFilter::kind(ObjectKind::Event), Revision(0)).await?;
///
/// let note = Command::RecordEvent {
///     category: EventCategory::Workload,
///     severity: Severity::Info,
///     subject: "workload/shop/web".into(),
///     reason: "Note".into(),
///     message: "deployed by the example".into(),
/// };
/// let applied = consensus.propose(CommandEnvelope::new(1_000, note)).await?;
/// assert_eq!(applied.revision, Revision(1));
/// assert_eq!(consensus.state().await?.events.len(), 1);
///
/// let change = events.next().await.ok_or("the watch ended")??;
/// assert_eq!((change.revision, change.kind), (Revision(1), ObjectKind::Event));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// # }
/// ```
/// - No method panics on any input.
#[async_trait]
pub trait Consensus: Send + Sync + 'static {
    /// Commits and applies a command; returns its result.
    async fn propose(&self, command: CommandEnvelope) -> Result<Applied, ConsensusError>;

    /// A linearizable snapshot of the state.
    async fn state(&self) -> Result<Arc<ClusterState>, ConsensusError>;

    /// Applied changes matching `filter`, from revision `from` on.
    async fn watch(
        &self,
        filter: WatchFilter,
        from: Revision,
    ) -> Result<ChangeStream, ConsensusError>;

    /// Leadership and membership as this member sees it.
    async fn status(&self) -> Result<ConsensusStatus, ConsensusError>;

    /// Adds a voting member reachable at `address`.
    async fn add_voter(&self, id: NodeId, address: String) -> Result<(), ConsensusError>;

    /// Removes a voting member.
    async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError>;
}
