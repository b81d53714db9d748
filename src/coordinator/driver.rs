//! The coordinator's shared state and its background tasks: the state watch, the leadership
//! poll, the failure detector's tick and the actuation loop.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use cloudless_core::clock::Clock;
use cloudless_core::consensus::{Consensus, ConsensusError, WatchFilter};
use cloudless_core::event::{EventCategory, Severity};
use cloudless_core::ids::{NodeId, ReplicaId, Revision};
use cloudless_core::node::Liveness;
use cloudless_core::scheduler::Scheduler;
use cloudless_core::state::{Applied, ClusterState, Command, CommandEnvelope, ObjectKind};
use futures::{FutureExt, StreamExt};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::config::CoordinatorConfig;
use super::membership::FailureDetector;
use super::view::View;
use super::{CoordinatorDeps, CoordinatorError, actuation};
use crate::control::ControlError;

/// Who leads, as this coordinator last learned it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Leadership {
    leader: Option<NodeId>,
    term: u64,
}

/// Everything the service and the tasks share.
pub(crate) struct Shared {
    pub(crate) node: NodeId,
    pub(crate) config: CoordinatorConfig,
    pub(crate) consensus: Arc<dyn Consensus>,
    pub(crate) scheduler: Arc<dyn Scheduler>,
    clock: Arc<dyn Clock>,
    origin: Instant,
    leading: AtomicBool,
    leadership: Mutex<Leadership>,
    view: RwLock<View>,
    detector: Mutex<FailureDetector>,
    /// Wakes the actuation loop.
    pub(crate) changed: Notify,
    /// Stopping replicas whose agent has fetched a set without them, with when it first did.
    stop_seen: Mutex<BTreeMap<ReplicaId, Duration>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn liveness_of(state: &ClusterState) -> impl Iterator<Item = (NodeId, Liveness)> + '_ {
    state.nodes.values().map(|n| (n.id, n.liveness))
}

impl Shared {
    pub(crate) async fn new(
        config: CoordinatorConfig,
        deps: CoordinatorDeps,
    ) -> Result<Arc<Self>, CoordinatorError> {
        // A follower (or a member without quorum yet) cannot serve a linearizable read; it
        // starts with an empty view, which the takeover in `poll_leadership` replaces.
        let state = match deps.consensus.state().await {
            Ok(state) => state,
            Err(ConsensusError::NotLeader { .. } | ConsensusError::Unavailable(_)) => {
                Arc::new(ClusterState::new())
            }
            Err(e) => return Err(e.into()),
        };
        let detector = FailureDetector::new(&config);
        let shared = Arc::new(Self {
            node: deps.node,
            config,
            consensus: deps.consensus,
            scheduler: deps.scheduler,
            clock: deps.clock,
            origin: Instant::now(),
            leading: AtomicBool::new(false),
            leadership: Mutex::new(Leadership::default()),
            view: RwLock::new(View::new(state)),
            detector: Mutex::new(detector),
            changed: Notify::new(),
            stop_seen: Mutex::new(BTreeMap::new()),
        });
        shared.poll_leadership().await;
        Ok(shared)
    }

    /// Monotonic time since the coordinator started (the failure detector's clock).
    pub(crate) fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// Wall-clock time for command envelopes.
    pub(crate) fn wall_ms(&self) -> u64 {
        self.clock.now_ms()
    }

    pub(crate) fn is_leader(&self) -> bool {
        self.leading.load(Ordering::Acquire)
    }

    /// `NotLeader` with the current hint.
    pub(crate) fn not_leader(&self) -> ControlError {
        let hint = lock(&self.leadership).leader.filter(|l| *l != self.node);
        ControlError::NotLeader { leader: hint }
    }

    /// The latest state this coordinator has read.
    pub(crate) fn state(&self) -> Arc<ClusterState> {
        Arc::clone(&self.view.read().unwrap_or_else(|p| p.into_inner()).state)
    }

    /// The latest state and the revision of `node`'s assignment set, read together.
    pub(crate) fn state_and_revision(&self, node: NodeId) -> (Arc<ClusterState>, Revision) {
        let v = self.view.read().unwrap_or_else(|p| p.into_inner());
        (Arc::clone(&v.state), v.assignments_revision(node))
    }

    /// The latest state and, if it has `replica` Stopping, the revision from which it is
    /// known to be (see [`View::stopping_since`]), read together.
    pub(crate) fn state_and_stopping_since(
        &self,
        replica: ReplicaId,
    ) -> (Arc<ClusterState>, Option<Revision>) {
        let v = self.view.read().unwrap_or_else(|p| p.into_inner());
        (Arc::clone(&v.state), v.stopping_since(replica))
    }

    pub(crate) fn detector(&self) -> MutexGuard<'_, FailureDetector> {
        lock(&self.detector)
    }

    /// Proposes `command` stamped with the wall clock. A `NotLeader` answer makes this
    /// coordinator stop acting at once (the poll confirms later).
    pub(crate) async fn propose(&self, command: Command) -> Result<Applied, ConsensusError> {
        let env = CommandEnvelope::new(self.wall_ms(), command);
        let result = self.consensus.propose(env).await;
        if let Err(ConsensusError::NotLeader { leader }) = &result {
            self.step_down(*leader);
        }
        result
    }

    fn step_down(&self, leader: Option<NodeId>) {
        lock(&self.leadership).leader = leader;
        if self.leading.swap(false, Ordering::AcqRel) {
            tracing::info!(node = %self.node, leader = ?leader, "no longer the leader");
        }
    }

    /// Reads the state now and installs it (after this coordinator's own commits, so the
    /// next call sees them).
    pub(crate) async fn refresh(&self) -> Result<Arc<ClusterState>, ConsensusError> {
        let state = self.consensus.state().await?;
        self.view
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .install(Arc::clone(&state));
        let now = self.now();
        let current = self.state();
        self.detector().sync(now, liveness_of(&current));
        Ok(current)
    }

    /// Asks the consensus member who leads; on becoming leader starts the failure detector
    /// over with a fresh grace window for every node.
    pub(crate) async fn poll_leadership(&self) {
        let status = match self.consensus.status().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(node = %self.node, error = %e, "consensus status failed");
                self.step_down(None);
                return;
            }
        };
        let leads = status.leader == Some(self.node);
        *lock(&self.leadership) = Leadership {
            leader: status.leader,
            term: status.term,
        };
        if !leads {
            self.step_down(status.leader);
            return;
        }
        if self.is_leader() {
            return;
        }
        // Taking over: read the state first, then start every node's timer afresh.
        let state = match self.consensus.state().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(node = %self.node, error = %e, "state read failed while taking over");
                return;
            }
        };
        // A fresh index too: every node's assignment revision becomes the current one, so
        // every agent fetches its set from this leader once (which also tells this leader
        // which Stopping replicas its agent has been told about).
        *self.view.write().unwrap_or_else(|p| p.into_inner()) = View::new(Arc::clone(&state));
        // Every node's silence counts from the takeover, and none goes Down before
        // `takeover_grace` (agents back-off-retrying after an outage need that long).
        let now = self.now();
        let extra = self
            .config
            .takeover_grace
            .saturating_sub(self.config.down_after);
        self.detector().reset(now + extra, liveness_of(&state));
        lock(&self.stop_seen).clear();
        self.leading.store(true, Ordering::Release);
        tracing::info!(node = %self.node, term = status.term, "leading: failure detector restarted with a fresh grace window");
        self.changed.notify_one();
    }

    /// Notes that `node`'s agent fetched a set without these Stopping replicas.
    pub(crate) fn saw_stop(&self, replicas: impl IntoIterator<Item = ReplicaId>) {
        let now = self.now();
        let mut seen = lock(&self.stop_seen);
        for r in replicas {
            seen.entry(r).or_insert(now);
        }
    }

    /// Stopping replicas whose agent was told more than `stop_grace` ago; forgets replicas that
    /// are no longer Stopping.
    pub(crate) fn stopped_by_agents(&self, state: &ClusterState) -> Vec<ReplicaId> {
        let now = self.now();
        let mut seen = lock(&self.stop_seen);
        seen.retain(|id, _| {
            state
                .replicas
                .get(id)
                .is_some_and(|r| r.phase == cloudless_core::replica::ReplicaPhase::Stopping)
        });
        seen.iter()
            .filter(|(_, at)| now.saturating_sub(**at) >= self.config.stop_grace)
            .map(|(id, _)| *id)
            .collect()
    }

    /// Records an event; failures are logged (events never block a decision).
    pub(crate) async fn event(
        &self,
        category: EventCategory,
        severity: Severity,
        subject: String,
        reason: &str,
        message: String,
    ) {
        let cmd = Command::RecordEvent {
            category,
            severity,
            subject,
            reason: reason.to_owned(),
            message,
        };
        if let Err(e) = self.propose(cmd).await {
            tracing::debug!(node = %self.node, error = %e, reason, "event not recorded");
        }
    }
}

/// Starts the background tasks.
pub(crate) fn spawn(shared: &Arc<Shared>, stop: watch::Receiver<bool>) -> Vec<JoinHandle<()>> {
    vec![
        tokio::spawn(watch_state(Arc::clone(shared), stop.clone())),
        tokio::spawn(leadership(Arc::clone(shared), stop.clone())),
        tokio::spawn(detector(Arc::clone(shared), stop.clone())),
        tokio::spawn(actuation_loop(Arc::clone(shared), stop)),
    ]
}

async fn stopped(stop: &mut watch::Receiver<bool>) {
    while !*stop.borrow() {
        if stop.changed().await.is_err() {
            return;
        }
    }
}

/// Follows every applied change: keeps the view (state + per-node revisions) current, keeps
/// the detector's node set in step, and wakes the actuation loop.
async fn watch_state(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let retry = Duration::from_millis(200);
    // A node change noted while the state could not be read: the detector syncs on the next
    // state installed.
    let mut node_changed = false;
    loop {
        // Only the leader keeps a view: a follower answers `NotLeader` and cannot read the
        // state linearizably; taking over installs a fresh view to follow from.
        if !shared.is_leader() {
            tokio::select! {
                () = tokio::time::sleep(retry) => continue,
                () = stopped(&mut stop) => return,
            }
        }
        // Resume after the last change noted, not after the installed state: a refresh may
        // have installed a newer state whose changes the view has not noted yet.
        let noted = shared
            .view
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .noted();
        let from = Revision(noted.0.saturating_add(1));
        let mut stream = match shared.consensus.watch(WatchFilter::all(), from).await {
            Ok(s) => s,
            Err(ConsensusError::Shutdown) => return,
            Err(e) => {
                if matches!(e, ConsensusError::Compacted { .. }) {
                    resync(&shared).await;
                }
                tracing::debug!(node = %shared.node, error = %e, "watch failed; retrying");
                tokio::select! {
                    () = tokio::time::sleep(retry) => continue,
                    () = stopped(&mut stop) => return,
                }
            }
        };
        loop {
            let first = tokio::select! {
                item = stream.next() => item,
                () = stopped(&mut stop) => return,
            };
            let Some(first) = first else { break };
            let mut batch = vec![first];
            while let Some(Some(item)) = stream.next().now_or_never() {
                batch.push(item);
            }
            let mut changes = Vec::with_capacity(batch.len());
            let mut failed = None;
            for item in batch {
                match item {
                    Ok(c) => changes.push(c),
                    Err(e) => {
                        failed = Some(e);
                        break;
                    }
                }
            }
            if !changes.is_empty() {
                // Noted even when the state read below fails: the per-node revisions must move
                // (agents fetch their sets by them) and the watch resumes after these changes.
                {
                    let mut v = shared.view.write().unwrap_or_else(|p| p.into_inner());
                    for c in &changes {
                        v.note(c);
                    }
                }
                node_changed |= changes.iter().any(|c| c.kind == ObjectKind::Node);
                match shared.consensus.state().await {
                    Ok(state) => {
                        shared
                            .view
                            .write()
                            .unwrap_or_else(|p| p.into_inner())
                            .install(state);
                        // The detector follows the node set; other changes leave it alone.
                        if std::mem::take(&mut node_changed) {
                            let now = shared.now();
                            let state = shared.state();
                            shared.detector().sync(now, liveness_of(&state));
                        }
                        shared.changed.notify_one();
                    }
                    Err(e) => {
                        tracing::debug!(node = %shared.node, error = %e, "state read failed");
                        failed = Some(e);
                    }
                }
            }
            match failed {
                None => {}
                Some(ConsensusError::Shutdown) => return,
                Some(ConsensusError::Compacted { .. }) => {
                    resync(&shared).await;
                    break;
                }
                Some(_) => break,
            }
        }
        tokio::select! {
            () = tokio::time::sleep(retry) => {}
            () = stopped(&mut stop) => return,
        }
    }
}

/// Rebuilds the view from a fresh state (the watch history no longer reaches back to it).
async fn resync(shared: &Shared) {
    if let Ok(state) = shared.consensus.state().await {
        *shared.view.write().unwrap_or_else(|p| p.into_inner()) = View::new(state);
        shared.changed.notify_one();
    }
}

async fn leadership(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(shared.config.leadership_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => shared.poll_leadership().await,
            () = stopped(&mut stop) => return,
        }
    }
}

/// The failure detector's driver: ticks, commits liveness changes as one batch, records the
/// throttle's start and end as events.
async fn detector(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(shared.config.detector_tick);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stopped(&mut stop) => return,
        }
        if !shared.is_leader() {
            continue;
        }
        let now = shared.now();
        let outcome = shared.detector().tick(now);
        if let Some((silent, live)) = outcome.throttle_started {
            tracing::warn!(silent, live, "mass silence: throttling Down transitions");
            shared
                .event(
                    EventCategory::Membership,
                    Severity::Warning,
                    "cluster/membership".into(),
                    "EvictionThrottled",
                    format!(
                        "{silent} of {live} live nodes went silent at once; \
                         Down transitions limited to one per {} ms",
                        shared.config.throttled_down_interval.as_millis()
                    ),
                )
                .await;
        }
        if outcome.throttle_ended {
            shared
                .event(
                    EventCategory::Membership,
                    Severity::Info,
                    "cluster/membership".into(),
                    "EvictionThrottleEnded",
                    "mass silence over; Down transitions no longer limited".into(),
                )
                .await;
        }
        if outcome.changes.is_empty() {
            continue;
        }
        let changes = outcome.changes;
        match shared
            .propose(Command::SetLiveness {
                changes: changes.clone(),
            })
            .await
        {
            Ok(_) => shared.detector().confirm(&changes),
            Err(ConsensusError::Rejected(e)) => {
                // A node in the batch is gone: re-read so the detector forgets it.
                tracing::debug!(error = %e, "liveness batch rejected; re-reading the state");
                let _ = shared.refresh().await;
            }
            Err(e) => tracing::debug!(error = %e, "liveness batch not committed; retrying"),
        }
    }
}

/// Runs an actuation round after every state change (debounced) and at least every
/// `actuation_interval`, while leading.
async fn actuation_loop(shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let debounce = Duration::from_millis(20);
    let mut state = actuation::Memory::default();
    loop {
        tokio::select! {
            () = shared.changed.notified() => {
                tokio::select! {
                    () = tokio::time::sleep(debounce) => {}
                    () = stopped(&mut stop) => return,
                }
            }
            () = tokio::time::sleep(shared.config.actuation_interval) => {}
            () = stopped(&mut stop) => return,
        }
        if !shared.is_leader() {
            state = actuation::Memory::default();
            continue;
        }
        actuation::round(&shared, &mut state).await;
    }
}
