//! 3-member raft clusters on MemTransport with redb files: leader crash, minority partition,
//! heal, restart from files, catch-up by snapshot, and the over-commit race.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap to fail loudly.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cloudless_core::consensus::{Consensus, ConsensusError, WatchFilter};
use cloudless_core::ids::{NodeId, Revision};
use cloudless_core::state::{ApplyError, CommandResult};
use cloudless_store::Compaction;
use common::Cluster;
use common::commands::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leader_is_replaced_and_no_acknowledged_write_is_lost() {
    let mut c = Cluster::start(3, 11).await;
    let leader = c.wait_leader(&[]).await;
    let mut last = Revision(0);
    for i in 0..20 {
        last = c
            .member(leader)
            .propose(event(&format!("w{i}")))
            .await
            .unwrap()
            .revision;
    }
    c.crash(leader).await;
    let next = c.wait_leader(&[]).await;
    assert_ne!(next, leader);
    let state = c.member(next).state().await.unwrap();
    assert!(state.revision >= last);
    for i in 0..20 {
        assert!(has_event(&state, &format!("w{i}")), "w{i} lost");
    }
    // The new leader takes writes; the old one comes back from its files and catches up.
    let after = c
        .member(next)
        .propose(event("after"))
        .await
        .unwrap()
        .revision;
    c.start_member(leader).await;
    c.wait_applied(leader, after).await;
    assert!(has_event(&c.member(leader).local_state(), "after"));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_minority_cannot_commit_and_converges_after_heal() {
    let tweak: common::Tweak = Arc::new(|c| c.with_propose_timeout(Duration::from_millis(1500)));
    let mut c = Cluster::start_with(3, 12, tweak).await;
    let old = c.wait_leader(&[]).await;
    c.member(old).propose(event("before")).await.unwrap();
    let majority: Vec<u64> = (1..=3).filter(|&n| n != old).collect();
    let ids = |v: &[u64]| v.iter().map(|&n| NodeId(n)).collect::<Vec<_>>();
    c.net.partition(&ids(&[old]), &ids(&majority));

    // The isolated leader cannot commit.
    match c.member(old).propose(event("minority")).await {
        Err(ConsensusError::Unavailable(_) | ConsensusError::NotLeader { .. }) => {}
        other => panic!("a minority committed: {other:?}"),
    }
    // The majority elects a leader and commits.
    let new = c.wait_leader(&[old]).await;
    assert_ne!(new, old);
    let rev = c
        .member(new)
        .propose(event("majority"))
        .await
        .unwrap()
        .revision;

    c.net.heal();
    c.wait_applied(old, rev).await;
    let leader = c.wait_leader(&[]).await;
    let truth = c.member(leader).state().await.unwrap();
    for id in 1..=3 {
        c.wait_applied(id, truth.revision).await;
        let local = c.member(id).local_state();
        assert_eq!(*local, *truth, "member {id} diverged");
    }
    assert!(has_event(&truth, "majority"));
    assert!(
        !has_event(&truth, "minority"),
        "an uncommitted write survived"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_restarted_from_its_files_recovers_its_state() {
    let mut c = Cluster::start(3, 13).await;
    let leader = c.wait_leader(&[]).await;
    for i in 0..10 {
        c.member(leader)
            .propose(event(&format!("r{i}")))
            .await
            .unwrap();
    }
    let before = c.member(leader).state().await.unwrap();
    c.shutdown().await;
    for id in 1..=3 {
        c.start_member(id).await;
    }
    let leader = c.wait_leader(&[]).await;
    let after = c.member(leader).state().await.unwrap();
    let missing: Vec<String> = (0..10)
        .map(|i| format!("r{i}"))
        .filter(|e| !has_event(&after, e))
        .collect();
    assert!(missing.is_empty(), "lost after restart: {missing:?}");
    assert_eq!(*after, *before);
    c.member(leader).propose(event("more")).await.unwrap();
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_member_catches_up_by_snapshot() {
    let tweak: common::Tweak = Arc::new(|c| {
        c.with_compaction(Compaction {
            snapshot_every: 8,
            keep_behind_snapshot: 0,
            // Small chunks: the snapshot crosses the network in many InstallSnapshot calls.
            snapshot_chunk_bytes: 512,
            snapshot_log_bytes: None,
        })
    });
    let mut c = Cluster::start_with(3, 14, tweak).await;
    let leader = c.wait_leader(&[]).await;
    let lagging = (1..=3).find(|&n| n != leader).unwrap();
    c.crash(lagging).await;
    let mut last = Revision(0);
    for i in 0..40 {
        last = c
            .member(leader)
            .propose(event(&format!("s{i}")))
            .await
            .unwrap()
            .revision;
    }
    // Wait until the leader has snapshotted and purged past what the lagging member has.
    let raft = c.member(leader).raft().clone();
    raft.wait(Some(Duration::from_secs(20)))
        .metrics(
            |m| m.purged.is_some_and(|p| p.index > 10),
            "leader purged its log",
        )
        .await
        .unwrap();
    c.start_member(lagging).await;
    c.wait_applied(lagging, last).await;
    let m = c.member(lagging).raft().metrics().borrow().clone();
    assert!(
        m.snapshot.is_some(),
        "the lagging member installed no snapshot"
    );
    let snapshot = c.member(leader).raft().metrics().borrow().snapshot;
    assert!(snapshot.is_some());
    let truth = c.member(leader).state().await.unwrap();
    assert_eq!(*c.member(lagging).local_state(), *truth);
    // Its watch history starts after the snapshot: older revisions are compacted.
    assert!(matches!(
        c.member(lagging)
            .watch(WatchFilter::all(), Revision(1))
            .await,
        Err(ConsensusError::Compacted { .. })
    ));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_concurrent_assignments_commit_exactly_one() {
    let c = Cluster::start(3, 15).await;
    let leader = c.member(c.wait_leader(&[]).await).clone();
    let node = match leader
        .propose(register("edge-1", 1000))
        .await
        .unwrap()
        .result
    {
        CommandResult::NodeRegistered { node } => node,
        other => panic!("{other:?}"),
    };
    leader.propose(ready(node)).await.unwrap();
    let workload = match leader.propose(create_workload("web")).await.unwrap().result {
        CommandResult::WorkloadCreated { workload } => workload,
        other => panic!("{other:?}"),
    };
    // Each fits alone (600 of 1000 millicores); together they would over-commit.
    let (a, b) = tokio::join!(
        leader.propose(assign(workload, node, 600)),
        leader.propose(assign(workload, node, 600))
    );
    let outcomes = [a, b];
    let accepted = outcomes.iter().filter(|r| r.is_ok()).count();
    let refused = outcomes
        .iter()
        .filter(|r| {
            matches!(
                r,
                Err(ConsensusError::Rejected(ApplyError::DoesNotFit { .. }))
            )
        })
        .count();
    assert_eq!((accepted, refused), (1, 1), "{outcomes:?}");
    let state = leader.state().await.unwrap();
    assert_eq!(state.replicas_on(node).count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_redirect_to_the_leader() {
    let c = Cluster::start(3, 16).await;
    let leader = c.wait_leader(&[]).await;
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    match c.member(follower).propose(event("x")).await {
        Err(ConsensusError::NotLeader { leader: hint }) => assert_eq!(hint, Some(NodeId(leader))),
        other => panic!("expected NotLeader, got {other:?}"),
    }
    assert!(matches!(
        c.member(follower).state().await,
        Err(ConsensusError::NotLeader { .. })
    ));
    let status = c.member(follower).status().await.unwrap();
    assert_eq!(status.leader, Some(NodeId(leader)));
    assert_eq!(status.voters.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_proposals_are_batched_with_dense_distinct_revisions() {
    let c = Cluster::start(3, 17).await;
    let leader = c.member(c.wait_leader(&[]).await).clone();
    let start = leader.state().await.unwrap().revision;
    let proposals = (0..64).map(|i| {
        let leader = leader.clone();
        async move {
            leader
                .propose(event(&format!("b{i}")))
                .await
                .unwrap()
                .revision
        }
    });
    let mut revisions = futures::future::join_all(proposals).await;
    revisions.sort();
    let expected: Vec<Revision> = (1..=64).map(|i| Revision(start.0 + i)).collect();
    assert_eq!(revisions, expected);
    // Fewer log entries than commands: concurrent proposals shared entries.
    let last_index = leader.raft().metrics().borrow().last_applied.unwrap().index;
    assert!(
        last_index < 64,
        "no batching: {last_index} entries for 64 commands"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_members_survive_two_crashes_and_a_minority_of_two_cannot_commit() {
    let tweak: common::Tweak = Arc::new(|c| c.with_propose_timeout(Duration::from_millis(1500)));
    let mut c = Cluster::start_with(5, 18, tweak).await;
    let leader = c.wait_leader(&[]).await;
    let acked = c
        .member(leader)
        .propose(event("five"))
        .await
        .unwrap()
        .revision;
    // Crash the leader and one follower: three of five remain, a quorum.
    let follower = (1..=5).find(|&n| n != leader).unwrap();
    c.crash(leader).await;
    c.crash(follower).await;
    let next = c.wait_leader(&[]).await;
    let state = c.member(next).state().await.unwrap();
    assert!(state.revision >= acked && has_event(&state, "five"));
    let rev = c
        .member(next)
        .propose(event("three-of-five"))
        .await
        .unwrap()
        .revision;

    // Bring both back, then cut the current leader and one other off: that side is a minority.
    c.start_member(leader).await;
    c.start_member(follower).await;
    let now = c.wait_leader(&[]).await;
    for id in 1..=5 {
        c.wait_applied(id, rev).await;
    }
    let buddy = (1..=5).find(|&n| n != now).unwrap();
    let majority: Vec<NodeId> = (1..=5)
        .filter(|&n| n != now && n != buddy)
        .map(NodeId)
        .collect();
    c.net.partition(&[NodeId(now), NodeId(buddy)], &majority);
    match c.member(now).propose(event("minority-of-two")).await {
        Err(ConsensusError::Unavailable(_) | ConsensusError::NotLeader { .. }) => {}
        other => panic!("a minority of two committed: {other:?}"),
    }
    // The majority side elects its own leader before the heal, so the minority's entry can
    // never be committed later.
    let majority_leader = c.wait_leader(&[now, buddy]).await;
    assert!(majority_leader != now && majority_leader != buddy);
    c.net.heal();
    let leader = c.wait_leader(&[]).await;
    let done = c
        .member(leader)
        .propose(event("healed"))
        .await
        .unwrap()
        .revision;
    for id in 1..=5 {
        c.wait_applied(id, done).await;
        assert!(!has_event(&c.member(id).local_state(), "minority-of-two"));
    }
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_watch_resumes_from_a_revision_and_survives_its_restart() {
    use futures::StreamExt;
    let mut c = Cluster::start(3, 19).await;
    let leader = c.wait_leader(&[]).await;
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    let mut revisions = Vec::new();
    for i in 0..5 {
        let applied = c
            .member(leader)
            .propose(event(&format!("v{i}")))
            .await
            .unwrap();
        revisions.push(applied.revision);
    }
    c.wait_applied(follower, revisions[4]).await;
    let from = revisions[2];
    let mut stream = c
        .member(follower)
        .watch(WatchFilter::all(), from)
        .await
        .unwrap();
    for want in &revisions[2..] {
        let change = stream.next().await.unwrap().unwrap();
        assert_eq!(change.revision, *want);
    }
    // Restarted from its files, the follower replays its log: the same watch resumes.
    drop(stream);
    c.crash(follower).await;
    c.start_member(follower).await;
    let live = c
        .member(leader)
        .propose(event("live"))
        .await
        .unwrap()
        .revision;
    c.wait_applied(follower, live).await;
    let mut again = c
        .member(follower)
        .watch(WatchFilter::all(), from)
        .await
        .unwrap();
    for want in revisions[2..].iter().chain([&live]) {
        let change = again.next().await.unwrap().unwrap();
        assert_eq!(change.revision, *want);
    }
    c.shutdown().await;
}
