//! One desired replica's bookkeeping: its current container, stale containers to remove, the
//! restart decision after an exit, and the status it reports.

use cloudless_core::replica::ReplicaPhase;
use cloudless_core::runtime::{ContainerId, ContainerState, ContainerStatus};
use cloudless_core::workload::RestartMode;

use super::SupervisorConfig;
use super::backoff::restart_delay_ms;
use super::probe::ProbeTracker;
use super::types::{DesiredReplica, ProbeKind, ReplicaRecord, ReplicaStatus, StopReason};

/// The replica's current container as the supervisor last saw it.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub(crate) id: ContainerId,
    pub(crate) status: ContainerStatus,
    pub(crate) probes: Vec<ProbeTracker>,
    /// The exit (or failed start) has been turned into a restart decision.
    pub(crate) exit_handled: bool,
    pub(crate) stop_reason: Option<StopReason>,
}

impl Tracked {
    pub(crate) fn new(status: ContainerStatus) -> Self {
        Self {
            id: status.id.clone(),
            status,
            probes: Vec::new(),
            exit_handled: false,
            stop_reason: None,
        }
    }

    pub(crate) fn is_running(&self) -> bool {
        self.status.state == ContainerState::Running
    }

    pub(crate) fn probe(&self, kind: ProbeKind) -> Option<&ProbeTracker> {
        self.probes.iter().find(|p| p.kind() == kind)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Slot {
    pub(crate) desired: DesiredReplica,
    pub(crate) record: ReplicaRecord,
    pub(crate) current: Option<Tracked>,
    pub(crate) stale: Vec<ContainerId>,
    pub(crate) restart_at: Option<u64>,
    pub(crate) terminal: Option<ReplicaPhase>,
    pub(crate) message: String,
    pub(crate) reported: Option<ReplicaStatus>,
    /// A Start/Restart is in flight.
    pub(crate) starting: bool,
    /// Consecutive transient start failures (backoff only, never counted against maxRetries).
    pub(crate) transient_failures: u32,
}

impl Slot {
    pub(crate) fn new(desired: DesiredReplica, record: ReplicaRecord) -> Self {
        Self {
            desired,
            record,
            current: None,
            stale: Vec::new(),
            restart_at: None,
            terminal: None,
            message: String::new(),
            reported: None,
            starting: false,
            transient_failures: 0,
        }
    }

    /// Starts tracking probes of the running current container, from `now_ms`.
    pub(crate) fn arm_probes(&mut self, now_ms: u64, adopted: bool) {
        let ready = self.record.ready;
        let probes = self.desired.probes.clone();
        let Some(t) = self.current.as_mut() else {
            return;
        };
        if !t.is_running() || !t.probes.is_empty() {
            return;
        }
        if let Some(p) = probes.liveness {
            t.probes
                .push(ProbeTracker::new(ProbeKind::Liveness, p, now_ms, None));
        }
        if let Some(p) = probes.readiness {
            // An adopted container keeps the readiness it had, so endpoints do not flap.
            let passing = (adopted && ready).then_some(true);
            t.probes
                .push(ProbeTracker::new(ProbeKind::Readiness, p, now_ms, passing));
        }
    }

    /// Takes in the current container's latest status; turns a new exit into a decision.
    pub(crate) fn update_current(
        &mut self,
        status: ContainerStatus,
        now_ms: u64,
        cfg: &SupervisorConfig,
    ) {
        let Some(t) = self.current.as_mut() else {
            return;
        };
        t.status = status;
        match t.status.state {
            ContainerState::Running => self.arm_probes(now_ms, false),
            ContainerState::Exited { code } if !t.exit_handled => {
                t.exit_handled = true;
                t.probes.clear();
                let run_ms = match (t.status.started_at_ms, t.status.finished_at_ms) {
                    (Some(s), Some(f)) => f.saturating_sub(s),
                    _ => 0,
                };
                let reason = match t.stop_reason {
                    Some(StopReason::LivenessFailed) => {
                        format!("liveness probe failed (exit code {code})")
                    }
                    _ if t.status.oom_killed => {
                        format!(
                            "OOMKilled: out of memory, over its memory limit (exit code {code})"
                        )
                    }
                    _ => format!("exited with code {code}"),
                };
                self.on_exit(now_ms, code, run_ms, reason, cfg);
            }
            ContainerState::Created if !t.exit_handled && !self.starting => {
                // Created but never started (the agent stopped between create and start).
                t.exit_handled = true;
                self.on_exit(
                    now_ms,
                    -1,
                    0,
                    "container was created but never started".into(),
                    cfg,
                );
            }
            _ => {}
        }
    }

    /// The current container is gone from the runtime without the supervisor removing it.
    pub(crate) fn current_vanished(&mut self, now_ms: u64, cfg: &SupervisorConfig) {
        let Some(t) = self.current.take() else {
            return;
        };
        if !t.exit_handled {
            self.on_exit(
                now_ms,
                -1,
                0,
                format!("container {} disappeared", t.id),
                cfg,
            );
        }
    }

    /// A container exited with `code` after running `run_ms`: restart it later, or stop here.
    pub(crate) fn on_exit(
        &mut self,
        now_ms: u64,
        code: i32,
        run_ms: u64,
        reason: String,
        cfg: &SupervisorConfig,
    ) {
        if run_ms >= cfg.reset_after_ms {
            self.record.consecutive = 0;
        }
        let policy = &self.desired.restart;
        let restart = match policy.policy {
            RestartMode::Always => true,
            RestartMode::OnFailure => code != 0,
            RestartMode::Never => false,
        };
        if !restart {
            self.terminal = Some(if code == 0 {
                ReplicaPhase::Succeeded
            } else {
                ReplicaPhase::Failed
            });
            self.message = reason;
            return;
        }
        if let Some(max) = policy.max_retries
            && self.record.consecutive >= max
        {
            self.terminal = Some(ReplicaPhase::Failed);
            self.message = format!("gave up after {max} consecutive restarts: {reason}");
            return;
        }
        self.record.consecutive = self.record.consecutive.saturating_add(1);
        let delay = restart_delay_ms(&policy.backoff, self.record.consecutive, cfg.max_backoff_ms);
        self.restart_at = Some(now_ms.saturating_add(delay));
        self.message = format!("restarting in {delay} ms: {reason}");
    }

    /// A Start/Restart failed.
    pub(crate) fn on_start_failed(
        &mut self,
        now_ms: u64,
        reason: String,
        transient: bool,
        cfg: &SupervisorConfig,
    ) {
        if transient {
            self.transient_failures = self.transient_failures.saturating_add(1);
            let delay = restart_delay_ms(
                &self.desired.restart.backoff,
                self.transient_failures,
                cfg.max_backoff_ms,
            );
            self.restart_at = Some(now_ms.saturating_add(delay));
            self.message = format!("retrying in {delay} ms: {reason}");
        } else {
            self.on_exit(now_ms, -1, 0, format!("start failed: {reason}"), cfg);
        }
    }

    /// The status this replica reports now.
    pub(crate) fn status(&self) -> ReplicaStatus {
        let d = &self.desired;
        let (phase, ready, address) = match (&self.terminal, &self.current) {
            (Some(phase), _) => (*phase, false, None),
            (None, _) if self.starting => (ReplicaPhase::Starting, false, None),
            (None, Some(t)) if t.is_running() => {
                let ready = match (&d.probes.readiness, t.probe(ProbeKind::Readiness)) {
                    (None, _) => true,
                    (Some(_), Some(p)) => p.passing() == Some(true),
                    (Some(_), None) => false,
                };
                (ReplicaPhase::Running, ready, t.status.address.clone())
            }
            (None, None) if self.record.next_attempt == 0 => (ReplicaPhase::Pending, false, None),
            (None, _) => (ReplicaPhase::Starting, false, None),
        };
        let message = if phase == ReplicaPhase::Running {
            String::new()
        } else {
            self.message.clone()
        };
        ReplicaStatus {
            replica: d.replica,
            workload: d.workload,
            generation: d.generation,
            phase,
            ready,
            restarts: self.record.restarts,
            address,
            message,
        }
    }
}
