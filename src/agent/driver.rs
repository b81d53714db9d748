//! The agent task: owns the [`Supervisor`], performs its actions through the `Runtime` in
//! short-lived tasks, feeds results, runtime events and listings back, persists the state.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use cloudless_core::ids::{ReplicaId, Revision};
use cloudless_core::runtime::{
    ContainerSpec, ContainerStatus, Runtime, RuntimeError, RuntimeEvent,
};
use cloudless_runtime::supervisor::{
    Action, DesiredReplica, Outcome, ProbeRequest, ReplicaStatus, Supervisor, SupervisorConfig,
    parse_container_id,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::control_loop::{ControlLoop, Outbox};
use super::persist::{self, AgentState};
use super::{AgentConfig, AgentDeps, AgentError, AgentSnapshot, probes};
use crate::control::{AssignmentSet, ReplicaReport, StoppedReplica};

/// Results of helper tasks.
enum Done {
    Outcome(ReplicaId, Outcome),
    Probe(ProbeRequest, bool),
}

pub(crate) struct Driver {
    config: AgentConfig,
    deps: AgentDeps,
    supervisor: Supervisor,
    state: AgentState,
    snapshot: Arc<watch::Sender<AgentSnapshot>>,
    outbox: Arc<Outbox>,
    origin: Instant,
    events: Option<BoxStream<'static, RuntimeEvent>>,
    /// Container operations in flight, per replica (a listing cannot show what they will do).
    in_flight: BTreeMap<ReplicaId, u32>,
    /// Replicas that a set fetched by this process left out (they were in the set held before
    /// it), whose containers are not known gone yet, with the revision of the newest set that
    /// leaves them out. Not persisted: after a restart nothing is reported for them, and the
    /// coordinator's stop grace finishes them.
    leaving: BTreeMap<ReplicaId, Revision>,
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn runtime_err(runtime: &dyn Runtime, e: &RuntimeError) -> AgentError {
    AgentError::Runtime {
        runtime: runtime.name().to_owned(),
        reason: e.to_string(),
    }
}

/// The replicas of `set` the supervisor should run (terminal ones hold nothing and are not
/// started again).
fn desired_of(set: &AssignmentSet) -> Vec<DesiredReplica> {
    set.replicas
        .iter()
        .filter(|a| !a.replica.phase.is_terminal())
        .map(|a| {
            DesiredReplica::from_spec(
                a.replica.id,
                a.replica.workload,
                a.replica.generation,
                &a.spec,
            )
        })
        .collect()
}

/// The images of a set's live replicas.
fn images_of(set: &AssignmentSet) -> std::collections::BTreeSet<String> {
    set.replicas
        .iter()
        .filter(|a| !a.replica.phase.is_terminal())
        .map(|a| a.spec.image.clone())
        .collect()
}

fn to_report(s: &ReplicaStatus) -> ReplicaReport {
    ReplicaReport {
        replica: s.replica,
        workload: s.workload,
        generation: s.generation,
        phase: s.phase,
        ready: s.ready,
        restarts: s.restarts,
        address: s.address.clone(),
        message: s.message.clone(),
    }
}

impl Driver {
    /// Loads the persisted state, subscribes to runtime events and takes the first listing.
    pub(crate) async fn prepare(
        config: AgentConfig,
        deps: AgentDeps,
        snapshot: watch::Sender<AgentSnapshot>,
    ) -> Result<Self, AgentError> {
        persist::ensure_dir(&config.data_dir)?;
        let state = persist::load(&config.data_dir, deps.node)?;
        deps.resources.probe(&config.data_dir)?;
        let origin = Instant::now();
        let mut supervisor = Supervisor::new(SupervisorConfig {
            max_backoff_ms: ms(config.max_restart_backoff),
            reset_after_ms: ms(config.restart_reset_after),
            stop_grace_ms: ms(config.stop_grace),
        });
        supervisor.restore_records(state.records.clone());
        if let Some(set) = &state.assignments {
            supervisor.set_desired(0, desired_of(set));
        }
        let events = deps
            .runtime
            .events()
            .await
            .map_err(|e| runtime_err(&*deps.runtime, &e))?;
        let list = deps
            .runtime
            .list()
            .await
            .map_err(|e| runtime_err(&*deps.runtime, &e))?;
        supervisor.observe(0, &list);
        let revision = state.assignments.as_ref().map(|a| a.revision);
        let images = state
            .assignments
            .as_ref()
            .map(images_of)
            .unwrap_or_default();
        snapshot.send_modify(|s| {
            s.assignments_revision = revision;
            s.images = images;
        });
        Ok(Self {
            config,
            deps,
            supervisor,
            state,
            snapshot: Arc::new(snapshot),
            outbox: Arc::new(Outbox::default()),
            origin,
            events: Some(events),
            in_flight: BTreeMap::new(),
            leaving: BTreeMap::new(),
        })
    }

    fn now(&self) -> u64 {
        ms(self.origin.elapsed())
    }

    pub(crate) async fn run(mut self, mut stop: oneshot::Receiver<()>) {
        let (assign_tx, mut assign_rx) = mpsc::channel::<AssignmentSet>(4);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
        let mut tasks: JoinSet<()> = JoinSet::new();
        let control = ControlLoop {
            node: self.deps.node,
            config: self.config.clone(),
            control: Arc::clone(&self.deps.control),
            resources: Arc::clone(&self.deps.resources),
            outbox: Arc::clone(&self.outbox),
            held: self.state.assignments.as_ref().map(|a| a.revision),
            assignments_tx: assign_tx,
            snapshot: Arc::clone(&self.snapshot),
            started: self.origin,
        };
        tasks.spawn(control.run());
        let mut resync = tokio::time::interval(self.config.resync_interval);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let now = self.now();
            for action in self.supervisor.poll_actions(now) {
                self.dispatch(action, &mut tasks, &done_tx);
            }
            self.persist_records();
            let wake = self
                .supervisor
                .next_wakeup()
                .map(|t| self.origin + Duration::from_millis(t));
            tokio::select! {
                _ = &mut stop => break,
                Some(set) = assign_rx.recv() => {
                    self.apply_assignments(set);
                    // A dropped replica without containers has no operation to wait for.
                    if !self.leaving.is_empty() {
                        self.resync().await;
                    }
                }
                Some(done) = done_rx.recv() => {
                    // A listing taken while the action was in flight skipped its replica, and
                    // an exit event may have come meanwhile: look again.
                    if self.handle_done(done) {
                        self.resync().await;
                    }
                }
                event = next_event(&mut self.events) => {
                    if event.is_none() {
                        tracing::warn!(runtime = self.deps.runtime.name(), "runtime event stream ended; relying on periodic listing");
                        self.events = None;
                    }
                    self.resync().await;
                }
                () = sleep_until_opt(wake) => {}
                _ = resync.tick() => {
                    if self.events.is_none() {
                        self.events = self.deps.runtime.events().await.ok();
                    }
                    self.resync().await;
                }
            }
            // Drain finished helper tasks so the set does not grow.
            while tasks.try_join_next().is_some() {}
        }
        tasks.shutdown().await;
    }

    fn apply_assignments(&mut self, set: AssignmentSet) {
        tracing::info!(node = %self.deps.node, revision = %set.revision, replicas = set.replicas.len(), "new assignment set");
        let desired = desired_of(&set);
        let keep: BTreeSet<ReplicaId> = desired.iter().map(|d| d.replica).collect();
        self.outbox.retain(|r| keep.contains(&r));
        // Replicas this fetched set leaves out are stopped below; once they are gone the agent
        // says so (a stop report naming this set). Replicas held again are not leaving.
        self.leaving.retain(|r, _| !keep.contains(r));
        for rev in self.leaving.values_mut() {
            *rev = (*rev).max(set.revision);
        }
        if let Some(old) = &self.state.assignments {
            for a in &old.replicas {
                if !a.replica.phase.is_terminal() && !keep.contains(&a.replica.id) {
                    self.leaving.entry(a.replica.id).or_insert(set.revision);
                }
            }
        }
        self.outbox
            .restate_stops(set.revision, |r| keep.contains(&r));
        let now = self.now();
        self.supervisor.set_desired(now, desired);
        let revision = set.revision;
        let images = images_of(&set);
        self.state.assignments = Some(set);
        self.snapshot.send_modify(|s| {
            s.assignments_revision = Some(revision);
            s.images = images;
            s.replicas.retain(|r, _| keep.contains(r));
        });
        self.save();
    }

    /// Feeds a helper's result to the supervisor; true if it was a container operation.
    fn handle_done(&mut self, done: Done) -> bool {
        let now = self.now();
        match done {
            Done::Outcome(replica, outcome) => {
                if let Some(n) = self.in_flight.get_mut(&replica) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.in_flight.remove(&replica);
                    }
                }
                self.supervisor.handle_outcome(now, replica, outcome);
                true
            }
            Done::Probe(req, success) => {
                self.supervisor
                    .handle_probe_result(req.replica, &req.container, req.kind, success);
                false
            }
        }
    }

    async fn resync(&mut self) {
        match self.deps.runtime.list().await {
            Ok(list) => {
                let now = self.now();
                self.supervisor.observe(now, &list);
                self.report_gone(&list);
            }
            Err(e) => {
                tracing::warn!(runtime = self.deps.runtime.name(), error = %e, "listing containers failed");
            }
        }
    }

    /// Queues a stop report for every leaving replica of which `list` (taken with no operation
    /// of the replica in flight) shows no container.
    fn report_gone(&mut self, list: &[ContainerStatus]) {
        if self.leaving.is_empty() {
            return;
        }
        let present: BTreeSet<ReplicaId> = list
            .iter()
            .filter_map(|c| parse_container_id(&c.id).map(|(r, _)| r))
            .collect();
        let gone: Vec<(ReplicaId, Revision)> = self
            .leaving
            .iter()
            .filter(|(r, _)| !present.contains(r) && !self.in_flight.contains_key(r))
            .map(|(r, rev)| (*r, *rev))
            .collect();
        for (replica, set_revision) in gone {
            self.leaving.remove(&replica);
            tracing::debug!(node = %self.deps.node, %replica, set = %set_revision, "replica left out of the set and its containers are gone");
            self.outbox.push_stop(StoppedReplica {
                replica,
                set_revision,
            });
        }
    }

    fn persist_records(&mut self) {
        if self.supervisor.take_records_changed() {
            self.state.records = self.supervisor.records();
            self.save();
        }
    }

    /// Writes the state file. Small (one entry per assigned replica) and synchronous, so the
    /// order of writes is the order of changes; a failure is logged, supervision goes on.
    fn save(&self) {
        let result = persist::encode(&self.state, self.deps.node, self.deps.clock.now_ms())
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                persist::write_atomic(&self.config.data_dir, &bytes).map_err(|e| e.to_string())
            });
        if let Err(e) = result {
            tracing::error!(node = %self.deps.node, error = %e, "could not persist agent state");
        }
    }

    fn dispatch(
        &mut self,
        action: Action,
        tasks: &mut JoinSet<()>,
        done: &mpsc::UnboundedSender<Done>,
    ) {
        let runtime = Arc::clone(&self.deps.runtime);
        let done = done.clone();
        if action.touches_runtime() {
            *self.in_flight.entry(action.replica()).or_default() += 1;
        }
        match action {
            Action::Report(status) => {
                let report = to_report(&status);
                self.snapshot.send_modify(|s| {
                    s.replicas.insert(report.replica, report.clone());
                });
                self.outbox.push(report);
            }
            Action::Probe(req) => {
                tasks.spawn(async move {
                    let verdict = probes::run(&runtime, &req).await;
                    tracing::trace!(container = %req.container, kind = ?req.kind, detail = %verdict.detail, "probe");
                    let _ = done.send(Done::Probe(req, verdict.success));
                });
            }
            Action::Start { replica, spec } => {
                tasks.spawn(async move {
                    let outcome = start(&*runtime, &spec).await;
                    let _ = done.send(Done::Outcome(replica, outcome));
                });
            }
            Action::Restart { replica, old, spec } => {
                tasks.spawn(async move {
                    let outcome = match runtime.remove(&old).await {
                        Ok(()) | Err(RuntimeError::NotFound(_)) => start(&*runtime, &spec).await,
                        Err(e) => Outcome::StartFailed {
                            id: spec.id.clone(),
                            reason: format!("removing the previous container {old}: {e}"),
                            transient: true,
                        },
                    };
                    let _ = done.send(Done::Outcome(replica, outcome));
                });
            }
            Action::Stop {
                replica,
                id,
                grace_ms,
                reason,
            } => {
                tracing::info!(container = %id, ?reason, "stopping container");
                tasks.spawn(async move {
                    let outcome = match runtime.stop(&id, grace_ms).await {
                        Ok(()) => match runtime.status(&id).await {
                            Ok(status) => Outcome::Stopped(status),
                            Err(RuntimeError::NotFound(_)) => Outcome::Removed(id),
                            Err(e) => Outcome::Failed {
                                id,
                                reason: e.to_string(),
                            },
                        },
                        Err(RuntimeError::NotFound(_)) => Outcome::Removed(id),
                        Err(e) => Outcome::Failed {
                            id,
                            reason: e.to_string(),
                        },
                    };
                    let _ = done.send(Done::Outcome(replica, outcome));
                });
            }
            Action::Remove { replica, id } => {
                tasks.spawn(async move {
                    let outcome = match runtime.remove(&id).await {
                        Ok(()) | Err(RuntimeError::NotFound(_)) => Outcome::Removed(id),
                        Err(e) => Outcome::Failed {
                            id,
                            reason: e.to_string(),
                        },
                    };
                    let _ = done.send(Done::Outcome(replica, outcome));
                });
            }
        }
    }
}

/// Creates and starts `spec`'s container, pulling the image only if it is not local (so a
/// cached image runs while the registry is unreachable).
async fn start(runtime: &dyn Runtime, spec: &ContainerSpec) -> Outcome {
    let failed = |what: &str, e: &RuntimeError| Outcome::StartFailed {
        id: spec.id.clone(),
        reason: format!("{what}: {e}"),
        transient: matches!(
            e,
            RuntimeError::Unavailable(_) | RuntimeError::ImageUnavailable { .. }
        ),
    };
    match runtime.create(spec).await {
        Ok(()) => {}
        Err(RuntimeError::ImageNotFound(_)) => {
            if let Err(e) = runtime
                .pull_image(&spec.image, spec.platform.as_ref())
                .await
            {
                return failed("pull", &e);
            }
            if let Err(e) = runtime.create(spec).await {
                return failed("create", &e);
            }
        }
        Err(e) => return failed("create", &e),
    }
    if let Err(e) = runtime.start(&spec.id).await {
        return failed("start", &e);
    }
    match runtime.status(&spec.id).await {
        Ok(status) => Outcome::Started(status),
        Err(e) => failed("status after start", &e),
    }
}

async fn next_event(events: &mut Option<BoxStream<'static, RuntimeEvent>>) -> Option<RuntimeEvent> {
    match events {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
