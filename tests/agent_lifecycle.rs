//! The agent against `FakeRuntime` and a scripted control plane, on tokio's paused clock:
//! starting assignments, reporting, restart policies with backoff, liveness and readiness.

mod agent_common;

use std::time::Duration;

use agent_common::*;
use cloudless::runtime::fake::{Attempt, Call, ExecScript, Script};
use cloudless_core::quantity::DurationSpec;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::runtime::ContainerState;
use cloudless_core::workload::{ExecAction, Probe, RestartMode, WorkloadSpec};

fn exec_probe(cmd: &str, failure_threshold: u32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: vec![cmd.into()],
        }),
        tcp: None,
        http: None,
        initial_delay: DurationSpec::from_secs(1),
        period: DurationSpec::from_secs(2),
        timeout: DurationSpec::from_secs(1),
        success_threshold: 1,
        failure_threshold,
    }
}

fn creates(rt: &cloudless::runtime::FakeRuntime) -> Vec<String> {
    rt.calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Create(id) => Some(id.0),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn assignment_runs_and_is_reported_running_and_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = cloudless::runtime::FakeRuntime::new();
    let control = TestControl::new(set(5, vec![assigned(1, &WorkloadSpec::new("img"))]));
    let agent = start(dir.path(), &control, &rt).await;
    wait_state(
        &rt,
        &cid(1, 0),
        ContainerState::Running,
        Duration::from_secs(5),
    )
    .await;
    eventually("Running+ready reported", Duration::from_secs(5), || {
        control
            .last_report(1)
            .is_some_and(|r| r.phase == ReplicaPhase::Running && r.ready && r.address.is_some())
    })
    .await;
    assert_eq!(
        rt.calls()[..3],
        [
            Call::Create(cid(1, 0)),
            Call::PullImage("img".into()),
            Call::Create(cid(1, 0)),
        ],
        "image pulled only because it was not local"
    );
    let snap = agent.snapshot();
    assert_eq!(snap.assignments_revision.map(|r| r.get()), Some(5));
    assert!(snap.control_reachable);
    // The heartbeat carries the resource report.
    let hb = control.heartbeats();
    let first = hb.first().expect("a heartbeat");
    assert_eq!(first.capacity.cpu_millis, 4000);
    assert_eq!(first.capacity.egress_mbps, 50);
    assert_eq!(first.zone, "home-1");
    assert_eq!(
        first.power,
        cloudless_core::node::PowerSource::Battery {
            level_percent: 80,
            charging: true
        },
        "detected power is reported when the config does not set it"
    );
    // Reports are changes only: Starting, then Running.
    let phases: Vec<ReplicaPhase> = control.reports().iter().map(|r| r.phase).collect();
    assert_eq!(phases, [ReplicaPhase::Starting, ReplicaPhase::Running]);
    agent.shutdown().await;
    assert_eq!(
        state_of(&rt, &cid(1, 0)).await,
        Some(ContainerState::Running),
        "shutdown leaves containers running"
    );
}

#[tokio::test(start_paused = true)]
async fn crash_loop_restarts_with_exponential_backoff() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = cloudless::runtime::FakeRuntime::new();
    rt.preload_image("crashy");
    rt.script_image("crashy", Script::new([Attempt::exits(1)]));
    let control = TestControl::new(set(1, vec![assigned(1, &WorkloadSpec::new("crashy"))]));
    let t0 = tokio::time::Instant::now();
    let agent = start(dir.path(), &control, &rt).await;
    // Backoff 0.5 s, 1 s, 2 s, 4 s: starts at 0, 0.5, 1.5, 3.5, 7.5 s.
    eventually("fifth attempt", Duration::from_secs(20), || {
        creates(&rt).len() >= 5
    })
    .await;
    let elapsed = t0.elapsed();
    assert!(
        elapsed >= Duration::from_millis(7_500) && elapsed < Duration::from_millis(7_700),
        "fifth start after {elapsed:?}"
    );
    let expected: Vec<String> = (0..5).map(|a| cid(1, a).0).collect();
    assert_eq!(creates(&rt), expected);
    // Each restart removes the previous attempt first: never two containers for the replica.
    let removes: Vec<Call> = rt
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Remove(_)))
        .collect();
    assert_eq!(removes.len(), 4);
    eventually("restarts reported", Duration::from_secs(5), || {
        control.last_report(1).is_some_and(|r| r.restarts == 4)
    })
    .await;
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn crash_then_recovers_and_policy_never_is_respected() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = cloudless::runtime::FakeRuntime::new();
    rt.preload_image("once");
    rt.preload_image("never");
    rt.script_image(
        "once",
        Script::new([
            Attempt::exits(2).after_ms(3_000),
            Attempt::runs_until_stopped(),
        ]),
    );
    rt.script_image("never", Script::new([Attempt::exits(1).after_ms(1_000)]));
    let mut never = WorkloadSpec::new("never");
    never.restart.policy = RestartMode::Never;
    let control = TestControl::new(set(
        1,
        vec![assigned(1, &WorkloadSpec::new("once")), assigned(2, &never)],
    ));
    let agent = start(dir.path(), &control, &rt).await;
    wait_state(
        &rt,
        &cid(1, 1),
        ContainerState::Running,
        Duration::from_secs(10),
    )
    .await;
    eventually("replica 2 Failed", Duration::from_secs(10), || {
        control
            .last_report(2)
            .is_some_and(|r| r.phase == ReplicaPhase::Failed && r.message.contains("code 1"))
    })
    .await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    let c = creates(&rt);
    assert_eq!(
        c.iter().filter(|id| id.starts_with("r2-")).count(),
        1,
        "{c:?}"
    );
    assert_eq!(
        c.iter().filter(|id| id.starts_with("r1-")).count(),
        2,
        "{c:?}"
    );
    assert_eq!(
        state_of(&rt, &cid(2, 0)).await,
        Some(ContainerState::Exited { code: 1 }),
        "the failed container is kept (logs stay readable)"
    );
    let r1 = control.last_report(1).expect("report");
    assert_eq!(
        (r1.phase, r1.restarts, r1.ready),
        (ReplicaPhase::Running, 1, true)
    );
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn failing_liveness_probe_restarts_the_container() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = cloudless::runtime::FakeRuntime::new();
    rt.preload_image("img");
    rt.script_exec(&["alive"], ExecScript::exits(1));
    let mut spec = WorkloadSpec::new("img");
    spec.probes.liveness = Some(exec_probe("alive", 3));
    let control = TestControl::new(set(1, vec![assigned(1, &spec)]));
    let agent = start(dir.path(), &control, &rt).await;
    wait_state(
        &rt,
        &cid(1, 0),
        ContainerState::Running,
        Duration::from_secs(5),
    )
    .await;
    // Probes at 1, 3, 5 s fail; the third failure stops the container; backoff 0.5 s.
    wait_state(
        &rt,
        &cid(1, 1),
        ContainerState::Running,
        Duration::from_secs(15),
    )
    .await;
    let calls = rt.calls();
    let execs = calls
        .iter()
        .take_while(|c| !matches!(c, Call::Stop(..)))
        .filter(|c| matches!(c, Call::Exec(..)))
        .count();
    assert_eq!(
        execs, 3,
        "stopped after exactly failure_threshold failures: {calls:?}"
    );
    assert!(
        calls.contains(&Call::Stop(cid(1, 0), 10_000)),
        "graceful stop: {calls:?}"
    );
    eventually("restart reported", Duration::from_secs(5), || {
        control.last_report(1).is_some_and(|r| r.restarts == 1)
    })
    .await;
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn readiness_probe_gates_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = cloudless::runtime::FakeRuntime::new();
    rt.preload_image("img");
    rt.script_exec(&["ready"], ExecScript::exits(1));
    let mut spec = WorkloadSpec::new("img");
    spec.probes.readiness = Some(exec_probe("ready", 1));
    let control = TestControl::new(set(1, vec![assigned(1, &spec)]));
    let agent = start(dir.path(), &control, &rt).await;
    eventually("Running, not ready", Duration::from_secs(5), || {
        control
            .last_report(1)
            .is_some_and(|r| r.phase == ReplicaPhase::Running && !r.ready)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert!(!control.last_report(1).is_some_and(|r| r.ready));
    rt.script_exec(&["ready"], ExecScript::prints("ok"));
    eventually("ready", Duration::from_secs(5), || {
        control.last_report(1).is_some_and(|r| r.ready)
    })
    .await;
    rt.script_exec(&["ready"], ExecScript::exits(1));
    eventually("not ready again", Duration::from_secs(5), || {
        control.last_report(1).is_some_and(|r| !r.ready)
    })
    .await;
    assert_eq!(creates(&rt).len(), 1, "readiness never restarts");
    agent.shutdown().await;
}
