//! Size-based log compaction: with the entry-count trigger out of reach, a snapshot is built
//! and the log purged once the appended log bytes exceed `snapshot_log_bytes`, and not
//! without that trigger.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap to fail loudly.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cloudless_core::consensus::Consensus;
use cloudless_store::Compaction;
use common::Cluster;
use common::commands::*;
use tokio::time::Instant;

fn compaction(bytes: Option<u64>) -> common::Tweak {
    Arc::new(move |c| {
        c.with_compaction(Compaction {
            snapshot_every: 1_000_000,
            keep_behind_snapshot: 0,
            snapshot_log_bytes: bytes,
            ..Compaction::default()
        })
    })
}

/// Writes 40 commands of ≈ 1 KiB each (≈ 40 KiB of log) through the leader.
async fn write_40_kib(c: &Cluster) -> u64 {
    let leader = c.wait_leader(&[]).await;
    let pad = "x".repeat(1000);
    for i in 0..40 {
        c.member(leader)
            .propose(event(&format!("{i}-{pad}")))
            .await
            .unwrap();
    }
    leader
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_is_snapshotted_and_purged_once_it_exceeds_the_size_limit() {
    let mut c = Cluster::start_with(3, 51, compaction(Some(16 * 1024))).await;
    let leader = write_40_kib(&c).await;
    // Snapshot building and purging run in the background: generous on a loaded machine.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let m = c.member(leader).raft().metrics().borrow().clone();
        if m.snapshot.is_some() && m.purged.is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no size-triggered snapshot: snapshot {:?}, purged {:?}",
            m.snapshot,
            m.purged
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The state is intact after compaction, and a restart from the snapshot recovers it.
    let before = c.member(leader).state().await.unwrap();
    c.crash(leader).await;
    c.start_member(leader).await;
    // The committed index is persisted lazily, so the restarted member may replay the tail
    // past the snapshot only once the new leader tells it what is committed.
    c.wait_applied(leader, before.revision).await;
    assert_eq!(*c.member(leader).local_state(), *before);
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_size_limit_the_same_log_is_not_snapshotted() {
    let mut c = Cluster::start_with(3, 52, compaction(None)).await;
    let leader = write_40_kib(&c).await;
    // Several heartbeat intervals: the size trigger would have fired by now.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let m = c.member(leader).raft().metrics().borrow().clone();
    assert_eq!(m.snapshot, None);
    assert_eq!(m.purged, None);
    c.shutdown().await;
}
