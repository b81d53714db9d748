//! Coordinator membership: registration by first heartbeat, inventory commits, the failure
//! detector end to end (Suspect, Down within 2 s, throttled mass eviction, fresh grace after a
//! leader change), NotLeader from followers, refused identities.

mod coordinator_common;

use std::collections::BTreeMap;
use std::time::Duration;

use cloudless::control::ControlError;
use cloudless::coordinator::CoordinatorConfig;
use cloudless_core::consensus::{Consensus, WatchFilter};
use cloudless_core::ids::{NodeId, Revision};
use cloudless_core::node::{Liveness, NodeReport, Platform};
use cloudless_core::resources::Resources;
use cloudless_core::state::{Command, ObjectKind};
use coordinator_common::*;
use futures::StreamExt;
use tokio::time::Instant;

fn liveness(state: &cloudless_core::state::ClusterState, node: u64) -> Option<Liveness> {
    state.nodes.get(&NodeId(node)).map(|n| n.liveness)
}

fn report(cpu: u64, label: &str) -> NodeReport {
    let r = Resources {
        cpu_millis: cpu,
        memory_mib: 1024,
        ..Resources::ZERO
    };
    NodeReport {
        platform: Platform::linux_amd64(),
        region: "eu".into(),
        zone: "z".into(),
        labels: BTreeMap::from([("k".to_owned(), label.to_owned())]),
        capacity: r,
        allocatable: r,
        power: Default::default(),
        reliability: Default::default(),
    }
}

/// Node changes committed for `key` between `from` and now.
async fn node_changes(c: &Cluster, key: &str, from: Revision) -> usize {
    let mut stream = c
        .mem
        .watch(WatchFilter::kind(ObjectKind::Node), from)
        .await
        .expect("watch");
    let mut n = 0;
    while let Some(Some(item)) = stream.next().now_or_never_compat() {
        if item.expect("change").key == key {
            n += 1;
        }
    }
    n
}

trait NowOrNever: futures::Future + Sized {
    fn now_or_never_compat(self) -> Option<Self::Output> {
        futures::FutureExt::now_or_never(self)
    }
}
impl<F: futures::Future> NowOrNever for F {}

#[tokio::test(start_paused = true)]
async fn first_heartbeat_registers_the_node_with_its_inventory() {
    let c = Cluster::start(&[(11, "home-a"), (12, "home-b")]).await;
    c.eventually("both nodes Ready", Duration::from_secs(3), |s| {
        all_ready(s, 2)
    })
    .await;
    let state = c.state().await;
    let n = &state.nodes[&NodeId(11)];
    assert_eq!(n.name.as_str(), "node-11");
    assert_eq!(n.report.zone, "home-a");
    assert_eq!(n.report.region, "eu");
    assert_eq!(n.report.capacity.cpu_millis, 4000);
    assert_eq!(n.report.capacity.memory_mib, 8192);
    assert_eq!(n.report.capacity.storage_gib, 64);
    assert_eq!(n.report.capacity.egress_mbps, 100);
    let registered: Vec<_> = state
        .events
        .iter()
        .filter(|e| e.reason == "NodeRegistered")
        .map(|e| e.subject.clone())
        .collect();
    assert_eq!(registered, vec!["node/node-11", "node/node-12"]);
    let ready_events = state
        .events
        .iter()
        .filter(|e| e.reason == "NodeReady")
        .count();
    assert_eq!(ready_events, 2);

    // Ten more seconds of heartbeats (uptime grows, inventory does not): no node commits.
    let from = Revision(state.revision.0 + 1);
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(node_changes(&c, "n11", from).await, 0);
    assert!(
        c.agents[&NodeId(11)]
            .handle
            .as_ref()
            .expect("agent")
            .snapshot()
            .heartbeats_acked
            >= 20
    );
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn inventory_is_committed_only_when_it_changes_and_the_ack_carries_the_protocol() {
    let c = Cluster::start(&[]).await;
    let cp = c.coordinator.control_plane();
    let ack = cp
        .heartbeat(NodeId(40), &report(1000, "a"))
        .await
        .expect("ack");
    assert_eq!(ack.liveness, Liveness::Ready);
    assert_eq!(ack.interval, Duration::from_millis(500));
    assert_eq!(ack.leader, Some(LEADER));
    let from = Revision(c.state().await.revision.0 + 1);
    for _ in 0..3 {
        cp.heartbeat(NodeId(40), &report(1000, "a"))
            .await
            .expect("ack");
    }
    // Liveness Joining -> Ready is committed by the detector's next tick; no report commits.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(node_changes(&c, "n40", from).await, 1);
    assert_eq!(c.state().await.nodes[&NodeId(40)].liveness, Liveness::Ready);
    let from = Revision(c.state().await.revision.0 + 1);
    cp.heartbeat(NodeId(40), &report(2000, "b"))
        .await
        .expect("ack");
    assert_eq!(node_changes(&c, "n40", from).await, 1);
    let state = c.state().await;
    assert_eq!(state.nodes[&NodeId(40)].report.capacity.cpu_millis, 2000);
    assert_eq!(state.nodes[&NodeId(40)].report.labels["k"], "b");
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_silent_node_is_suspect_then_down_within_two_seconds() {
    let c = Cluster::start(&[(11, "a"), (12, "b"), (13, "c")]).await;
    c.eventually("all Ready", Duration::from_secs(3), |s| all_ready(s, 3))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.partition(NodeId(13), true);
    let suspect = c
        .eventually("n13 Suspect", Duration::from_secs(3), |s| {
            liveness(s, 13) == Some(Liveness::Suspect)
        })
        .await;
    let down = c
        .eventually("n13 Down", Duration::from_secs(3), |s| {
            liveness(s, 13) == Some(Liveness::Down)
        })
        .await;
    assert!(
        suspect <= Duration::from_millis(1100),
        "suspect after {suspect:?}"
    );
    assert!(down <= Duration::from_secs(2), "down after {down:?}");
    let state = c.state().await;
    assert_eq!(liveness(&state, 11), Some(Liveness::Ready));
    assert_eq!(liveness(&state, 12), Some(Liveness::Ready));
    let reasons: Vec<_> = state
        .events
        .iter()
        .filter(|e| e.subject == "node/node-13")
        .map(|e| e.reason.as_str())
        .collect();
    assert_eq!(
        reasons,
        vec!["NodeRegistered", "NodeReady", "NodeSuspect", "NodeDown"]
    );
    // Back: Ready again.
    c.partition(NodeId(13), false);
    c.eventually("n13 Ready again", Duration::from_secs(5), |s| {
        liveness(s, 13) == Some(Liveness::Ready)
    })
    .await;
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn half_the_nodes_dropping_at_once_is_throttled() {
    let nodes: Vec<(u64, &str)> = (11..=16).map(|i| (i, "a")).collect();
    let c = Cluster::start(&nodes).await;
    c.eventually("all Ready", Duration::from_secs(3), |s| all_ready(s, 6))
        .await;
    for n in 14..=16 {
        c.partition(NodeId(n), true);
    }
    let start = Instant::now();
    c.eventually("three Suspect", Duration::from_secs(2), |s| {
        (14..=16).all(|n| liveness(s, n) == Some(Liveness::Suspect))
    })
    .await;
    // Well past the normal 2 s: still nobody Down.
    tokio::time::sleep_until(start + Duration::from_secs(5)).await;
    let state = c.state().await;
    assert!((14..=16).all(|n| liveness(&state, n) == Some(Liveness::Suspect)));
    assert!(state.events.iter().any(|e| e.reason == "EvictionThrottled"));
    // One per throttled_down_interval (10 s).
    tokio::time::sleep_until(start + Duration::from_secs(12)).await;
    let downs = |s: &cloudless_core::state::ClusterState| {
        (14..=16)
            .filter(|n| liveness(s, *n) == Some(Liveness::Down))
            .count()
    };
    assert_eq!(downs(&*c.state().await), 1);
    // The blip ends: everyone is Ready again and the throttle ends.
    for n in 14..=16 {
        c.partition(NodeId(n), false);
    }
    c.eventually("all Ready again", Duration::from_secs(5), |s| {
        all_ready(s, 6)
    })
    .await;
    c.eventually("throttle ended", Duration::from_secs(2), |s| {
        s.events.iter().any(|e| e.reason == "EvictionThrottleEnded")
    })
    .await;
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_follower_answers_not_leader_with_the_hint() {
    let c = Cluster::start(&[(11, "a")]).await;
    let follower = start_coordinator(&c.mem, FOLLOWER, &c.leader_cell(), test_config()).await;
    assert!(c.coordinator.is_leader());
    assert!(!follower.is_leader());
    let cp = follower.control_plane();
    let not_leader = ControlError::NotLeader {
        leader: Some(LEADER),
    };
    assert_eq!(
        cp.heartbeat(NodeId(11), &report(1000, "a")).await,
        Err(not_leader.clone())
    );
    assert_eq!(cp.assignments(NodeId(11)).await, Err(not_leader.clone()));
    assert_eq!(cp.report(NodeId(11), vec![]).await, Err(not_leader));
    follower.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_new_leader_gives_every_node_a_fresh_grace_window() {
    let mut c = Cluster::start(&[(11, "a"), (12, "b")]).await;
    let grace = Duration::from_secs(4);
    let config = CoordinatorConfig {
        takeover_grace: grace,
        ..test_config()
    };
    let follower = start_coordinator(&c.mem, FOLLOWER, &c.leader_cell(), config).await;
    c.eventually("all Ready", Duration::from_secs(3), |s| all_ready(s, 2))
        .await;
    c.partition(NodeId(12), true);
    let start = Instant::now();
    c.eventually("n12 Suspect", Duration::from_secs(2), |s| {
        liveness(s, 12) == Some(Liveness::Suspect)
    })
    .await;
    // Leader change 1.2 s into the silence; the agents follow the new leader.
    tokio::time::sleep_until(start + Duration::from_millis(1200)).await;
    c.set_leader(FOLLOWER);
    for a in c.agents.values_mut() {
        a.link.point_at(follower.control_plane());
    }
    c.eventually("follower leads", Duration::from_secs(1), |_| {
        follower.is_leader()
    })
    .await;
    let took_over = start.elapsed();
    // The old leader would have declared it Down at ~1.9 s; the new one starts afresh.
    tokio::time::sleep_until(start + Duration::from_millis(2500)).await;
    let state = c.state().await;
    assert_eq!(liveness(&state, 12), Some(Liveness::Suspect));
    assert_eq!(liveness(&state, 11), Some(Liveness::Ready));
    let down = c
        .eventually("n12 Down", Duration::from_secs(8), |s| {
            liveness(s, 12) == Some(Liveness::Down)
        })
        .await
        + Duration::from_millis(2500);
    // Not before the takeover grace, and soon after it.
    assert!(
        down >= took_over + grace && down <= took_over + grace + Duration::from_millis(500),
        "down at {down:?}, takeover at {took_over:?}"
    );
    assert_eq!(liveness(&*c.state().await, 11), Some(Liveness::Ready));
    assert!(!c.coordinator.is_leader());
    follower.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn revoked_and_removed_nodes_are_refused() {
    let c = Cluster::start(&[]).await;
    let cp = c.coordinator.control_plane();
    cp.heartbeat(NodeId(40), &report(1000, "a"))
        .await
        .expect("ack");
    cp.heartbeat(NodeId(41), &report(1000, "a"))
        .await
        .expect("ack");
    c.propose(Command::RevokeNode {
        node: NodeId(40),
        reason: "lost device".into(),
    })
    .await
    .expect("revoked");
    c.propose(Command::RemoveNode { node: NodeId(41) })
        .await
        .expect("removed");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(
        cp.heartbeat(NodeId(40), &report(1000, "a")).await,
        Err(ControlError::PermissionDenied(_))
    ));
    assert!(matches!(
        cp.assignments(NodeId(40)).await,
        Err(ControlError::PermissionDenied(_))
    ));
    assert!(matches!(
        cp.heartbeat(NodeId(41), &report(1000, "a")).await,
        Err(ControlError::PermissionDenied(_))
    ));
    let state = c.state().await;
    assert!(!state.nodes.contains_key(&NodeId(40)));
    assert!(!state.nodes.contains_key(&NodeId(41)));
    let security: Vec<_> = state
        .events
        .iter()
        .filter(|e| e.category == cloudless_core::event::EventCategory::Security)
        .map(|e| e.reason.as_str())
        .collect();
    assert_eq!(security, vec!["NodeRevoked"]);
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn join_tokens_expired_past_the_retention_are_pruned() {
    use cloudless_core::clock::{Clock, SystemClock};
    use cloudless_core::state::JoinTokenRecord;
    let c = Cluster::start(&[]).await;
    let now = SystemClock.now_ms();
    let token = |id: &str, expires_at_ms: u64| JoinTokenRecord {
        id: id.into(),
        role: "agent".into(),
        secret_sha256: "ab".repeat(32),
        expires_at_ms,
        max_uses: None,
        uses: 0,
        revoked: false,
        created_at_ms: now - 10_000_000,
    };
    // Expired 2 h ago (past the 1 h retention), expired 1 min ago, still valid.
    for t in [
        token("old", now - 7_200_000),
        token("recent", now - 60_000),
        token("valid", now + 60_000),
    ] {
        c.propose(Command::CreateJoinToken { token: t })
            .await
            .expect("token");
    }
    c.eventually("old token pruned", Duration::from_secs(3), |s| {
        !s.join_tokens.contains_key("old")
    })
    .await;
    let state = c.state().await;
    assert!(state.join_tokens.contains_key("recent"));
    assert!(state.join_tokens.contains_key("valid"));
    assert!(state.events.iter().any(|e| e.reason == "JoinTokensPruned"));
    c.shutdown().await;
}
