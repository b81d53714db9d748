//! [`MemConsensus`], the single-member in-memory [`Consensus`], and the conformance suite for
//! the `Consensus` contract.
//!
//! ```text
//!  propose ──lock──▶ apply(Arc::make_mut(state)) ──▶ history ring (bounded, whole revisions)
//!                                   │                        ▲
//!                                   └─ watch::Sender<Revision>   │ re-read on every wake-up
//!                                              │                 │
//!  watch(filter, from) ── stream: cursor `next` ─┴─ wait ────────┘  (too far behind → Compacted)
//! ```
//!
//! Watch streams never hold changes of their own: they keep a cursor and re-read the shared
//! ring whenever the applied revision moves. A slow subscriber therefore cannot lose changes
//! silently — if the ring moved past its cursor it gets `Err(Compacted)` and ends.
//!
//! ```ignore
//! #[tokio::test]
//! async fn my_consensus_conforms() {
//!     cloudless_core::testing::consensus::conformance(|| async { MyConsensus::start().await }).await;
//! }
//! ```

use std::collections::{BTreeSet, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use futures::StreamExt;
use tokio::sync::watch;

use super::check;
use crate::consensus::{ChangeStream, Consensus, ConsensusError, ConsensusStatus, WatchFilter};
use crate::event::{EventCategory, Severity};
use crate::ids::{NodeId, Revision};
use crate::node::{NodeReport, Platform};
use crate::resources::Resources;
use crate::service::{ServiceSelector, ServiceSpec};
use crate::state::{
    Applied, ApplyError, COMMAND_VERSION, Change, ClusterState, Command, CommandEnvelope,
    CommandResult, ObjectKind, apply,
};
use crate::workload::WorkloadSpec;

/// Settings of a [`MemConsensus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemConsensusConfig {
    /// The member's id, reported by `status()`.
    pub id: NodeId,
    /// How many changes the watch history keeps. Whole revisions are dropped, oldest first,
    /// but the newest revision is always kept even if it alone is larger.
    pub retained_changes: usize,
}

impl Default for MemConsensusConfig {
    fn default() -> Self {
        Self {
            id: NodeId(1),
            retained_changes: 10_000,
        }
    }
}

/// A [`MemConsensusConfig`] that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MemConsensusConfigError {
    /// `retained_changes` is zero: no watch could ever resume.
    #[error("retained_changes must be at least 1")]
    NoRetention,
}

impl MemConsensusConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), MemConsensusConfigError> {
        if self.retained_changes == 0 {
            return Err(MemConsensusConfigError::NoRetention);
        }
        Ok(())
    }

    /// Sets the member id.
    pub fn with_id(mut self, id: NodeId) -> Self {
        self.id = id;
        self
    }

    /// Sets the watch history size.
    pub fn with_retained_changes(mut self, n: usize) -> Self {
        self.retained_changes = n;
        self
    }
}

/// A single-member, in-memory [`Consensus`] for tests and simulations.
///
/// It is its own leader at term 1 with itself as the only voter; membership changes are
/// refused. Commands are applied with [`crate::state::apply`] under a lock, so they have one
/// total order; the state is shared copy-on-write (`Arc::make_mut`), so `state()` is cheap
/// and a snapshot never changes under its reader. Cloning the handle shares the member.
#[derive(Clone)]
pub struct MemConsensus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for MemConsensus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemConsensus")
            .field("id", &self.inner.id)
            .field("applied", &*self.inner.applied.borrow())
            .finish_non_exhaustive()
    }
}

struct Inner {
    id: NodeId,
    shared: Mutex<Shared>,
    /// The last applied revision; every watch stream waits on it.
    applied: watch::Sender<Revision>,
}

struct Shared {
    state: Arc<ClusterState>,
    /// Applied changes in revision order.
    history: VecDeque<Change>,
    retained: usize,
    /// Every change with a revision ≥ this is still in `history`.
    first_available: Revision,
    shut_down: bool,
}

impl Default for MemConsensus {
    fn default() -> Self {
        Self::new()
    }
}

impl MemConsensus {
    /// An empty cluster state with the default settings.
    pub fn new() -> Self {
        Self::from_parts(MemConsensusConfig::default(), ClusterState::new())
    }

    /// Starts from `state` (e.g. a snapshot) with `config`; watches can resume from the
    /// revision after the snapshot's.
    pub fn with_state(
        config: MemConsensusConfig,
        state: ClusterState,
    ) -> Result<Self, MemConsensusConfigError> {
        config.validate()?;
        Ok(Self::from_parts(config, state))
    }

    /// An empty cluster state with `config`.
    pub fn with_config(config: MemConsensusConfig) -> Result<Self, MemConsensusConfigError> {
        Self::with_state(config, ClusterState::new())
    }

    fn from_parts(config: MemConsensusConfig, state: ClusterState) -> Self {
        let revision = state.revision;
        let (applied, _) = watch::channel(revision);
        Self {
            inner: Arc::new(Inner {
                id: config.id,
                shared: Mutex::new(Shared {
                    state: Arc::new(state),
                    history: VecDeque::new(),
                    retained: config.retained_changes.max(1),
                    first_available: Revision(revision.0.saturating_add(1)),
                    shut_down: false,
                }),
                applied,
            }),
        }
    }

    /// Stops serving: later calls fail with `Shutdown` and open watch streams end with it.
    pub fn shutdown(&self) {
        self.inner.lock().shut_down = true;
        // Wake every stream so it notices.
        self.inner.applied.send_modify(|_| {});
    }
}

impl Inner {
    /// The shared part. `apply` never panics, so a poisoned lock still holds a consistent state.
    fn lock(&self) -> MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Shared {
    fn record(&mut self, changes: &[Change]) {
        self.history.extend(changes.iter().cloned());
        let newest = self.state.revision;
        while self.history.len() > self.retained {
            let Some(oldest) = self.history.front().map(|c| c.revision) else {
                break;
            };
            if oldest >= newest {
                break;
            }
            while self.history.front().is_some_and(|c| c.revision == oldest) {
                self.history.pop_front();
            }
            self.first_available = Revision(oldest.0.saturating_add(1));
        }
    }
}

/// Where one watch stream is.
struct Cursor {
    inner: Arc<Inner>,
    filter: WatchFilter,
    next: Revision,
    rx: watch::Receiver<Revision>,
    buffer: VecDeque<Change>,
    done: bool,
}

impl Cursor {
    /// Moves every retained change from `next` on that passes the filter into the buffer and
    /// advances `next` past the applied revision; or says why the stream must end.
    fn read_history(&mut self) -> Option<ConsensusError> {
        let shared = self.inner.lock();
        if shared.shut_down {
            return Some(ConsensusError::Shutdown);
        }
        if self.next < shared.first_available {
            return Some(ConsensusError::Compacted {
                requested: self.next,
                oldest: shared.first_available,
            });
        }
        let start = shared.history.partition_point(|c| c.revision < self.next);
        let filter = &self.filter;
        self.buffer.extend(
            shared
                .history
                .range(start..)
                .filter(|c| filter.matches(c))
                .cloned(),
        );
        self.next = Revision(shared.state.revision.0.saturating_add(1)).max(self.next);
        None
    }

    async fn next_item(mut self) -> Option<(Result<Change, ConsensusError>, Cursor)> {
        loop {
            if let Some(change) = self.buffer.pop_front() {
                return Some((Ok(change), self));
            }
            if self.done {
                return None;
            }
            // Mark the current value seen *before* reading, so an apply that lands after the
            // read wakes the wait below instead of being missed.
            self.rx.borrow_and_update();
            if let Some(err) = self.read_history() {
                self.done = true;
                return Some((Err(err), self));
            }
            if self.buffer.is_empty() && self.rx.changed().await.is_err() {
                // The sender lives in `inner`, which this cursor holds: unreachable, but
                // ending the stream is the safe answer.
                return None;
            }
        }
    }
}

#[async_trait]
impl Consensus for MemConsensus {
    async fn propose(&self, command: CommandEnvelope) -> Result<Applied, ConsensusError> {
        let applied = {
            let mut shared = self.inner.lock();
            if shared.shut_down {
                return Err(ConsensusError::Shutdown);
            }
            let applied = apply(Arc::make_mut(&mut shared.state), &command)?;
            if !applied.deduplicated {
                shared.record(&applied.changes);
            }
            applied
        };
        if !applied.deduplicated {
            self.inner.applied.send_replace(applied.revision);
        }
        Ok(applied)
    }

    async fn state(&self) -> Result<Arc<ClusterState>, ConsensusError> {
        let shared = self.inner.lock();
        if shared.shut_down {
            return Err(ConsensusError::Shutdown);
        }
        Ok(Arc::clone(&shared.state))
    }

    async fn watch(
        &self,
        filter: WatchFilter,
        from: Revision,
    ) -> Result<ChangeStream, ConsensusError> {
        let next = {
            let shared = self.inner.lock();
            if shared.shut_down {
                return Err(ConsensusError::Shutdown);
            }
            if from == Revision(0) {
                shared.first_available
            } else if from < shared.first_available {
                return Err(ConsensusError::Compacted {
                    requested: from,
                    oldest: shared.first_available,
                });
            } else {
                from
            }
        };
        let cursor = Cursor {
            inner: Arc::clone(&self.inner),
            filter,
            next,
            rx: self.inner.applied.subscribe(),
            buffer: VecDeque::new(),
            done: false,
        };
        Ok(futures::stream::unfold(cursor, Cursor::next_item).boxed())
    }

    async fn status(&self) -> Result<ConsensusStatus, ConsensusError> {
        let shared = self.inner.lock();
        if shared.shut_down {
            return Err(ConsensusError::Shutdown);
        }
        Ok(ConsensusStatus {
            id: self.inner.id,
            leader: Some(self.inner.id),
            term: 1,
            voters: BTreeSet::from([self.inner.id]),
            applied: shared.state.revision,
        })
    }

    async fn add_voter(&self, id: NodeId, _address: String) -> Result<(), ConsensusError> {
        Err(ConsensusError::Membership(format!(
            "MemConsensus has exactly one member ({}); cannot add {id}",
            self.inner.id
        )))
    }

    async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError> {
        Err(ConsensusError::Membership(format!(
            "MemConsensus has exactly one member ({}); cannot remove {id}",
            self.inner.id
        )))
    }
}

// ---------------------------------------------------------------------------------------------
// Conformance suite
// ---------------------------------------------------------------------------------------------

const SUITE: &str = "Consensus";

/// What the suite may assume about an implementation beyond the contract.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConformanceOptions {
    /// If the implementation compacts its watch history: after this many more proposals
    /// (each producing one change) revision 1 is guaranteed to be compacted. `None` skips
    /// the compaction check.
    pub compacts_after: Option<u64>,
}

/// Runs every check of the [`Consensus`] contract that one handle can observe, each on a
/// fresh instance from `make` (async, since a replicated implementation must elect a leader
/// before it serves).
///
/// A watch that loses a change makes the suite wait forever for it: run the suite under a
/// timeout (`tokio::time::timeout`).
pub async fn conformance<C, F, Fut>(make: F)
where
    C: Consensus,
    F: Fn() -> Fut,
    Fut: Future<Output = C>,
{
    conformance_with(make, ConformanceOptions::default()).await;
}

/// [`conformance`] with [`ConformanceOptions`].
pub async fn conformance_with<C, F, Fut>(make: F, options: ConformanceOptions)
where
    C: Consensus,
    F: Fn() -> Fut,
    Fut: Future<Output = C>,
{
    propose_applies_the_state_machine(&make().await).await;
    rejections_are_errors_and_change_nothing(&make().await).await;
    revisions_are_dense(&make().await).await;
    idempotency_keys_deduplicate(&make().await).await;
    watch_replays_then_follows(&make().await).await;
    watch_filters(&make().await).await;
    watch_from_zero_starts_at_oldest_retained(&make().await).await;
    status_names_a_leader(&make().await).await;
    if let Some(n) = options.compacts_after {
        compacted_revisions_are_refused(&make().await, n).await;
    }
}

fn at(i: u64) -> u64 {
    1_700_000_000_000 + i
}

fn node_report() -> NodeReport {
    let r = Resources {
        cpu_millis: 1000,
        memory_mib: 1024,
        ..Resources::ZERO
    };
    NodeReport {
        platform: Platform::linux_amd64(),
        region: String::new(),
        zone: String::new(),
        labels: Default::default(),
        capacity: r,
        allocatable: r,
        power: Default::default(),
        reliability: Default::default(),
    }
}

fn register(name: &str, i: u64) -> CommandEnvelope {
    let name = match crate::ids::NodeName::new(name) {
        Ok(n) => n,
        Err(e) => panic!("suite bug: bad node name {name}: {e}"),
    };
    CommandEnvelope::new(
        at(i),
        Command::RegisterNode {
            name,
            report: node_report(),
        },
    )
}

fn create_workload(name: &str, i: u64) -> CommandEnvelope {
    CommandEnvelope::new(
        at(i),
        Command::CreateWorkload {
            namespace: "default".into(),
            name: name.into(),
            labels: Default::default(),
            spec: WorkloadSpec::new("conformance:1"),
        },
    )
}

fn put_service(namespace: &str, name: &str, i: u64) -> CommandEnvelope {
    CommandEnvelope::new(
        at(i),
        Command::PutService {
            namespace: namespace.into(),
            name: name.into(),
            spec: ServiceSpec {
                selector: ServiceSelector::default(),
                ports: Vec::new(),
                locality_aware: true,
            },
        },
    )
}

fn event(i: u64) -> CommandEnvelope {
    CommandEnvelope::new(
        at(i),
        Command::RecordEvent {
            category: EventCategory::Workload,
            severity: Severity::Info,
            subject: "conformance".into(),
            reason: "Probe".into(),
            message: format!("event {i}"),
        },
    )
}

async fn state_of(c: &dyn Consensus, what: &str) -> Arc<ClusterState> {
    check::ok(SUITE, what, c.state().await)
}

async fn propose_ok(c: &dyn Consensus, env: CommandEnvelope, what: &str) -> Applied {
    check::ok(SUITE, what, c.propose(env).await)
}

/// The next item of a watch stream, which must be a change.
async fn next_change(stream: &mut ChangeStream, what: &str) -> Change {
    match stream.next().await {
        Some(Ok(change)) => change,
        Some(Err(e)) => panic!("{SUITE} contract violated: {what}: watch failed with {e:?}"),
        None => panic!("{SUITE} contract violated: {what}: watch stream ended"),
    }
}

/// Reads `expected.len()` changes and checks they are exactly `expected`, in order.
async fn expect_changes(stream: &mut ChangeStream, expected: &[Change], what: &str) {
    for (i, want) in expected.iter().enumerate() {
        let got = next_change(stream, what).await;
        check::that(
            SUITE,
            &format!(
                "{what}: change #{i} should be {:?} {} at {}, got {:?} {} at {}",
                want.kind, want.key, want.revision, got.kind, got.key, got.revision
            ),
            &got == want,
        );
    }
}

/// `propose` returns exactly what [`apply`] returns on the state it was applied to, and a
/// later `state()` shows it.
pub async fn propose_applies_the_state_machine(c: &dyn Consensus) {
    let commands = [
        register("conf-a", 1),
        create_workload("conf-web", 2),
        put_service("default", "conf-web", 3),
        register("conf-a", 4),
    ];
    for env in commands {
        let before = state_of(c, "state() before propose").await;
        let mut expected_state = (*before).clone();
        let expected = check::ok(
            SUITE,
            "the suite's command applies to the state",
            apply(&mut expected_state, &env),
        );
        let applied = propose_ok(c, env, "propose of a valid command").await;
        check::that(
            SUITE,
            &format!("propose must return apply's result: expected {expected:?}, got {applied:?}"),
            applied == expected,
        );
        let after = state_of(c, "state() after propose").await;
        check::that(
            SUITE,
            "state() after propose must equal the state apply produced (linearizable read)",
            *after == expected_state,
        );
    }
}

/// A state-machine rejection is `Err(Rejected)` and neither changes state nor uses a revision.
pub async fn rejections_are_errors_and_change_nothing(c: &dyn Consensus) {
    propose_ok(c, register("conf-a", 1), "register").await;
    let before = state_of(c, "state()").await;
    let unknown = CommandEnvelope::new(
        at(2),
        Command::ReportNode {
            node: NodeId(u64::MAX),
            report: node_report(),
        },
    );
    check::err(
        SUITE,
        "report for an unknown node",
        "Rejected(NotFound)",
        c.propose(unknown).await,
        |e| matches!(e, ConsensusError::Rejected(ApplyError::NotFound { .. })),
    );
    let mut future = register("conf-b", 3);
    future.version = COMMAND_VERSION + 1;
    check::err(
        SUITE,
        "an unknown command version",
        "Rejected(UnsupportedVersion)",
        c.propose(future).await,
        |e| {
            matches!(
                e,
                ConsensusError::Rejected(ApplyError::UnsupportedVersion { .. })
            )
        },
    );
    let after = state_of(c, "state()").await;
    check::that(
        SUITE,
        "a rejected command changed the state",
        after == before,
    );
    let next = propose_ok(c, register("conf-b", 4), "register after rejections").await;
    check::that(
        SUITE,
        "a rejected command must not use a revision",
        next.revision == Revision(before.revision.0 + 1),
    );
}

/// Every applied command advances the revision by exactly one.
pub async fn revisions_are_dense(c: &dyn Consensus) {
    let mut last = state_of(c, "state()").await.revision;
    for i in 0..10 {
        if i % 3 == 0 {
            let bad = CommandEnvelope::new(
                at(i),
                Command::DeleteService {
                    namespace: "none".into(),
                    name: "none".into(),
                },
            );
            check::that(SUITE, "rejection", c.propose(bad).await.is_err());
        }
        let applied = propose_ok(c, event(i), "record event").await;
        check::that(
            SUITE,
            &format!(
                "revisions must be dense: after {last} came {}",
                applied.revision
            ),
            applied.revision == Revision(last.0 + 1),
        );
        check::that(
            SUITE,
            "every change carries its command's revision",
            applied
                .changes
                .iter()
                .all(|ch| ch.revision == applied.revision),
        );
        last = applied.revision;
    }
    let status = check::ok(SUITE, "status()", c.status().await);
    check::that(
        SUITE,
        "status().applied covers every returned propose",
        status.applied >= last,
    );
}

/// A repeated idempotency key returns the first result, deduplicated, changing nothing.
pub async fn idempotency_keys_deduplicate(c: &dyn Consensus) {
    let env = register("conf-a", 1).with_idempotency_key("conformance-key");
    let first = propose_ok(c, env.clone(), "first use of a key").await;
    check::that(
        SUITE,
        "a first use is not deduplicated",
        !first.deduplicated,
    );
    let before = state_of(c, "state()").await;
    let again = propose_ok(c, env, "repeat of a key").await;
    check::that(
        SUITE,
        "a repeated key must be deduplicated with the first result and no changes",
        again.deduplicated && again.result == first.result && again.changes.is_empty(),
    );
    let after = state_of(c, "state()").await;
    check::that(
        SUITE,
        "a deduplicated command changed the state",
        after == before,
    );
    let other = register("conf-b", 2).with_idempotency_key("another-key");
    let applied = propose_ok(c, other, "a different key").await;
    check::that(
        SUITE,
        "a new key is applied at the next revision",
        !applied.deduplicated && applied.revision == Revision(before.revision.0 + 1),
    );
}

/// `watch(all, r)` replays every change from `r` on, without gaps or duplicates, then follows.
pub async fn watch_replays_then_follows(c: &dyn Consensus) {
    let mut history: Vec<Change> = Vec::new();
    let mut revisions = Vec::new();
    for env in [
        register("conf-a", 1),
        register("conf-b", 2),
        create_workload("conf-web", 3),
        event(4),
    ] {
        let applied = propose_ok(c, env, "propose").await;
        revisions.push(applied.revision);
        history.extend(applied.changes);
    }
    let from = revisions[0];
    let mut all = check::ok(
        SUITE,
        "watch from a past revision",
        c.watch(WatchFilter::all(), from).await,
    );
    expect_changes(&mut all, &history, "replay from a past revision").await;

    // From the middle: exactly the suffix.
    let mid = revisions[2];
    let mut suffix = check::ok(
        SUITE,
        "watch from the middle",
        c.watch(WatchFilter::all(), mid).await,
    );
    let tail: Vec<Change> = history
        .iter()
        .filter(|ch| ch.revision >= mid)
        .cloned()
        .collect();
    expect_changes(&mut suffix, &tail, "replay from the middle").await;

    // Live: new changes follow, in order, on both streams.
    let mut live = Vec::new();
    for env in [
        register("conf-c", 5),
        event(6),
        put_service("default", "conf-svc", 7),
    ] {
        live.extend(propose_ok(c, env, "propose while watching").await.changes);
    }
    expect_changes(&mut all, &live, "live changes after the replay").await;
    expect_changes(&mut suffix, &live, "live changes on a second stream").await;

    // From the next revision: only what comes after.
    let now = state_of(c, "state()").await.revision;
    let mut future = check::ok(
        SUITE,
        "watch from the next revision",
        c.watch(WatchFilter::all(), Revision(now.0 + 1)).await,
    );
    let applied = propose_ok(c, event(8), "propose").await;
    expect_changes(
        &mut future,
        &applied.changes,
        "watch from the next revision",
    )
    .await;
}

/// Filters by kind and by key prefix deliver exactly the matching changes.
pub async fn watch_filters(c: &dyn Consensus) {
    let from = Revision(state_of(c, "state()").await.revision.0 + 1);
    let mut workloads = check::ok(
        SUITE,
        "watch workloads",
        c.watch(WatchFilter::kind(ObjectKind::Workload), from).await,
    );
    let prefix = WatchFilter {
        kinds: BTreeSet::new(),
        key_prefix: "conf-b/".into(),
    };
    let mut services = check::ok(SUITE, "watch a key prefix", c.watch(prefix, from).await);

    propose_ok(c, register("conf-a", 1), "register").await;
    let w1 = propose_ok(c, create_workload("conf-one", 2), "create").await;
    propose_ok(c, put_service("conf-a", "x", 3), "put service").await;
    let s1 = propose_ok(c, put_service("conf-b", "y", 4), "put service").await;
    propose_ok(c, event(5), "event").await;
    let w2 = propose_ok(c, create_workload("conf-two", 6), "create").await;
    let s2 = propose_ok(c, put_service("conf-b", "z", 7), "put service").await;

    let only = |a: &Applied, kind: ObjectKind| -> Vec<Change> {
        a.changes
            .iter()
            .filter(|ch| ch.kind == kind)
            .cloned()
            .collect()
    };
    let want_workloads: Vec<Change> = [
        only(&w1, ObjectKind::Workload),
        only(&w2, ObjectKind::Workload),
    ]
    .concat();
    expect_changes(&mut workloads, &want_workloads, "kind filter").await;
    let want_services: Vec<Change> = [s1.changes, s2.changes].concat();
    expect_changes(&mut services, &want_services, "key prefix filter").await;
}

/// `from = Revision(0)` starts at the oldest retained change.
pub async fn watch_from_zero_starts_at_oldest_retained(c: &dyn Consensus) {
    let mut history = Vec::new();
    for i in 0..3 {
        history.extend(propose_ok(c, event(i), "propose").await.changes);
    }
    let mut stream = check::ok(
        SUITE,
        "watch from 0",
        c.watch(WatchFilter::all(), Revision(0)).await,
    );
    let first = next_change(&mut stream, "watch from 0").await;
    let Some(start) = history.iter().position(|ch| *ch == first) else {
        panic!(
            "{SUITE} contract violated: watch from 0 began with a change never applied: {first:?}"
        );
    };
    // A fresh member may retain changes from before the suite's commands (its own setup);
    // what the suite proposed must then follow without gaps.
    expect_changes(&mut stream, &history[start + 1..], "watch from 0").await;
}

/// A member reports a leader, and voters that include itself.
pub async fn status_names_a_leader(c: &dyn Consensus) {
    let status = check::ok(SUITE, "status()", c.status().await);
    check::that(
        SUITE,
        "status() must name a leader on a serving member",
        status.leader.is_some(),
    );
    check::that(
        SUITE,
        "status().voters must include a leader",
        status.leader.is_some_and(|l| status.voters.contains(&l)),
    );
    let applied = propose_ok(c, event(1), "propose").await;
    let status = check::ok(SUITE, "status()", c.status().await);
    check::that(
        SUITE,
        "status().applied must cover a returned propose",
        status.applied >= applied.revision,
    );
}

/// Revisions older than the retained history are refused with `Compacted`, at the call or as
/// the stream's first item; the oldest retained revision still replays.
pub async fn compacted_revisions_are_refused(c: &dyn Consensus, proposals: u64) {
    for i in 0..proposals.max(2) {
        propose_ok(c, event(i), "propose").await;
    }
    let oldest = match c.watch(WatchFilter::all(), Revision(1)).await {
        Err(ConsensusError::Compacted { requested, oldest }) => {
            check::that(
                SUITE,
                "Compacted names the requested revision",
                requested == Revision(1),
            );
            oldest
        }
        Err(e) => panic!(
            "{SUITE} contract violated: watch from a compacted revision: expected Compacted, got {e:?}"
        ),
        Ok(mut stream) => match stream.next().await {
            Some(Err(ConsensusError::Compacted { oldest, .. })) => oldest,
            other => panic!(
                "{SUITE} contract violated: watch from a compacted revision: expected Compacted, got {other:?}"
            ),
        },
    };
    check::that(
        SUITE,
        "the oldest available revision is after the compacted one",
        oldest > Revision(1),
    );
    let mut stream = check::ok(
        SUITE,
        "watch from the oldest available revision",
        c.watch(WatchFilter::all(), oldest).await,
    );
    let first = next_change(&mut stream, "watch from the oldest available revision").await;
    check::that(
        SUITE,
        &format!(
            "watch from {oldest} must start there, got {}",
            first.revision
        ),
        first.revision == oldest,
    );
}

/// Registers a node and returns its id (for tests composing on the suite's helpers).
pub async fn register_node(c: &dyn Consensus, name: &str) -> NodeId {
    match propose_ok(c, register(name, 0), "register").await.result {
        CommandResult::NodeRegistered { node } => node,
        other => panic!("{SUITE} contract violated: register returned {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// Runs `f` under a deadline: a watch that lost a change would otherwise hang the test.
    async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
        match tokio::time::timeout(Duration::from_secs(30), f).await {
            Ok(v) => v,
            Err(_) => panic!("{what} timed out: a watch stream probably lost a change"),
        }
    }

    #[tokio::test]
    async fn mem_consensus_conforms() {
        within("suite", conformance(|| async { MemConsensus::new() })).await;
    }

    #[tokio::test]
    async fn mem_consensus_conforms_with_a_small_compacting_history() {
        let make = || async {
            let config = MemConsensusConfig::default().with_retained_changes(32);
            MemConsensus::with_config(config).unwrap()
        };
        let options = ConformanceOptions {
            compacts_after: Some(40),
        };
        within("suite", conformance_with(make, options)).await;
    }

    #[tokio::test]
    async fn a_lagging_watcher_gets_compacted_instead_of_losing_changes() {
        let config = MemConsensusConfig::default().with_retained_changes(4);
        let c = MemConsensus::with_config(config).unwrap();
        let mut stream = c.watch(WatchFilter::all(), Revision(0)).await.unwrap();
        for i in 0..10 {
            c.propose(event(i)).await.unwrap();
        }
        match stream.next().await {
            Some(Err(ConsensusError::Compacted { requested, oldest })) => {
                assert_eq!(requested, Revision(1));
                assert_eq!(oldest, Revision(7));
            }
            other => panic!("expected Compacted, got {other:?}"),
        }
        assert!(stream.next().await.is_none());
        // Watching from the oldest retained revision works.
        let mut again = c.watch(WatchFilter::all(), Revision(0)).await.unwrap();
        assert_eq!(again.next().await.unwrap().unwrap().revision, Revision(7));
    }

    #[tokio::test]
    async fn a_watch_started_from_a_snapshot_resumes_after_it() {
        let mut state = ClusterState::new();
        apply(&mut state, &event(0)).unwrap();
        let c = MemConsensus::with_state(MemConsensusConfig::default(), state).unwrap();
        assert!(matches!(
            c.watch(WatchFilter::all(), Revision(1)).await,
            Err(ConsensusError::Compacted {
                requested: Revision(1),
                oldest: Revision(2)
            })
        ));
        let mut stream = c.watch(WatchFilter::all(), Revision(2)).await.unwrap();
        let applied = c.propose(event(1)).await.unwrap();
        assert_eq!(applied.revision, Revision(2));
        assert_eq!(stream.next().await.unwrap().unwrap(), applied.changes[0]);
    }

    #[tokio::test]
    async fn shutdown_ends_streams_and_refuses_calls() {
        let c = MemConsensus::new();
        let mut stream = c.watch(WatchFilter::all(), Revision(0)).await.unwrap();
        let waiting = tokio::spawn(async move { stream.next().await });
        tokio::task::yield_now().await;
        c.shutdown();
        let first = within("shutdown", waiting).await.unwrap();
        assert!(matches!(first, Some(Err(ConsensusError::Shutdown))));
        assert!(matches!(
            c.propose(event(0)).await,
            Err(ConsensusError::Shutdown)
        ));
        assert!(matches!(c.state().await, Err(ConsensusError::Shutdown)));
    }

    #[tokio::test]
    async fn membership_is_fixed() {
        let c =
            MemConsensus::with_config(MemConsensusConfig::default().with_id(NodeId(7))).unwrap();
        let status = c.status().await.unwrap();
        assert_eq!(status.id, NodeId(7));
        assert_eq!(status.leader, Some(NodeId(7)));
        assert_eq!(status.term, 1);
        assert_eq!(status.voters, BTreeSet::from([NodeId(7)]));
        assert!(matches!(
            c.add_voter(NodeId(8), "x:1".into()).await,
            Err(ConsensusError::Membership(_))
        ));
        assert!(matches!(
            c.remove_voter(NodeId(7)).await,
            Err(ConsensusError::Membership(_))
        ));
        assert_eq!(register_node(&c, "conf-x").await, NodeId(1));
    }

    /// A broken implementation: its watches skip every change of an event.
    struct SkipsEvents(MemConsensus);

    #[async_trait]
    impl Consensus for SkipsEvents {
        async fn propose(&self, command: CommandEnvelope) -> Result<Applied, ConsensusError> {
            self.0.propose(command).await
        }
        async fn state(&self) -> Result<Arc<ClusterState>, ConsensusError> {
            self.0.state().await
        }
        async fn watch(
            &self,
            filter: WatchFilter,
            from: Revision,
        ) -> Result<ChangeStream, ConsensusError> {
            let inner = self.0.watch(filter, from).await?;
            Ok(inner
                .filter(|c| {
                    let keep = !matches!(c, Ok(c) if c.kind == ObjectKind::Event);
                    async move { keep }
                })
                .boxed())
        }
        async fn status(&self) -> Result<ConsensusStatus, ConsensusError> {
            self.0.status().await
        }
        async fn add_voter(&self, id: NodeId, address: String) -> Result<(), ConsensusError> {
            self.0.add_voter(id, address).await
        }
        async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError> {
            self.0.remove_voter(id).await
        }
    }

    #[tokio::test]
    async fn the_suite_catches_a_watch_with_gaps() {
        use futures::FutureExt;
        let broken = SkipsEvents(MemConsensus::new());
        let run = std::panic::AssertUnwindSafe(watch_replays_then_follows(&broken));
        let outcome = within("broken suite", run.catch_unwind()).await;
        let message = match outcome {
            Ok(()) => panic!("the suite accepted a watch that skips changes"),
            Err(payload) => payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default(),
        };
        assert!(message.contains("Consensus contract violated"), "{message}");
    }

    #[test]
    fn config_is_validated() {
        let bad = MemConsensusConfig::default().with_retained_changes(0);
        assert_eq!(bad.validate(), Err(MemConsensusConfigError::NoRetention));
        assert!(MemConsensus::with_config(bad).is_err());
    }
}
