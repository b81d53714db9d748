//! Coordinator actuation with real agents on `FakeRuntime`: spread placement and workload
//! status, rescheduling after a node is Down, deletion, duplicates after a partition, report
//! authorization, unplaceable workloads.

mod coordinator_common;

use std::time::Duration;

use cloudless::control::{ControlError, ReplicaReport};
use cloudless::runtime::fake::Call;
use cloudless_core::ids::{Generation, NodeId, ReplicaId, WorkloadId};
use cloudless_core::node::Liveness;
use cloudless_core::quantity::Cpu;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::runtime::{ContainerId, ContainerState, Runtime};
use cloudless_core::state::{ClusterState, Command};
use cloudless_core::workload::{ConditionKind, SpreadConstraint, TopologyKey, WorkloadSpec};
use coordinator_common::*;

fn spread_spec(replicas: u32) -> WorkloadSpec {
    let mut spec = WorkloadSpec::new("img");
    spec.replicas = replicas;
    spec.placement.spread = Some(SpreadConstraint {
        topology_key: TopologyKey::Zone,
        max_skew: 1,
    });
    spec
}

fn ready_count(state: &ClusterState, w: WorkloadId) -> u32 {
    state.workloads.get(&w).map_or(0, |w| w.status.ready)
}

fn condition(state: &ClusterState, w: WorkloadId, kind: ConditionKind) -> Option<(bool, String)> {
    state.workloads.get(&w).and_then(|w| {
        w.status
            .conditions
            .iter()
            .find(|c| c.kind == kind)
            .map(|c| (c.status, c.message.clone()))
    })
}

async fn container_state(c: &Cluster, node: NodeId, replica: u64) -> Option<ContainerState> {
    c.runtime(node)
        .status(&ContainerId::for_replica(ReplicaId(replica), 0))
        .await
        .ok()
        .map(|s| s.state)
}

fn starts(c: &Cluster, node: NodeId) -> usize {
    c.runtime(node)
        .calls()
        .iter()
        .filter(|call| matches!(call, Call::Start(_)))
        .count()
}

#[tokio::test(start_paused = true)]
async fn a_spread_workload_lands_one_per_zone_and_reaches_ready_three() {
    let c = Cluster::start(&[(11, "a"), (12, "b"), (13, "c")]).await;
    c.eventually("all Ready", Duration::from_secs(3), |s| all_ready(s, 3))
        .await;
    let w = c.create("web", spread_spec(3)).await;
    c.eventually("ready=3", Duration::from_secs(10), |s| {
        ready_count(s, w) == 3
    })
    .await;
    let state = c.state().await;
    let mut nodes: Vec<NodeId> = live_replicas(&state, w).iter().map(|r| r.1).collect();
    nodes.sort();
    assert_eq!(nodes, vec![NodeId(11), NodeId(12), NodeId(13)]);
    for (id, node, _) in live_replicas(&state, w) {
        assert_eq!(
            container_state(&c, node, id).await,
            Some(ContainerState::Running)
        );
    }
    c.eventually("status current", Duration::from_secs(3), |s| {
        let st = &s.workloads[&w].status;
        st.observed_generation == Generation(1)
            && st.available == 3
            && condition(s, w, ConditionKind::Available).is_some_and(|(ok, _)| ok)
            && condition(s, w, ConditionKind::Unschedulable).is_some_and(|(bad, _)| !bad)
    })
    .await;
    let state = c.state().await;
    assert!(
        state
            .events
            .iter()
            .any(|e| e.reason == "ReplicasAssigned" && e.subject == "workload/default/web")
    );
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_replica_on_a_down_node_is_rescheduled_elsewhere() {
    let c = Cluster::start(&[(11, "a"), (12, "b"), (13, "c")]).await;
    c.eventually("all Ready", Duration::from_secs(3), |s| all_ready(s, 3))
        .await;
    let w = c.create("api", WorkloadSpec::new("img")).await;
    c.eventually("ready=1", Duration::from_secs(10), |s| {
        ready_count(s, w) == 1
    })
    .await;
    let (first, lost_node, _) = live_replicas(&*c.state().await, w)[0];
    c.partition(lost_node, true);
    let took = c
        .eventually(
            "replacement ready elsewhere",
            Duration::from_secs(10),
            |s| {
                s.nodes[&lost_node].liveness == Liveness::Down
                    && s.replicas_of(w)
                        .any(|r| r.node != lost_node && r.phase == ReplicaPhase::Running && r.ready)
            },
        )
        .await;
    assert!(took <= Duration::from_secs(5), "replacement took {took:?}");
    let state = c.state().await;
    let replacement = state
        .replicas_of(w)
        .find(|r| r.node != lost_node)
        .expect("replacement");
    assert_ne!(replacement.id.get(), first);
    assert_eq!(
        container_state(&c, replacement.node, replacement.id.get()).await,
        Some(ContainerState::Running)
    );
    // The copy on the silent node is kept in the ledger (its node may come back).
    assert!(state.replicas.contains_key(&ReplicaId(first)));
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn deleting_a_workload_stops_its_replicas_and_empties_the_ledger() {
    let c = Cluster::start(&[(11, "a"), (12, "b")]).await;
    c.eventually("all Ready", Duration::from_secs(3), |s| all_ready(s, 2))
        .await;
    let w = c.create("web", spread_spec(2)).await;
    c.eventually("ready=2", Duration::from_secs(10), |s| {
        ready_count(s, w) == 2
    })
    .await;
    let placed = live_replicas(&*c.state().await, w);
    c.propose(Command::DeleteWorkload { workload: w })
        .await
        .expect("deleted");
    c.eventually("ledger empty", Duration::from_secs(15), |s| {
        s.replicas.is_empty() && s.reserved.values().all(|r| *r == Default::default())
    })
    .await;
    for (id, node, _) in placed {
        let st = container_state(&c, node, id).await;
        assert!(
            !matches!(st, Some(ContainerState::Running)),
            "replica {id} on {node} still {st:?}"
        );
        assert!(
            c.runtime(node)
                .calls()
                .iter()
                .any(|call| matches!(call, Call::Stop(..)))
        );
    }
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn after_a_partition_heals_the_duplicate_is_stopped_and_the_older_copy_kept() {
    let c = Cluster::start(&[(11, "a"), (12, "b")]).await;
    c.eventually("all Ready", Duration::from_secs(3), |s| all_ready(s, 2))
        .await;
    let w = c.create("db", WorkloadSpec::new("img")).await;
    c.eventually("ready=1", Duration::from_secs(10), |s| {
        ready_count(s, w) == 1
    })
    .await;
    let (original, home, _) = live_replicas(&*c.state().await, w)[0];
    let other = if home == NodeId(11) {
        NodeId(12)
    } else {
        NodeId(11)
    };
    c.partition(home, true);
    c.eventually("replacement ready", Duration::from_secs(10), |s| {
        s.replicas_of(w)
            .any(|r| r.node == other && r.phase == ReplicaPhase::Running && r.ready)
    })
    .await;
    let replacement = c
        .state()
        .await
        .replicas_of(w)
        .find(|r| r.node == other)
        .map(|r| r.id.get())
        .expect("replacement");
    // The partitioned agent kept its copy running all along.
    assert_eq!(
        container_state(&c, home, original).await,
        Some(ContainerState::Running)
    );
    c.partition(home, false);
    c.eventually(
        "one live copy, the original",
        Duration::from_secs(20),
        |s| {
            let live = live_replicas(s, w);
            live.len() == 1
                && live[0].0 == original
                && !s.replicas.contains_key(&ReplicaId(replacement))
        },
    )
    .await;
    assert_eq!(
        container_state(&c, home, original).await,
        Some(ContainerState::Running)
    );
    assert_ne!(
        container_state(&c, other, replacement).await,
        Some(ContainerState::Running)
    );
    // The surviving copy was never restarted (one start: the first one).
    assert_eq!(starts(&c, home), 1);
    assert!(
        !c.runtime(home)
            .calls()
            .iter()
            .any(|call| matches!(call, Call::Stop(..)))
    );
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reports_about_another_nodes_replica_are_rejected() {
    let c = Cluster::start(&[(11, "a"), (12, "b")]).await;
    c.eventually("all Ready", Duration::from_secs(3), |s| all_ready(s, 2))
        .await;
    let w = c.create("web", spread_spec(2)).await;
    c.eventually("ready=2", Duration::from_secs(10), |s| {
        ready_count(s, w) == 2
    })
    .await;
    let state = c.state().await;
    let on_12 = state
        .replicas_of(w)
        .find(|r| r.node == NodeId(12))
        .expect("replica on 12")
        .clone();
    let forged = ReplicaReport {
        replica: on_12.id,
        workload: w,
        generation: Generation(1),
        phase: ReplicaPhase::Failed,
        ready: false,
        restarts: 9,
        address: None,
        message: "forged".into(),
    };
    let cp = c.coordinator.control_plane();
    assert!(matches!(
        cp.report(NodeId(11), vec![forged.clone()]).await,
        Err(ControlError::PermissionDenied(_))
    ));
    // A replica the ledger does not hold is ignored.
    let unknown = ReplicaReport {
        replica: ReplicaId(999),
        ..forged
    };
    assert_eq!(cp.report(NodeId(11), vec![unknown]).await, Ok(()));
    let after = c.state().await;
    assert_eq!(after.replicas[&on_12.id].phase, on_12.phase);
    assert_eq!(after.replicas[&on_12.id].restarts, on_12.restarts);
    c.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn an_unplaceable_workload_says_why() {
    let c = Cluster::start(&[(11, "a")]).await;
    c.eventually("Ready", Duration::from_secs(3), |s| all_ready(s, 1))
        .await;
    let mut spec = WorkloadSpec::new("img");
    spec.resources.requests.cpu = Cpu::parse("64").expect("cpu");
    let w = c.create("huge", spec).await;
    c.eventually("Unschedulable with a reason", Duration::from_secs(5), |s| {
        condition(s, w, ConditionKind::Unschedulable)
            .is_some_and(|(bad, why)| bad && why.contains("0/1 nodes fit"))
    })
    .await;
    let state = c.state().await;
    let failed: Vec<_> = state
        .events
        .iter()
        .filter(|e| e.reason == "FailedScheduling")
        .collect();
    assert_eq!(failed.len(), 1, "one event, not one per round");
    assert_eq!(failed[0].subject, "workload/default/huge");
    assert!(state.replicas.is_empty());
    c.shutdown().await;
}
