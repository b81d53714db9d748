//! The agent's side of the control protocol: heartbeat pacing from the ack, retry backoff while
//! the control plane is unreachable, assignment fetches only on a revision change, batched
//! reports. Paused tokio clock.

mod agent_common;

use std::time::Duration;

use agent_common::*;
use cloudless::runtime::FakeRuntime;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::workload::WorkloadSpec;

#[tokio::test(start_paused = true)]
async fn heartbeats_follow_the_ack_interval_and_back_off_when_down() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = FakeRuntime::new();
    let control = TestControl::new(set(1, vec![]));
    let agent = start(dir.path(), &control, &rt).await;
    tokio::time::sleep(Duration::from_millis(10_250)).await;
    // Every 500 ms from t0: 0, 0.5, ..., 10.0 s.
    assert_eq!(control.heartbeats().len(), 21);
    assert_eq!(agent.snapshot().heartbeats_acked, 21);

    control.set_up(false);
    let down_at = control.attempts().len();
    tokio::time::sleep(Duration::from_secs(120)).await;
    let gaps: Vec<u64> = control.attempts()[down_at..]
        .windows(2)
        .map(|w| u64::try_from((w[1] - w[0]).as_millis()).unwrap_or(u64::MAX))
        .collect();
    // 500 ms, doubling, capped at 5 s; each plus a per-node jitter of at most 20 %.
    let base = [500, 1_000, 2_000, 4_000, 5_000];
    assert!(gaps.len() >= base.len(), "{gaps:?}");
    for (gap, b) in gaps
        .iter()
        .zip(base.iter().chain(std::iter::repeat(&5_000)))
    {
        assert!(
            *gap >= *b && *gap <= b + b / 5,
            "gap {gap} ms for base {b} ms: {gaps:?}"
        );
    }
    assert!(!agent.snapshot().control_reachable);

    control.set_up(true);
    eventually("reachable again", Duration::from_secs(7), || {
        agent.snapshot().control_reachable
    })
    .await;
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn not_leader_is_retried_and_assignments_fetched_only_on_revision_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = FakeRuntime::new();
    rt.preload_image("img");
    let control = TestControl::new(set(1, vec![assigned(1, &WorkloadSpec::new("img"))]));
    control.not_leader_for(2);
    let agent = start(dir.path(), &control, &rt).await;
    eventually("replica 1 running", Duration::from_secs(10), || {
        control
            .last_report(1)
            .is_some_and(|r| r.phase == ReplicaPhase::Running)
    })
    .await;
    // Revision unchanged: the set is not fetched again, nothing restarts.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(
        agent.snapshot().assignments_revision.map(|r| r.get()),
        Some(1)
    );
    // Two replicas more in one new revision: both start, reports come in batches.
    control.assign(set(
        2,
        vec![
            assigned(1, &WorkloadSpec::new("img")),
            assigned(2, &WorkloadSpec::new("img")),
            assigned(3, &WorkloadSpec::new("img")),
        ],
    ));
    eventually("replicas 2 and 3 running", Duration::from_secs(10), || {
        [2, 3].iter().all(|r| {
            control
                .last_report(*r)
                .is_some_and(|x| x.phase == ReplicaPhase::Running)
        })
    })
    .await;
    let batches = control.batches();
    assert!(
        batches.iter().any(|n| *n >= 2),
        "some report call carried several reports: {batches:?}"
    );
    let per_replica1: Vec<ReplicaPhase> = control
        .reports()
        .iter()
        .filter(|r| r.replica.get() == 1)
        .map(|r| r.phase)
        .collect();
    assert_eq!(
        per_replica1,
        [ReplicaPhase::Starting, ReplicaPhase::Running],
        "replica 1 untouched by the new revision"
    );
    agent.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn replicas_already_terminal_in_the_ledger_are_not_started() {
    let dir = tempfile::tempdir().expect("tempdir");
    let rt = FakeRuntime::new();
    rt.preload_image("img");
    let mut done = assigned(1, &WorkloadSpec::new("img"));
    done.replica.phase = ReplicaPhase::Succeeded;
    let control = TestControl::new(set(1, vec![done, assigned(2, &WorkloadSpec::new("img"))]));
    let agent = start(dir.path(), &control, &rt).await;
    eventually("replica 2 running", Duration::from_secs(10), || {
        control
            .last_report(2)
            .is_some_and(|r| r.phase == ReplicaPhase::Running)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert!(
        !rt.calls()
            .iter()
            .any(|c| matches!(c, cloudless::runtime::fake::Call::Create(id) if *id == cid(1, 0))),
        "a Succeeded replica is not run again"
    );
    assert!(control.last_report(1).is_none());
    agent.shutdown().await;
}
