//! Operator snapshots: save from a running 3-member cluster, restore as a new single-member
//! cluster that serves the same state; refusal of existing files, non-empty directories and
//! corrupted, truncated, foreign or future-version snapshot files.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests unwrap to fail loudly.

mod common;

use std::path::Path;

use cloudless_core::consensus::{Consensus, ConsensusError};
use cloudless_core::ids::NodeId;
use cloudless_core::state::ClusterState;
use cloudless_net::mem::addr_of;
use cloudless_store::snapshot::{
    SNAPSHOT_FILE_VERSION, SnapshotFileError, read, restore, save, save_from,
};
use common::Cluster;
use common::commands::*;
use tempfile::TempDir;

fn state_with_events(n: usize) -> ClusterState {
    let mut state = ClusterState::new();
    for i in 0..n {
        cloudless_core::state::apply(&mut state, &event(&format!("e{i}"))).unwrap();
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_cluster_restores_as_a_single_member_cluster_with_the_same_state() {
    let mut c = Cluster::start(3, 41).await;
    let leader = c.wait_leader(&[]).await;
    for i in 0..15 {
        c.member(leader)
            .propose(event(&format!("s{i}")))
            .await
            .unwrap();
    }
    let files = TempDir::new().unwrap();
    let file = files.path().join("cluster.snap");
    // A follower cannot serve the linearizable read a save needs.
    let follower = (1..=3).find(|&n| n != leader).unwrap();
    assert!(matches!(
        save_from(c.member(follower), &file).await,
        Err(SnapshotFileError::Consensus(
            ConsensusError::NotLeader { .. }
        ))
    ));
    let saved = save_from(c.member(leader), &file).await.unwrap();
    let truth = c.member(leader).state().await.unwrap();
    assert_eq!(saved.revision, truth.revision);
    c.shutdown().await;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "snapshot file mode {mode:o}");
    }
    assert_eq!(read(&file).unwrap(), *truth);

    // Restore as member 1 of a new cluster; it elects itself and serves the same state.
    let data = TempDir::new().unwrap();
    let info = restore(
        &file,
        &data.path().join("n1"),
        NodeId(1),
        addr_of(NodeId(1)),
    )
    .unwrap();
    assert_eq!(info.revision, truth.revision);
    let mut fresh = Cluster::empty(42, data);
    fresh.start_member(1).await;
    assert_eq!(fresh.wait_leader(&[]).await, 1);
    let restored = fresh.member(1).state().await.unwrap();
    assert_eq!(*restored, *truth);
    // It takes writes, and revisions continue from the saved one.
    let next = fresh.member(1).propose(event("after")).await.unwrap();
    assert_eq!(next.revision.0, truth.revision.0 + 1);
    // And it grows back into a cluster.
    fresh.start_member(2).await;
    fresh.add_voter(1, 2).await;
    fresh.wait_applied(2, next.revision).await;
    assert!(has_event(&fresh.member(2).local_state(), "s14"));
    fresh.shutdown().await;
}

#[test]
fn save_refuses_to_replace_a_file() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("x.snap");
    std::fs::write(&file, b"keep me").unwrap();
    assert!(matches!(
        save(&state_with_events(1), &file),
        Err(SnapshotFileError::Exists { .. })
    ));
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}

#[test]
fn restore_refuses_a_non_empty_directory_and_leaves_it_alone() {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("x.snap");
    save(&state_with_events(3), &file).unwrap();
    let target = dir.path().join("data");
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("raft.redb"), b"old data").unwrap();
    assert!(matches!(
        restore(&file, &target, NodeId(1), "a".into()),
        Err(SnapshotFileError::NotEmpty { .. })
    ));
    assert_eq!(
        std::fs::read(target.join("raft.redb")).unwrap(),
        b"old data"
    );
}

/// Saves a state, lets `damage` rewrite the file bytes, and returns the restore error; the
/// target directory must not have been created.
fn restore_damaged(damage: impl FnOnce(&mut Vec<u8>)) -> SnapshotFileError {
    let dir = TempDir::new().unwrap();
    let file = dir.path().join("x.snap");
    save(&state_with_events(5), &file).unwrap();
    let mut bytes = std::fs::read(&file).unwrap();
    damage(&mut bytes);
    std::fs::write(&file, &bytes).unwrap();
    let target = dir.path().join("data");
    let err = restore(&file, &target, NodeId(1), "a".into()).unwrap_err();
    assert!(
        !Path::new(&target).exists(),
        "a refused restore created {target:?}"
    );
    // The message names the file.
    assert!(err.to_string().contains("x.snap"), "{err}");
    err
}

#[test]
fn corrupted_snapshot_files_are_refused_with_typed_errors() {
    let last = |b: &mut Vec<u8>| {
        let n = b.len() - 1;
        b[n] ^= 0x40;
    };
    assert!(matches!(
        restore_damaged(last),
        SnapshotFileError::Checksum { .. }
    ));
    assert!(matches!(
        restore_damaged(|b| b.truncate(b.len() - 10)),
        SnapshotFileError::Length { .. }
    ));
    assert!(matches!(
        restore_damaged(|b| b.extend_from_slice(b"junk")),
        SnapshotFileError::Length { .. }
    ));
    assert!(matches!(
        restore_damaged(|b| b[0] = b'X'),
        SnapshotFileError::NotASnapshot { .. }
    ));
    assert!(matches!(
        restore_damaged(|b| b.truncate(20)),
        SnapshotFileError::NotASnapshot { .. }
    ));
    let future = SNAPSHOT_FILE_VERSION + 1;
    assert!(matches!(
        restore_damaged(|b| b[8..12].copy_from_slice(&future.to_be_bytes())),
        SnapshotFileError::FutureVersion { found, .. } if found == future
    ));
}
