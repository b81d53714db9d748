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
    }
}

fn exited(id: ContainerId, code: i32, started: u64, finished: u64) -> ContainerStatus {
    ContainerStatus {
        id,
        state: ContainerState::Exited { code },
        address: Some("10.88.0.1".into()),
        started_at_ms: Some(started),
        finished_at_ms: Some(finished),
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

mod props {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    #[derive(Debug, Clone)]
    enum Ev {
        Crash(u64, i32),
        Probe(bool),
        Advance(u64),
        Toggle(u64),
        Observe,
        FailNextStart(bool),
    }

    fn ev() -> impl Strategy<Value = Ev> {
        prop_oneof![
            (1u64..4, -1i32..3).prop_map(|(r, c)| Ev::Crash(r, c)),
            any::<bool>().prop_map(Ev::Probe),
            (0u64..20_000).prop_map(Ev::Advance),
            (1u64..4).prop_map(Ev::Toggle),
            Just(Ev::Observe),
            any::<bool>().prop_map(Ev::FailNextStart),
        ]
    }

    struct Sim {
        containers: BTreeMap<ContainerId, ContainerStatus>,
        probes: Vec<ProbeRequest>,
        /// Consecutive liveness failures fed per container.
        live_failures: BTreeMap<ContainerId, u32>,
    }

    /// Creates and starts `id`, or (if a failure is armed) leaves it created and reports the
    /// failed start.
    fn start_in_sim(
        sim: &mut Sim,
        s: &mut Supervisor,
        fail_next: &mut Option<bool>,
        r: ReplicaId,
        id: ContainerId,
        now: u64,
    ) {
        match fail_next.take() {
            Some(transient) => {
                let mut c = running(id.clone(), now);
                c.state = ContainerState::Created;
                sim.containers.insert(id.clone(), c);
                s.handle_outcome(
                    now,
                    r,
                    Outcome::StartFailed {
                        id,
                        reason: "scripted".into(),
                        transient,
                    },
                );
            }
            None => {
                sim.containers.insert(id.clone(), running(id.clone(), now));
                s.handle_outcome(now, r, Outcome::Started(running(id, now)));
            }
        }
    }

    fn replica_containers(sim: &Sim, r: ReplicaId) -> usize {
        sim.containers
            .keys()
            .filter(|id| parse_container_id(id).map(|(x, _)| x) == Some(r))
            .count()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]
        #[test]
        fn one_container_per_replica_and_healthy_ones_untouched(
            events in proptest::collection::vec(ev(), 1..80)
        ) {
            let mut sp = spec();
            sp.probes.liveness = Some(exec_probe(2));
            let mut s = Supervisor::new(SupervisorConfig::default());
            let mut wanted: BTreeMap<u64, bool> = (1..4).map(|r| (r, true)).collect();
            let set = |s: &mut Supervisor, now: u64, w: &BTreeMap<u64, bool>| {
                let d = w.iter().filter(|(_, on)| **on).map(|(r, _)| desired(*r, &sp)).collect();
                s.set_desired(now, d);
            };
            set(&mut s, 0, &wanted);
            let mut sim = Sim { containers: BTreeMap::new(), probes: Vec::new(), live_failures: BTreeMap::new() };
            let mut now = 0u64;
            let mut phases: BTreeMap<ReplicaId, ReplicaPhase> = BTreeMap::new();
            let mut fail_next: Option<bool> = None;
            for e in events {
                match e {
                    Ev::Crash(r, code) => {
                        let live: Vec<ContainerId> = sim.containers.values()
                            .filter(|c| c.state == ContainerState::Running
                                && parse_container_id(&c.id).map(|(x, _)| x) == Some(ReplicaId(r)))
                            .map(|c| c.id.clone()).collect();
                        for id in live {
                            if let Some(c) = sim.containers.get_mut(&id) {
                                c.state = ContainerState::Exited { code };
                                c.finished_at_ms = Some(now);
                            }
                        }
                    }
                    Ev::Probe(ok) => {
                        if let Some(p) = sim.probes.pop() {
                            let n = sim.live_failures.entry(p.container.clone()).or_default();
                            *n = if ok { 0 } else { *n + 1 };
                            s.handle_probe_result(p.replica, &p.container, p.kind, ok);
                        }
                    }
                    Ev::Advance(ms) => now += ms,
                    Ev::Toggle(r) => {
                        let on = wanted.entry(r).or_insert(true);
                        *on = !*on;
                        phases.remove(&ReplicaId(r));
                        set(&mut s, now, &wanted);
                    }
                    Ev::FailNextStart(transient) => fail_next = Some(transient),
                    Ev::Observe => {
                        let list: Vec<ContainerStatus> = sim.containers.values().cloned().collect();
                        s.observe(now, &list);
                    }
                }
                // Run every action to completion, as a driver would.
                for _ in 0..20 {
                    let actions = s.poll_actions(now);
                    if actions.is_empty() { break; }
                    for a in actions {
                        let r = a.replica();
                        let desired_now = wanted.get(&r.get()).copied().unwrap_or(false);
                        match a {
                            Action::Start { spec, .. } => {
                                prop_assert_eq!(replica_containers(&sim, r), 0, "second container for {}", r);
                                start_in_sim(&mut sim, &mut s, &mut fail_next, r, spec.id, now);
                            }
                            Action::Restart { old, spec, .. } => {
                                let old_state = sim.containers.remove(&old).map(|c| c.state);
                                prop_assert!(old_state != Some(ContainerState::Running), "restart of a running container");
                                prop_assert_eq!(replica_containers(&sim, r), 0, "second container for {}", r);
                                start_in_sim(&mut sim, &mut s, &mut fail_next, r, spec.id, now);
                            }
                            Action::Stop { id, reason, .. } => {
                                let healthy = sim.live_failures.get(&id).copied().unwrap_or(0) < 2;
                                if desired_now {
                                    prop_assert!(!healthy, "healthy container {} stopped ({:?})", id, reason);
                                }
                                let st = sim.containers.get_mut(&id).map(|c| {
                                    c.state = ContainerState::Exited { code: 143 };
                                    c.finished_at_ms = Some(now);
                                    c.clone()
                                });
                                match st {
                                    Some(st) => s.handle_outcome(now, r, Outcome::Stopped(st)),
                                    None => s.handle_outcome(now, r, Outcome::Failed { id, reason: "gone".into() }),
                                }
                            }
                            Action::Remove { id, .. } => {
                                let was = sim.containers.remove(&id);
                                if desired_now {
                                    let running_healthy = was.as_ref().is_some_and(|c| c.state == ContainerState::Running)
                                        && replica_containers(&sim, r) == 0;
                                    prop_assert!(!running_healthy, "removed the only running container of {}", r);
                                }
                                s.handle_outcome(now, r, Outcome::Removed(id));
                            }
                            Action::Probe(p) => sim.probes.push(p),
                            Action::Report(st) => {
                                if let Some(prev) = phases.insert(r, st.phase) {
                                    prop_assert!(prev.can_become(st.phase), "{:?} -> {:?} for {}", prev, st.phase, r);
                                }
                                prop_assert!(!st.ready || st.phase == ReplicaPhase::Running);
                            }
                        }
                    }
                }
            }
        }
    }
}
