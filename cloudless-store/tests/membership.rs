//! Adding and removing voters with openraft membership changes.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod common;

use std::collections::BTreeSet;

use cloudless_core::consensus::{Consensus, ConsensusError};
use cloudless_core::ids::NodeId;
use common::Cluster;
use common::commands::event;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn voters_are_added_and_removed() {
    let mut c = Cluster::start(1, 31).await;
    c.member(1).propose(event("first")).await.unwrap();
    c.start_member(2).await;
    c.start_member(3).await;
    for id in [2, 3] {
        c.add_voter(1, id).await;
    }
    let status = c.member(1).status().await.unwrap();
    assert_eq!(
        status.voters,
        BTreeSet::from([NodeId(1), NodeId(2), NodeId(3)])
    );
    let rev = c.member(1).propose(event("second")).await.unwrap().revision;
    c.wait_applied(3, rev).await;
    assert!(common::commands::has_event(
        &c.member(3).local_state(),
        "first"
    ));

    c.member(1).remove_voter(NodeId(3)).await.unwrap();
    let status = c.member(1).status().await.unwrap();
    assert_eq!(status.voters, BTreeSet::from([NodeId(1), NodeId(2)]));
    assert!(matches!(
        c.member(1).remove_voter(NodeId(7)).await,
        Err(ConsensusError::Membership(_))
    ));
    // A follower refuses membership changes with a leader hint.
    let refused = c.member(2).remove_voter(NodeId(1)).await;
    assert!(
        matches!(
            refused,
            Err(ConsensusError::NotLeader {
                leader: Some(NodeId(1))
            })
        ),
        "{refused:?}"
    );
    c.member(1).propose(event("third")).await.unwrap();
    c.shutdown().await;
}
