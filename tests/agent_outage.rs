//! Coordinator-outage autonomy (NFR-A1, F2): the agent keeps supervising its persisted
//! assignments while the control plane is gone, reconciles on reconnect without restarting
//! healthy containers, and a restarted agent adopts running containers. Paused tokio clock.

mod agent_common;

use std::time::Duration;

use agent_common::*;
use cloudless::agent::{Agent, AgentError, StateError};
use cloudless::runtime::FakeRuntime;
use cloudless::runtime::fake::{Attempt, Call, Script};
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::runtime::ContainerState;
use cloudless_core::workload::WorkloadSpec;

fn calls_for(calls: &[Call], id: &cloudless_core::runtime::ContainerId) -> Vec<Call> {
    calls
        .iter()
        .filter(|c| match c {
            Call::Create(x) | Call::Start(x) | Call::Stop(x, _) | Call::Remove(x) => x == id,
            Call::Exec(x, _) | Call::Logs(x, _, _) => x == id,
            _ => false,
        })
        .cloned()
        .collect()
}

#[tokio::test(start_paused = true)]
async fn fifteen_minute_outage_then_reconnect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = FakeRuntime::new();
    for img in ["steady", "flaky", "leaving"] {
        rt.preload_image(img);
    }
    // Crashes after 5 minutes, then runs.
    rt.script_image(
        "flaky",
        Script::new([
            Attempt::exits(1).after_ms(300_000),
            Attempt::runs_until_stopped(),
        ]),
    );
    let control = TestControl::new(set(
        1,
        vec![
            assigned(1, &WorkloadSpec::new("steady")),
            assigned(2, &WorkloadSpec::new("flaky")),
            assigned(3, &WorkloadSpec::new("leaving")),
        ],
    ));
    let agent = start(dir.path(), &control, &rt).await;
    for r in 1..=3 {
        wait_state(
            &rt,
            &cid(r, 0),
            ContainerState::Running,
            Duration::from_secs(5),
        )
        .await;
    }
    eventually("all reported Running", Duration::from_secs(5), || {
        (1..=3).all(|r| {
            control
                .last_report(r)
                .is_some_and(|x| x.phase == ReplicaPhase::Running)
        })
    })
    .await;

    control.set_up(false);
    tokio::time::sleep(Duration::from_secs(15 * 60)).await;
    let snap = agent.snapshot();
    assert!(!snap.control_reachable);
    assert_eq!(
        snap.unsent_reports, 1,
        "replica 2's restart waits to be reported"
    );
    for r in [1, 3] {
        assert_eq!(
            state_of(&rt, &cid(r, 0)).await,
            Some(ContainerState::Running)
        );
    }
    assert_eq!(
        state_of(&rt, &cid(2, 1)).await,
        Some(ContainerState::Running),
        "the crashed container was restarted during the outage"
    );
    for r in [1, 3] {
        assert_eq!(
            calls_for(&rt.calls(), &cid(r, 0)),
            [Call::Create(cid(r, 0)), Call::Start(cid(r, 0))],
            "a healthy container is never stopped or restarted during the outage"
        );
    }
    let calls_before_reconnect = rt.calls().len();

    // The coordinators come back having moved replica 3 elsewhere.
    control.assign(set(
        2,
        vec![
            assigned(1, &WorkloadSpec::new("steady")),
            assigned(2, &WorkloadSpec::new("flaky")),
        ],
    ));
    control.set_up(true);
    eventually("replica 3 removed", Duration::from_secs(60), || {
        rt.calls()[calls_before_reconnect..].contains(&Call::Remove(cid(3, 0)))
    })
    .await;
    eventually(
        "replica 2's restart reported",
        Duration::from_secs(60),
        || {
            control
                .last_report(2)
                .is_some_and(|r| r.restarts == 1 && r.phase == ReplicaPhase::Running)
        },
    )
    .await;
    let after = &rt.calls()[calls_before_reconnect..];
    assert_eq!(
        after,
        [Call::Stop(cid(3, 0), 10_000), Call::Remove(cid(3, 0))],
        "reconnect touched only the unassigned replica"
    );
    assert_eq!(
        state_of(&rt, &cid(1, 0)).await,
        Some(ContainerState::Running)
    );
    assert_eq!(
        state_of(&rt, &cid(2, 1)).await,
        Some(ContainerState::Running)
    );
    assert_eq!(
        agent.snapshot().assignments_revision.map(|r| r.get()),
        Some(2)
    );
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn restarted_agent_adopts_running_containers_without_the_coordinators() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = FakeRuntime::new();
    rt.preload_image("img");
    rt.preload_image("crashy");
    rt.script_image(
        "crashy",
        Script::new([
            Attempt::exits(1),
            Attempt::exits(1),
            Attempt::runs_until_stopped(),
        ]),
    );
    let control = TestControl::new(set(
        4,
        vec![
            assigned(1, &WorkloadSpec::new("img")),
            assigned(2, &WorkloadSpec::new("crashy")),
        ],
    ));
    let agent = start(dir.path(), &control, &rt).await;
    wait_state(
        &rt,
        &cid(1, 0),
        ContainerState::Running,
        Duration::from_secs(5),
    )
    .await;
    wait_state(
        &rt,
        &cid(2, 2),
        ContainerState::Running,
        Duration::from_secs(10),
    )
    .await;
    agent.shutdown().await;
    assert_eq!(
        state_of(&rt, &cid(1, 0)).await,
        Some(ContainerState::Running)
    );

    // A new agent process on the same data dir, coordinators unreachable.
    control.set_up(false);
    let calls_before = rt.calls().len();
    let agent = start(dir.path(), &control, &rt).await;
    assert_eq!(
        agent.snapshot().assignments_revision.map(|r| r.get()),
        Some(4)
    );
    eventually("adopted replicas reported", Duration::from_secs(5), || {
        let s = agent.snapshot();
        s.replicas.len() == 2
            && s.replicas
                .values()
                .all(|r| r.phase == ReplicaPhase::Running && r.ready)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        rt.calls()[calls_before..],
        [],
        "nothing restarted, created or removed"
    );
    let s = agent.snapshot();
    let restarts: Vec<u32> = s.replicas.values().map(|r| r.restarts).collect();
    assert_eq!(restarts, [0, 2], "restart counts survive the agent restart");
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn agent_without_assignments_leaves_unknown_containers_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = FakeRuntime::new();
    rt.preload_image("img");
    let spec = cloudless_runtime::supervisor::DesiredReplica::from_spec(
        cloudless_core::ids::ReplicaId(9),
        cloudless_core::ids::WorkloadId(1),
        cloudless_core::ids::Generation(1),
        &WorkloadSpec::new("img"),
    )
    .container_spec(0);
    use cloudless_core::runtime::Runtime;
    rt.create(&spec).await.expect("create");
    rt.start(&spec.id).await.expect("start");
    let control = TestControl::default(); // down from the start
    let agent = start(dir.path(), &control, &rt).await;
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(state_of(&rt, &spec.id).await, Some(ContainerState::Running));
    // Once the coordinators answer with an empty set, the stray container goes.
    control.assign(set(1, vec![]));
    control.set_up(true);
    eventually("stray removed", Duration::from_secs(60), || {
        rt.calls().contains(&Call::Remove(spec.id.clone()))
    })
    .await;
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn corrupt_or_future_state_file_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = FakeRuntime::new();
    let control = TestControl::new(set(1, vec![]));
    let state_dir = dir.path().join("agent");
    std::fs::create_dir_all(&state_dir).expect("mkdir");
    std::fs::write(state_dir.join("agent-state.json"), b"\x00garbage").expect("write");
    let err = Agent::start(config(dir.path()), deps(&control, &rt))
        .await
        .expect_err("corrupt state");
    assert!(
        matches!(err, AgentError::State(StateError::Corrupt { .. })),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("agent-state.json") && msg.contains("corrupt"),
        "{msg}"
    );

    std::fs::write(
        state_dir.join("agent-state.json"),
        br#"{"format":"cloudless-agent-state","version":2,"node":3}"#,
    )
    .expect("write");
    let err = Agent::start(config(dir.path()), deps(&control, &rt))
        .await
        .expect_err("future version");
    assert!(err.to_string().contains("format version 2"), "{err}");
    let mut bad = config(dir.path());
    bad.resync_interval = Duration::ZERO;
    let err = Agent::start(bad, deps(&control, &rt))
        .await
        .expect_err("config");
    assert!(err.to_string().contains("resync_interval"), "{err}");
}
