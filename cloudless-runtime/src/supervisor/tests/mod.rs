//! Exact action sequences of the supervisor, and properties over random event sequences.

use cloudless_core::ids::{Generation, ReplicaId, WorkloadId};
use cloudless_core::quantity::DurationSpec;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::runtime::{ContainerId, ContainerState, ContainerStatus};
use cloudless_core::workload::{ExecAction, Probe, RestartMode, RestartPolicy, WorkloadSpec};

use super::*;

const R1: ReplicaId = ReplicaId(1);

fn spec() -> WorkloadSpec {
    WorkloadSpec::new("img")
}

fn desired(replica: u64, spec: &WorkloadSpec) -> DesiredReplica {
    DesiredReplica::from_spec(ReplicaId(replica), WorkloadId(7), Generation(1), spec)
}

fn cid(replica: u64, attempt: u32) -> ContainerId {
    ContainerId::for_replica(ReplicaId(replica), attempt)
}

fn running(id: ContainerId, started: u64) -> ContainerStatus {
    ContainerStatus {
        id,
        state: ContainerState::Running,
        address: Some("10.88.0.1".into()),
        started_at_ms: Some(started),
        finished_at_ms: None,
        oom_killed: false,
    }
}

fn exited(id: ContainerId, code: i32, started: u64, finished: u64) -> ContainerStatus {
    ContainerStatus {
        id,
        state: ContainerState::Exited { code },
        address: Some("10.88.0.1".into()),
        started_at_ms: Some(started),
        finished_at_ms: Some(finished),
        oom_killed: false,
    }
}

fn status(phase: ReplicaPhase, ready: bool, restarts: u32, message: &str) -> ReplicaStatus {
    ReplicaStatus {
        replica: R1,
        workload: WorkloadId(7),
        generation: Generation(1),
        phase,
        ready,
        restarts,
        address: (phase == ReplicaPhase::Running).then(|| "10.88.0.1".to_owned()),
        message: message.into(),
    }
}

fn exec_probe(failure_threshold: u32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: vec!["check".into()],
        }),
        tcp: None,
        http: None,
        initial_delay: DurationSpec(0),
        period: DurationSpec::from_secs(10),
        timeout: DurationSpec::from_secs(1),
        success_threshold: 1,
        failure_threshold,
    }
}

/// A supervisor running replica 1 of `spec`, its first container started and reported.
fn started(spec: &WorkloadSpec) -> Supervisor {
    let mut s = Supervisor::new(SupervisorConfig::default());
    s.set_desired(0, vec![desired(1, spec)]);
    s.observe(0, &[]);
    let a = s.poll_actions(0);
    assert!(matches!(&a[0], Action::Start { spec, .. } if spec.id == cid(1, 0)));
    s.handle_outcome(0, R1, Outcome::Started(running(cid(1, 0), 0)));
    s
}

#[test]
fn start_crash_backoff_restart() {
    let mut s = Supervisor::new(SupervisorConfig::default());
    s.set_desired(0, vec![desired(1, &spec())]);
    s.observe(0, &[]);
    let d = desired(1, &spec());
    assert_eq!(
        s.poll_actions(0),
        vec![
            Action::Start {
                replica: R1,
                spec: d.container_spec(0)
            },
            Action::Report(status(ReplicaPhase::Starting, false, 0, "")),
        ]
    );
    assert_eq!(
        s.poll_actions(0),
        vec![],
        "one action at a time, reports only on change"
    );
    s.handle_outcome(0, R1, Outcome::Started(running(cid(1, 0), 0)));
    assert_eq!(
        s.poll_actions(0),
        vec![Action::Report(status(ReplicaPhase::Running, true, 0, ""))]
    );
    // Crash after 2 s: backoff 500 ms.
    s.observe(2_000, &[exited(cid(1, 0), 1, 0, 2_000)]);
    let msg = "restarting in 500 ms: exited with code 1";
    assert_eq!(
        s.poll_actions(2_000),
        vec![Action::Report(status(
            ReplicaPhase::Starting,
            false,
            0,
            msg
        ))]
    );
    assert_eq!(s.next_wakeup(), Some(2_500));
    assert_eq!(s.poll_actions(2_499), vec![]);
    assert_eq!(
        s.poll_actions(2_500),
        vec![
            Action::Restart {
                replica: R1,
                old: cid(1, 0),
                spec: d.container_spec(1)
            },
            Action::Report(status(ReplicaPhase::Starting, false, 1, msg)),
        ]
    );
    s.handle_outcome(
        2_500,
        R1,
        Outcome::Started(exited(cid(1, 1), 1, 2_500, 2_500)),
    );
    // Second crash in a row: 1 s.
    let acts = s.poll_actions(2_500);
    assert_eq!(
        acts,
        vec![Action::Report(status(
            ReplicaPhase::Starting,
            false,
            1,
            "restarting in 1000 ms: exited with code 1"
        ))]
    );
    assert_eq!(s.next_wakeup(), Some(3_500));
    assert_eq!(s.records()[&R1].next_attempt, 2);
}

#[test]
fn restart_policy_never_and_on_failure() {
    let mut never = spec();
    never.restart.policy = RestartMode::Never;
    let mut s = started(&never);
    s.poll_actions(0);
    s.observe(5, &[exited(cid(1, 0), 1, 0, 5)]);
    assert_eq!(
        s.poll_actions(5),
        vec![Action::Report(status(
            ReplicaPhase::Failed,
            false,
            0,
            "exited with code 1"
        ))]
    );
    assert_eq!(s.poll_actions(1_000_000), vec![]);
    assert_eq!(s.next_wakeup(), None);

    let mut on_failure = spec();
    on_failure.restart.policy = RestartMode::OnFailure;
    let mut s = started(&on_failure);
    s.poll_actions(0);
    s.observe(5, &[exited(cid(1, 0), 0, 0, 5)]);
    assert_eq!(
        s.poll_actions(5),
        vec![Action::Report(status(
            ReplicaPhase::Succeeded,
            false,
            0,
            "exited with code 0"
        ))]
    );
    assert_eq!(s.poll_actions(1_000_000), vec![]);
}

#[test]
fn an_oom_kill_is_named_in_the_reported_message() {
    let mut never = spec();
    never.restart.policy = RestartMode::Never;
    let mut s = started(&never);
    s.poll_actions(0);
    let mut oom = exited(cid(1, 0), 137, 0, 5);
    oom.oom_killed = true;
    s.observe(5, &[oom]);
    assert_eq!(
        s.poll_actions(5),
        vec![Action::Report(status(
            ReplicaPhase::Failed,
            false,
            0,
            "OOMKilled: out of memory, over its memory limit (exit code 137)"
        ))]
    );
}

#[test]
fn max_retries_gives_up_and_long_runs_reset_the_backoff() {
    let mut limited = spec();
    limited.restart = RestartPolicy {
        policy: RestartMode::Always,
        max_retries: Some(1),
        ..RestartPolicy::default()
    };
    let mut s = started(&limited);
    s.poll_actions(0);
    s.observe(10, &[exited(cid(1, 0), 3, 0, 10)]);
    s.poll_actions(10);
    let a = s.poll_actions(510);
    assert!(matches!(&a[0], Action::Restart { .. }), "{a:?}");
    s.handle_outcome(510, R1, Outcome::Started(running(cid(1, 1), 510)));
    s.poll_actions(510);
    s.observe(600, &[exited(cid(1, 1), 3, 510, 600)]);
    assert_eq!(
        s.poll_actions(600),
        vec![Action::Report(status(
            ReplicaPhase::Failed,
            false,
            1,
            "gave up after 1 consecutive restarts: exited with code 3"
        ))]
    );

    // A run longer than reset_after (60 s) starts the sequence over at 500 ms.
    let mut s = started(&spec());
    s.poll_actions(0);
    s.observe(10, &[exited(cid(1, 0), 1, 0, 10)]);
    s.poll_actions(10);
    s.poll_actions(510);
    s.handle_outcome(510, R1, Outcome::Started(running(cid(1, 1), 510)));
    s.observe(100_000, &[exited(cid(1, 1), 1, 510, 100_000)]);
    s.poll_actions(100_000);
    assert_eq!(s.next_wakeup(), Some(100_500));
}

#[test]
fn adoption_never_restarts_and_removes_stale_attempts() {
    let mut s = Supervisor::new(SupervisorConfig::default());
    s.observe(0, &[running(cid(1, 3), 0), exited(cid(1, 2), 1, 0, 0)]);
    assert_eq!(
        s.poll_actions(0),
        vec![],
        "nothing desired known yet: hands off"
    );
    s.set_desired(0, vec![desired(1, &spec())]);
    s.observe(0, &[running(cid(1, 3), 0), exited(cid(1, 2), 1, 0, 0)]);
    assert_eq!(
        s.poll_actions(0),
        vec![
            Action::Remove {
                replica: R1,
                id: cid(1, 2)
            },
            Action::Report(status(ReplicaPhase::Running, true, 3, "")),
        ]
    );
    s.handle_outcome(0, R1, Outcome::Removed(cid(1, 2)));
    s.observe(1, &[running(cid(1, 3), 0)]);
    assert_eq!(s.poll_actions(1), vec![]);
    assert_eq!(s.records()[&R1].next_attempt, 4);
}

#[test]
fn adopted_container_keeps_its_persisted_readiness() {
    let mut sp = spec();
    sp.probes.readiness = Some(exec_probe(1));
    let mut s = Supervisor::new(SupervisorConfig::default());
    let mut records = std::collections::BTreeMap::new();
    records.insert(
        R1,
        ReplicaRecord {
            next_attempt: 1,
            restarts: 0,
            consecutive: 0,
            ready: true,
        },
    );
    s.restore_records(records);
    s.set_desired(0, vec![desired(1, &sp)]);
    s.observe(0, &[running(cid(1, 0), 0)]);
    let a = s.poll_actions(0);
    assert_eq!(a.len(), 2, "{a:?}");
    assert!(matches!(&a[0], Action::Probe(p) if p.kind == ProbeKind::Readiness));
    assert_eq!(
        a[1],
        Action::Report(status(ReplicaPhase::Running, true, 0, ""))
    );
    // The probe still decides from here on.
    s.handle_probe_result(R1, &cid(1, 0), ProbeKind::Readiness, false);
    assert_eq!(
        s.poll_actions(1),
        vec![Action::Report(status(ReplicaPhase::Running, false, 0, ""))]
    );
}

#[test]
fn unassigned_replicas_are_stopped_then_removed() {
    let mut s = started(&spec());
    s.poll_actions(0);
    s.observe(1, &[running(cid(1, 0), 0), running(cid(9, 0), 0)]);
    assert_eq!(
        s.poll_actions(1),
        vec![Action::Stop {
            replica: ReplicaId(9),
            id: cid(9, 0),
            grace_ms: 10_000,
            reason: StopReason::Unassigned
        }]
    );
    s.handle_outcome(
        2,
        ReplicaId(9),
        Outcome::Stopped(exited(cid(9, 0), 143, 0, 2)),
    );
    assert_eq!(
        s.poll_actions(2),
        vec![Action::Remove {
            replica: ReplicaId(9),
            id: cid(9, 0)
        }]
    );
    s.handle_outcome(2, ReplicaId(9), Outcome::Removed(cid(9, 0)));
    // Replica 1 unassigned too.
    s.set_desired(3, vec![]);
    let a = s.poll_actions(3);
    assert!(
        matches!(&a[..], [Action::Stop { id, reason: StopReason::Unassigned, .. }] if *id == cid(1, 0)),
        "{a:?}"
    );
}

#[test]
fn liveness_failure_restarts() {
    let mut sp = spec();
    sp.probes.liveness = Some(exec_probe(2));
    let mut s = started(&sp);
    let a = s.poll_actions(0);
    assert!(
        matches!(&a[0], Action::Probe(p) if p.kind == ProbeKind::Liveness && p.container == cid(1, 0))
    );
    assert_eq!(a.len(), 2, "probe + report: {a:?}");
    s.handle_probe_result(R1, &cid(1, 0), ProbeKind::Liveness, false);
    assert_eq!(s.poll_actions(5_000), vec![], "period not elapsed");
    let a = s.poll_actions(10_000);
    assert!(matches!(&a[..], [Action::Probe(_)]), "{a:?}");
    s.handle_probe_result(R1, &cid(1, 0), ProbeKind::Liveness, false);
    assert_eq!(
        s.poll_actions(10_001),
        vec![Action::Stop {
            replica: R1,
            id: cid(1, 0),
            grace_ms: 10_000,
            reason: StopReason::LivenessFailed
        }]
    );
    s.handle_outcome(
        10_002,
        R1,
        Outcome::Stopped(exited(cid(1, 0), 143, 0, 10_002)),
    );
    assert_eq!(
        s.poll_actions(10_002),
        vec![Action::Report(status(
            ReplicaPhase::Starting,
            false,
            0,
            "restarting in 500 ms: liveness probe failed (exit code 143)"
        ))]
    );
    let a = s.poll_actions(10_502);
    assert!(
        matches!(&a[0], Action::Restart { old, .. } if *old == cid(1, 0)),
        "{a:?}"
    );
}

#[test]
fn readiness_gates_ready() {
    let mut sp = spec();
    sp.probes.readiness = Some(exec_probe(1));
    let mut s = started(&sp);
    let a = s.poll_actions(0);
    assert_eq!(a.len(), 2);
    assert_eq!(
        a[1],
        Action::Report(status(ReplicaPhase::Running, false, 0, ""))
    );
    s.handle_probe_result(R1, &cid(1, 0), ProbeKind::Readiness, true);
    assert_eq!(
        s.poll_actions(1),
        vec![Action::Report(status(ReplicaPhase::Running, true, 0, ""))]
    );
    let a = s.poll_actions(10_000);
    s.handle_probe_result(R1, &cid(1, 0), ProbeKind::Readiness, false);
    assert!(matches!(&a[..], [Action::Probe(_)]));
    assert_eq!(
        s.poll_actions(10_001),
        vec![Action::Report(status(ReplicaPhase::Running, false, 0, ""))]
    );
    // A stale result for another container changes nothing.
    s.handle_probe_result(R1, &cid(1, 9), ProbeKind::Readiness, true);
    assert_eq!(s.poll_actions(10_002), vec![]);
}

#[test]
fn start_failures_back_off_and_transient_ones_never_give_up() {
    let mut sp = spec();
    sp.restart.max_retries = Some(0);
    let mut s = Supervisor::new(SupervisorConfig::default());
    s.set_desired(0, vec![desired(1, &sp)]);
    s.poll_actions(0);
    for i in 0..20u64 {
        let id = cid(1, u32::try_from(i).unwrap_or(0));
        s.handle_outcome(
            0,
            R1,
            Outcome::StartFailed {
                id,
                reason: "registry down".into(),
                transient: true,
            },
        );
        s.poll_actions(0);
        let wake = s.next_wakeup().unwrap_or(0);
        let a = s.poll_actions(wake);
        assert!(matches!(&a[0], Action::Restart { .. }), "{a:?}");
    }
    s.handle_outcome(
        0,
        R1,
        Outcome::StartFailed {
            id: cid(1, 20),
            reason: "bad entrypoint".into(),
            transient: false,
        },
    );
    let a = s.poll_actions(0);
    assert!(
        matches!(&a[..], [Action::Report(st)] if st.phase == ReplicaPhase::Failed),
        "{a:?}"
    );
}

mod props;
