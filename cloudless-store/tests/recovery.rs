//! Quorum lost for good: one survivor's data becomes a new single-member cluster, which then
//! adds members again.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;

use cloudless_core::consensus::Consensus;
use cloudless_core::ids::NodeId;
use cloudless_net::mem::addr_of;
use cloudless_store::{Compaction, OpenError, RecoverError, recover_as_single_member};
use common::Cluster;
use common::commands::{event, has_event};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_restarts_the_cluster_alone_and_adds_members() {
    survivor_restarts(Cluster::start(3, 41).await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_survivor_with_a_snapshot_and_a_log_tail_recovers_both() {
    let tweak: common::Tweak = Arc::new(|c| {
        c.with_compaction(Compaction {
            snapshot_every: 4,
            keep_behind_snapshot: 1,
            ..Compaction::default()
        })
    });
    survivor_restarts(Cluster::start_with(3, 42, tweak).await).await;
}

#[tokio::test]
async fn an_empty_directory_cannot_be_recovered() {
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        recover_as_single_member(dir.path(), NodeId(1), addr_of(NodeId(1))).await,
        Err(RecoverError::Storage(_))
    ));
}

async fn survivor_restarts(mut c: Cluster) {
    let leader = c.wait_leader(&[]).await;
    for i in 0..10 {
        c.member(leader)
            .propose(event(&format!("q{i}")))
            .await
            .unwrap();
    }
    let before = c.member(leader).state().await.unwrap();
    // Every member is gone; only member 1's disk survives.
    c.shutdown().await;
    let dir = c.dir.path().join("n1");
    // The stopped members' tasks may hold the file for a moment.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    let revision = loop {
        match recover_as_single_member(&dir, NodeId(1), addr_of(NodeId(1))).await {
            Err(RecoverError::Open(OpenError::InUse { .. }))
                if tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            other => break other.unwrap(),
        }
    };
    assert_eq!(revision, before.revision);

    c.start_member(1).await;
    assert_eq!(c.wait_leader(&[]).await, 1);
    let after = c.member(1).state().await.unwrap();
    assert_eq!(*after, *before);
    let status = c.member(1).status().await.unwrap();
    assert_eq!(status.voters, BTreeSet::from([NodeId(1)]));
    let rev = c.member(1).propose(event("alone")).await.unwrap().revision;

    // A new member joins and receives everything.
    c.start_member(4).await;
    c.add_voter(1, 4).await;
    c.wait_applied(4, rev).await;
    let joined = c.member(4).local_state();
    assert!(has_event(&joined, "q0") && has_event(&joined, "alone"));
    c.shutdown().await;
}
