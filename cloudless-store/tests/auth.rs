//! Raft traffic is served only to coordinators of our own cluster.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod common;

use std::sync::Arc;
use std::time::Duration;

use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role, Transport};
use cloudless_net::mem::addr_of;
use cloudless_net::{Router, RpcConfig, RpcEndpoint, RpcError, StatusCode};
use cloudless_store::{FORMAT_CBOR, VOTE, encode, pb};
use common::{Cluster, identity};
use openraft::Vote;
use openraft::raft::VoteRequest;

/// Calls `Vote` on member 1 as `who` with `body`; returns the status code.
async fn vote_as(c: &Cluster, who: PeerIdentity, body: Vec<u8>) -> StatusCode {
    let transport = Arc::new(c.net.endpoint(who));
    transport.connect(&addr_of(NodeId(1))).await.unwrap();
    let endpoint = RpcEndpoint::start(transport, Router::new(), RpcConfig::default()).unwrap();
    let msg = pb::RaftMessage {
        format: FORMAT_CBOR,
        body: body.into(),
    };
    match endpoint
        .client()
        .call(NodeId(1), &VOTE, msg, Duration::from_secs(30))
        .await
    {
        Err(RpcError::Status { code, .. }) => code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_coordinators_of_the_cluster_may_send_raft_traffic() {
    let c = Cluster::start(1, 21).await;
    let term = c.member(1).raft().metrics().borrow().current_term;
    // A vote request for a much higher term would depose the leader if it were served.
    let request = VoteRequest::<u64>::new(Vote::new(term + 100, 9), None);
    let body = encode(&request).unwrap();

    let agent = identity(9, Role::Agent);
    assert_eq!(
        vote_as(&c, agent, body.clone()).await,
        StatusCode::PermissionDenied
    );
    let admin = identity(10, Role::Admin);
    assert_eq!(
        vote_as(&c, admin, body.clone()).await,
        StatusCode::PermissionDenied
    );
    let foreign = PeerIdentity {
        cluster: "another".into(),
        role: Role::Coordinator,
        node: NodeId(11),
    };
    assert_eq!(
        vote_as(&c, foreign, body).await,
        StatusCode::PermissionDenied
    );
    // Our own coordinator with a malformed body is refused, not misread.
    let own = identity(12, Role::Coordinator);
    assert_eq!(
        vote_as(&c, own, b"\xff\xfe".to_vec()).await,
        StatusCode::InvalidArgument
    );
    let after = c.member(1).raft().metrics().borrow().current_term;
    assert_eq!(after, term, "a refused request changed the term");
}
