//! Public API, cluster and events over real TLS: join tokens create/list/revoke, cluster info,
//! watching events from a revision, forwarding from a follower to the leader, and Unavailable
//! with a leader hint.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_common;

use std::time::Duration;

use api_common::{TestApi, peers, start_server, workload_manifest};
use cloudless::Client;
use cloudless::api::{self, pb};
use cloudless_net::identity::JoinToken;
use futures::StreamExt;
use tonic::Code;

/// How long a streamed change may take to arrive: generous for a loaded machine.
const STEP: Duration = Duration::from_secs(30);

#[tokio::test]
async fn join_tokens_round_trip() {
    let api = TestApi::start().await;
    let c = api.admin_client();
    let created = c
        .create_join_token("agent", Duration::from_secs(600), Some(3))
        .await
        .expect("create");
    let token = JoinToken::parse(&created.token).expect("a well-formed token");
    let record = created.record.expect("record");
    assert_eq!(token.id(), record.id);
    assert_eq!(token.ca_digest(), api.ca.digest(), "the token pins this CA");
    assert_eq!((record.role.as_str(), record.max_uses), ("agent", 3));

    let listed = c.list_join_tokens().await.expect("list");
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, record.id);
    assert!(!listed[0].revoked);

    c.revoke_join_token(&record.id).await.expect("revoke");
    assert!(c.list_join_tokens().await.expect("list")[0].revoked);
    assert_eq!(
        c.revoke_join_token("nosuchid")
            .await
            .expect_err("unknown")
            .code(),
        Code::NotFound
    );
    let e = c
        .create_join_token("root", Duration::from_secs(60), None)
        .await
        .expect_err("bad role");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.field_paths(), ["role"]);

    // A repeated idempotency key cannot hand out a secret that was never stored.
    let mut raw = pb::cluster_client::ClusterClient::new(c.channel().expect("channel"));
    let req = pb::CreateJoinTokenRequest {
        role: "agent".into(),
        ttl_seconds: 60,
        max_uses: 0,
        idempotency_key: "token-once".into(),
    };
    raw.create_join_token(req.clone()).await.expect("first");
    let e = raw.create_join_token(req).await.expect_err("repeat");
    assert_eq!(e.code(), Code::AlreadyExists);
    assert_eq!(c.list_join_tokens().await.expect("list").len(), 2);
}

#[tokio::test]
async fn watch_streams_a_created_workloads_event_from_a_revision() {
    let api = TestApi::start().await;
    let c = api.admin_client();
    let info = c.info().await.expect("info");
    assert_eq!(info.cluster, api_common::CLUSTER);
    assert_eq!((info.member, info.leader), (1, 1));
    let from = info.revision + 1;

    let mut events = c.watch(from, &["event"]).await.expect("watch");
    let created = c
        .create_workload(&workload_manifest("web", 1))
        .await
        .expect("create");
    let change = tokio::time::timeout(STEP, async {
        loop {
            let c = events.next().await.expect("stream open").expect("change");
            let e = c.event.clone().expect("an event change carries the event");
            if e.reason == "WorkloadCreated" {
                return c;
            }
        }
    })
    .await
    .expect("the event arrives");
    assert_eq!(change.kind, "event");
    assert!(change.revision >= from);
    let event = change.event.expect("event");
    assert_eq!(event.subject, "workload/demo/web");
    assert!(
        event.message.contains(&format!("w{}", created.id)),
        "{event:?}"
    );

    // From an older revision the same change is replayed.
    let mut replay = c.watch(from, &["workload"]).await.expect("watch");
    let first = tokio::time::timeout(STEP, replay.next())
        .await
        .expect("replayed")
        .expect("open")
        .expect("change");
    assert_eq!(first.kind, "workload");
    assert!(first.object_json.contains("\"web\""));

    let e = c.watch(0, &["nonsense"]).await.expect_err("bad kind");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.field_paths(), ["kinds[0]"]);
}

#[tokio::test]
async fn a_follower_forwards_to_the_leader_or_answers_with_the_hint() {
    let api = TestApi::start().await;
    let leader_addr = api.addr();

    // Member 2 knows where the leader's API is: it forwards.
    let follower = start_server(&api.ca, api.member(2), 2, None).await;
    follower.set_peers(peers(&[(1, leader_addr.clone())]));
    let via_follower =
        Client::new([follower.local_addr().to_string()], &api.admin).expect("client");
    let w = via_follower
        .create_workload(&workload_manifest("web", 2))
        .await
        .expect("create through the follower");
    assert_eq!(w.replicas, 2);
    assert_eq!(
        via_follower.list_workloads("").await.expect("list").len(),
        1
    );
    assert_eq!(
        via_follower.current_endpoint(),
        follower.local_addr().to_string(),
        "forwarded, not redirected"
    );
    let info = via_follower.info().await.expect("info");
    assert_eq!((info.member, info.leader), (2, 1));
    assert_eq!(info.leader_address, leader_addr);
    // Errors come back through the forward unchanged.
    assert_eq!(
        via_follower
            .get_workload("demo", "nope")
            .await
            .expect_err("not found")
            .code(),
        Code::NotFound
    );

    // Member 3 does not know the leader's address: Unavailable with the leader's id.
    let lost = start_server(&api.ca, api.member(3), 3, None).await;
    let lost_client = Client::new([lost.local_addr().to_string()], &api.admin).expect("client");
    let mut raw = pb::workloads_client::WorkloadsClient::new(lost_client.channel().expect("ch"));
    let e = raw
        .scale(pb::ScaleWorkloadRequest {
            workload: Some(pb::WorkloadRef {
                namespace: "demo".into(),
                name: "web".into(),
            }),
            replicas: 3,
            idempotency_key: String::new(),
        })
        .await
        .expect_err("not the leader");
    assert_eq!(e.code(), Code::Unavailable);
    assert_eq!(
        e.metadata()
            .get(api::LEADER_KEY)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );

    // Told of the leader's address, it names it in the hint when it cannot forward: a
    // forwarded call that lands on a non-leader is never forwarded again.
    lost.set_peers(peers(&[(1, leader_addr.clone())]));
    let coordinator = api_common::creds(&api.ca, cloudless_core::transport::Role::Coordinator, 2);
    let from_peer = Client::new([lost.local_addr().to_string()], &coordinator).expect("client");
    let mut raw = pb::workloads_client::WorkloadsClient::new(from_peer.channel().expect("ch"));
    let mut req = tonic::Request::new(pb::ListWorkloadsRequest::default());
    req.metadata_mut().insert(
        api::FORWARDED_FOR_KEY,
        format!("spiffe://{}/admin/0", api_common::CLUSTER)
            .parse()
            .expect("metadata"),
    );
    let e = raw.list(req).await.expect_err("no second hop");
    assert_eq!(e.code(), Code::Unavailable);
    assert_eq!(
        e.metadata()
            .get(api::LEADER_ADDR_KEY)
            .and_then(|v| v.to_str().ok()),
        Some(leader_addr.as_str())
    );

    // A client given a dead-end member first moves on to the next endpoint.
    let lost2 = start_server(&api.ca, api.member(4), 4, None).await;
    let rotating = Client::new(
        [lost2.local_addr().to_string(), leader_addr.clone()],
        &api.admin,
    )
    .expect("client");
    rotating
        .scale("demo", "web", 4)
        .await
        .expect("scale via rotation");
    assert_eq!(rotating.current_endpoint(), leader_addr);
}
