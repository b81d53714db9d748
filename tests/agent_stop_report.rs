//! A replica the coordinator stops is finished (`Succeeded`, reservation released) as soon as
//! its agent has removed the container and said so (`ControlPlane::report_stopped`), not after
//! the coordinator's stop grace (12 s by default); and a stop report the coordinator did not
//! ask for never makes a replica terminal.
//!
//! In-process: `MemConsensus`, one coordinator with the default configuration, real agents on
//! `FakeRuntime`, tokio's paused clock (all durations below are virtual time).

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod coordinator_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use cloudless::agent::{
    Agent, AgentConfig, AgentDeps, AgentHandle, FixedResourceProbe, HostResources,
};
use cloudless::control::{
    AssignmentSet, ControlError, ControlPlane, HeartbeatAck, ReplicaReport, StoppedReplica,
};
use cloudless::coordinator::{CoordinatorConfig, CoordinatorHandle};
use cloudless::runtime::FakeRuntime;
use cloudless_core::clock::{Clock, SystemClock};
use cloudless_core::consensus::Consensus;
use cloudless_core::ids::{NodeId, ReplicaId, Revision, WorkloadId};
use cloudless_core::manifest::{Format, ManifestSpec, parse_str};
use cloudless_core::node::NodeReport;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::state::{ClusterState, Command, CommandEnvelope, CommandResult};
use cloudless_core::testing::consensus::MemConsensus;
use cloudless_core::workload::WorkloadSpec;
use coordinator_common::{LEADER, all_ready, live_replicas, start_coordinator};
use tokio::time::Instant;

/// Forwards everything but stop reports, which it drops: an agent whose reports never arrive
/// (or a coordinator that predates them), so the coordinator's stop grace decides.
struct NoStopReports(Arc<dyn ControlPlane>);

#[async_trait]
impl ControlPlane for NoStopReports {
    async fn heartbeat(
        &self,
        node: NodeId,
        report: &NodeReport,
    ) -> Result<HeartbeatAck, ControlError> {
        self.0.heartbeat(node, report).await
    }
    async fn assignments(&self, node: NodeId) -> Result<AssignmentSet, ControlError> {
        self.0.assignments(node).await
    }
    async fn report(&self, node: NodeId, reports: Vec<ReplicaReport>) -> Result<(), ControlError> {
        self.0.report(node, reports).await
    }
}

struct Harness {
    mem: MemConsensus,
    coordinator: CoordinatorHandle,
    agents: Vec<(AgentHandle, FakeRuntime)>,
    _dir: tempfile::TempDir,
}

/// One coordinator (default configuration: 12 s stop grace) and agents `11..11+n`, each with
/// `cpu_millis` of CPU; agents send stop reports if `stop_reports`.
async fn start(n: u64, cpu_millis: u64, stop_reports: bool) -> Harness {
    let config = CoordinatorConfig::default();
    assert_eq!(
        config.stop_grace,
        Duration::from_secs(12),
        "the tests tell a stop report from the stop grace"
    );
    let mem = MemConsensus::new();
    let leader = Arc::new(Mutex::new(LEADER));
    let coordinator = start_coordinator(&mem, LEADER, &leader, config).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut agents = Vec::new();
    for id in 11..11 + n {
        let runtime = FakeRuntime::new();
        let control: Arc<dyn ControlPlane> = if stop_reports {
            coordinator.control_plane()
        } else {
            Arc::new(NoStopReports(coordinator.control_plane()))
        };
        let mut c = AgentConfig::new(dir.path().join(format!("agent-{id}")));
        c.region = "eu".into();
        c.zone = format!("zone-{id}");
        c.egress_mbps = 100;
        c.stop_grace = Duration::from_secs(1);
        let deps = AgentDeps {
            node: NodeId(id),
            control,
            runtime: Arc::new(runtime.clone()),
            clock: Arc::new(SystemClock),
            resources: Arc::new(FixedResourceProbe(HostResources {
                cpu_millis,
                memory_mib: 8192,
                storage_gib: 64,
                power: None,
            })),
        };
        let handle = Agent::start(c, deps).await.expect("agent starts");
        agents.push((handle, runtime));
    }
    let h = Harness {
        mem,
        coordinator,
        agents,
        _dir: dir,
    };
    let n = usize::try_from(n).unwrap();
    h.eventually("every node Ready", Duration::from_secs(20), |s| {
        all_ready(s, n)
    })
    .await;
    h
}

/// A workload of `replicas` copies of `image`, 1000m CPU each, `min` of them kept available.
fn spec(image: &str, replicas: u32, min: u32) -> WorkloadSpec {
    let manifest = format!(
        "apiVersion: cloudless.dev/v1
kind: Workload
metadata:
  name: web
spec:
  image: {image}
  replicas: {replicas}
  minAvailable: {min}
  resources:
    requests:
      cpu: 1000m
      memory: 256Mi
  rollout:
    maxSurge: 1
"
    );
    match parse_str(&manifest, Format::Yaml)
        .expect("manifest")
        .remove(0)
        .spec
    {
        ManifestSpec::Workload(spec) => spec,
        other => panic!("not a workload: {other:?}"),
    }
}

impl Harness {
    async fn state(&self) -> Arc<ClusterState> {
        self.mem.state().await.expect("state")
    }

    async fn propose(&self, command: Command) -> CommandResult {
        self.mem
            .propose(CommandEnvelope::new(SystemClock.now_ms(), command))
            .await
            .expect("committed")
            .result
    }

    async fn create(&self, spec: WorkloadSpec) -> WorkloadId {
        match self
            .propose(Command::CreateWorkload {
                namespace: "default".into(),
                name: "web".into(),
                labels: Default::default(),
                spec,
            })
            .await
        {
            CommandResult::WorkloadCreated { workload } => workload,
            other => panic!("unexpected {other:?}"),
        }
    }

    /// Waits (virtual time) until `f` holds, failing after `limit`; returns how long it took.
    async fn eventually(
        &self,
        what: &str,
        limit: Duration,
        mut f: impl FnMut(&ClusterState) -> bool,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let state = self.state().await;
            if f(&state) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < limit,
                "timed out after {limit:?} waiting for: {what}\nreplicas: {:?}",
                state
                    .replicas
                    .values()
                    .map(|r| (r.id, r.node, r.phase, r.ready))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn running(&self, w: WorkloadId, n: usize) -> Duration {
        self.eventually(
            &format!("{n} replicas running and ready"),
            Duration::from_secs(30),
            |s| {
                let live = live_replicas(s, w);
                live.len() == n
                    && live.iter().all(|(_, _, ready)| *ready)
                    && s.replicas_of(w)
                        .filter(|r| r.phase == ReplicaPhase::Running)
                        .count()
                        == n
            },
        )
        .await
    }

    async fn containers(&self) -> usize {
        let mut n = 0;
        for (_, rt) in &self.agents {
            n += cloudless_core::runtime::Runtime::list(rt)
                .await
                .expect("list")
                .len();
        }
        n
    }

    async fn shutdown(self) {
        for (a, _) in self.agents {
            a.shutdown().await;
        }
        self.coordinator.shutdown().await;
    }
}

#[tokio::test(start_paused = true)]
async fn scaled_down_replicas_are_finished_by_their_agents_report_well_before_the_stop_grace() {
    let h = start(3, 4000, true).await;
    let w = h.create(spec("web:1", 3, 0)).await;
    h.running(w, 3).await;
    assert_eq!(h.containers().await, 3);
    let before = h.state().await;
    let allocatable: Vec<_> = (11..14)
        .map(|id| before.nodes[&NodeId(id)].report.allocatable)
        .collect();

    let ids: Vec<ReplicaId> = before.replicas_of(w).map(|r| r.id).collect();
    h.propose(Command::ScaleWorkload {
        workload: w,
        replicas: 1,
    })
    .await;
    // Two replicas become Stopping; each is finished (Succeeded, then dropped from the ledger
    // by the reconciler) once its agent reports it gone.
    let took = h
        .eventually(
            "two replicas finished, one Running",
            Duration::from_secs(30),
            |s| {
                let finished = ids
                    .iter()
                    .filter(|id| {
                        s.replicas
                            .get(id)
                            .is_none_or(|r| r.phase == ReplicaPhase::Succeeded)
                    })
                    .count();
                let running = s
                    .replicas_of(w)
                    .filter(|r| r.phase == ReplicaPhase::Running)
                    .count();
                finished == 2 && running == 1
            },
        )
        .await;
    println!("scale 3 -> 1: removed replicas Succeeded after {took:?} (virtual)");
    assert!(
        took < Duration::from_secs(3),
        "finished after {took:?}: the stop grace (12 s) decided, not the agents' reports"
    );
    let after = h.state().await;
    for r in after
        .replicas_of(w)
        .filter(|r| r.phase == ReplicaPhase::Succeeded)
    {
        assert_eq!(r.message, "stopped by its agent");
    }
    // The reservations of the finished replicas are released: only the survivor's node has
    // anything reserved.
    let survivor = after
        .replicas_of(w)
        .find(|r| r.phase == ReplicaPhase::Running)
        .expect("a survivor")
        .node;
    for (i, id) in (11..14).enumerate() {
        let free = after.free_on(NodeId(id)).expect("node");
        if NodeId(id) == survivor {
            assert_eq!(free.cpu_millis, allocatable[i].cpu_millis - 1000);
        } else {
            assert_eq!(free, allocatable[i], "node {id} still holds a reservation");
        }
    }
    assert_eq!(h.containers().await, 1, "the agents removed the containers");
    h.shutdown().await;
}

/// A rolling update on four nodes that hold one replica each: every new replica waits for an
/// old one's reservation to be released.
async fn rollout_time(stop_reports: bool) -> Duration {
    let h = start(4, 1000, stop_reports).await;
    let w = h.create(spec("web:1", 3, 2)).await;
    h.running(w, 3).await;
    h.propose(Command::UpdateWorkload {
        workload: w,
        expected_generation: None,
        spec: spec("web:2", 3, 2),
    })
    .await;
    let took = h
        .eventually("the rollout to finish", Duration::from_secs(120), |s| {
            let Some(wl) = s.workloads.get(&w) else {
                return false;
            };
            let live: Vec<_> = s
                .replicas_of(w)
                .filter(|r| !r.phase.is_terminal())
                .collect();
            live.len() == 3
                && live.iter().all(|r| {
                    r.generation == wl.generation && r.phase == ReplicaPhase::Running && r.ready
                })
        })
        .await;
    h.shutdown().await;
    took
}

#[tokio::test(start_paused = true)]
async fn a_rolling_update_is_not_held_up_by_the_stop_grace_at_every_step() {
    let with_reports = rollout_time(true).await;
    let without = rollout_time(false).await;
    println!(
        "rolling update of 3 on 4 one-replica nodes: {with_reports:?} with stop reports, {without:?} without (virtual)"
    );
    // Without reports each of the three steps waits out the 12 s stop grace.
    assert!(
        without >= Duration::from_secs(24),
        "without stop reports the rollout took only {without:?}: the test does not exercise the stop grace"
    );
    assert!(
        with_reports < Duration::from_secs(10),
        "with stop reports the rollout took {with_reports:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_stop_report_for_a_replica_that_is_not_stopping_changes_nothing() {
    let h = start(1, 4000, false).await;
    let w = h.create(spec("web:1", 2, 0)).await;
    h.running(w, 2).await;
    let state = h.state().await;
    let ids: Vec<ReplicaId> = state.replicas_of(w).map(|r| r.id).collect();
    let control = h.coordinator.control_plane();
    // A report claiming the first replica gone, for the newest set there is, while the
    // coordinator never stopped it (as an agent following a stale or empty set would send).
    control
        .report_stopped(
            NodeId(11),
            vec![StoppedReplica {
                replica: ids[0],
                set_revision: Revision(u64::MAX),
            }],
        )
        .await
        .expect("accepted (and ignored)");
    // Another node may not report this node's replica.
    let forged = control
        .report_stopped(
            NodeId(99),
            vec![StoppedReplica {
                replica: ids[1],
                set_revision: Revision(u64::MAX),
            }],
        )
        .await;
    assert!(
        matches!(forged, Err(ControlError::PermissionDenied(_))),
        "{forged:?}"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = h.state().await;
    for id in &ids {
        let r = &after.replicas[id];
        assert_eq!(r.phase, ReplicaPhase::Running, "{r:?}");
        assert!(r.ready, "{r:?}");
    }

    // Stopping since a revision later than the set the report names: ignored too (the set
    // was built before the stop). The agent here sends no reports of its own, so only the test's
    // reports can finish the replica before the stop grace.
    // Every set built before the scale-down is older than the stop.
    let before_stop = h.state().await.revision;
    h.propose(Command::ScaleWorkload {
        workload: w,
        replicas: 1,
    })
    .await;
    h.eventually("one replica Stopping", Duration::from_secs(5), |s| {
        s.replicas_of(w).any(|r| r.phase == ReplicaPhase::Stopping)
    })
    .await;
    let stopping = h.state().await;
    let victim = stopping
        .replicas_of(w)
        .find(|r| r.phase == ReplicaPhase::Stopping)
        .expect("a Stopping replica")
        .id;
    let outdated = before_stop;
    control
        .report_stopped(
            NodeId(11),
            vec![StoppedReplica {
                replica: victim,
                set_revision: outdated,
            }],
        )
        .await
        .expect("accepted (and ignored)");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        h.state().await.replicas[&victim].phase,
        ReplicaPhase::Stopping,
        "a report naming a set older than the stop finished the replica"
    );
    // A report naming a set built after the stop finishes it at once.
    let current = h.state().await.revision;
    control
        .report_stopped(
            NodeId(11),
            vec![StoppedReplica {
                replica: victim,
                set_revision: current,
            }],
        )
        .await
        .expect("accepted");
    let took = h
        .eventually("the victim Succeeded", Duration::from_secs(20), |s| {
            s.replicas[&victim].phase == ReplicaPhase::Succeeded
        })
        .await;
    assert!(took < Duration::from_secs(1), "finished after {took:?}");
    assert_eq!(
        h.state().await.replicas[&victim].message,
        "stopped by its agent"
    );
    h.shutdown().await;
}

/// Records the stop reports it is given.
#[derive(Default)]
struct Recorder(Mutex<Vec<(NodeId, Vec<StoppedReplica>)>>);

#[async_trait]
impl ControlPlane for Recorder {
    async fn heartbeat(&self, _: NodeId, _: &NodeReport) -> Result<HeartbeatAck, ControlError> {
        Err(ControlError::Unavailable("not in this test".into()))
    }
    async fn assignments(&self, _: NodeId) -> Result<AssignmentSet, ControlError> {
        Err(ControlError::Unavailable("not in this test".into()))
    }
    async fn report(&self, _: NodeId, _: Vec<ReplicaReport>) -> Result<(), ControlError> {
        Ok(())
    }
    async fn report_stopped(
        &self,
        node: NodeId,
        stopped: Vec<StoppedReplica>,
    ) -> Result<(), ControlError> {
        self.0.lock().unwrap().push((node, stopped));
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn stop_reports_cross_the_rpc_layer_for_the_caller_only_and_an_older_coordinator_refuses_them()
 {
    use cloudless::protocol::{
        CoordinatorAddr, RpcControlConfig, RpcControlPlane, register_control,
    };
    use cloudless_core::transport::{PeerIdentity, Role, Transport};
    use cloudless_net::mem::addr_of;
    use cloudless_net::{MemNetwork, Router, RpcConfig, RpcEndpoint};

    let identity = |role, n| PeerIdentity {
        cluster: "lab".into(),
        role,
        node: NodeId(n),
    };
    let net = MemNetwork::new(7);
    let recorder = Arc::new(Recorder::default());
    let serving: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Coordinator, 1)));
    let mut router = Router::new();
    register_control(&mut router, Arc::clone(&recorder) as Arc<dyn ControlPlane>);
    let _serving = RpcEndpoint::start(serving, router, RpcConfig::default()).unwrap();
    // A coordinator of a version without the method: nothing registered.
    let older: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Coordinator, 2)));
    let _older = RpcEndpoint::start(older, Router::new(), RpcConfig::default()).unwrap();

    let agent = |coordinator: u64| {
        let t: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Agent, 10)));
        let ep = RpcEndpoint::start(Arc::clone(&t), Router::new(), RpcConfig::default()).unwrap();
        let cp = RpcControlPlane::new(
            t,
            ep.client(),
            vec![CoordinatorAddr::new(
                NodeId(coordinator),
                addr_of(NodeId(coordinator)),
            )],
            RpcControlConfig {
                call_timeout: Duration::from_millis(500),
                max_redirects: 1,
            },
        )
        .unwrap();
        (ep, cp)
    };
    let stops = vec![
        StoppedReplica {
            replica: ReplicaId(7),
            set_revision: Revision(41),
        },
        StoppedReplica {
            replica: ReplicaId(9),
            set_revision: Revision(u64::MAX),
        },
    ];
    let (_ep, cp) = agent(1);
    cp.report_stopped(NodeId(10), stops.clone()).await.unwrap();
    let other = cp.report_stopped(NodeId(11), stops.clone()).await;
    assert!(
        matches!(other, Err(ControlError::PermissionDenied(_))),
        "{other:?}"
    );
    assert_eq!(
        *recorder.0.lock().unwrap(),
        vec![(NodeId(10), stops.clone())]
    );

    // The older coordinator answers UNIMPLEMENTED: a refusal (not retried), which the agent
    // takes as "leave it to the stop grace".
    let (_ep2, cp2) = agent(2);
    let refused = cp2.report_stopped(NodeId(10), stops).await;
    assert!(
        matches!(refused, Err(ref e) if !e.is_retryable()),
        "{refused:?}"
    );
}

/// Serves the coordinator's answers, except that while `stale` holds a replica, the agent is
/// told an old set without it (as a lagging view after a failover would serve): the ack names
/// revision 1 and the set leaves the replica out.
struct StaleView {
    inner: Arc<dyn ControlPlane>,
    stale: Mutex<Option<ReplicaId>>,
    /// Stop reports the agent sent.
    sent: Mutex<Vec<StoppedReplica>>,
}

impl StaleView {
    fn hidden(&self) -> Option<ReplicaId> {
        *self.stale.lock().unwrap()
    }
}

#[async_trait]
impl ControlPlane for StaleView {
    async fn heartbeat(
        &self,
        node: NodeId,
        report: &NodeReport,
    ) -> Result<HeartbeatAck, ControlError> {
        let mut ack = self.inner.heartbeat(node, report).await?;
        if self.hidden().is_some() {
            ack.assignments_revision = Revision(1);
        }
        Ok(ack)
    }
    async fn assignments(&self, node: NodeId) -> Result<AssignmentSet, ControlError> {
        let mut set = self.inner.assignments(node).await?;
        if let Some(hidden) = self.hidden() {
            set.revision = Revision(1);
            set.replicas.retain(|a| a.replica.id != hidden);
        }
        Ok(set)
    }
    async fn report(&self, node: NodeId, reports: Vec<ReplicaReport>) -> Result<(), ControlError> {
        self.inner.report(node, reports).await
    }
    async fn report_stopped(
        &self,
        node: NodeId,
        stopped: Vec<StoppedReplica>,
    ) -> Result<(), ControlError> {
        self.sent.lock().unwrap().extend(stopped.iter().copied());
        self.inner.report_stopped(node, stopped).await
    }
}

#[tokio::test(start_paused = true)]
async fn an_agent_following_a_stale_set_never_makes_a_running_replica_terminal() {
    let config = CoordinatorConfig::default();
    let mem = MemConsensus::new();
    let leader = Arc::new(Mutex::new(LEADER));
    let coordinator = start_coordinator(&mem, LEADER, &leader, config).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let view = Arc::new(StaleView {
        inner: coordinator.control_plane(),
        stale: Mutex::new(None),
        sent: Mutex::new(Vec::new()),
    });
    let runtime = FakeRuntime::new();
    let mut c = AgentConfig::new(dir.path().join("agent-11"));
    c.stop_grace = Duration::from_secs(1);
    let agent = Agent::start(
        c,
        AgentDeps {
            node: NodeId(11),
            control: Arc::clone(&view) as Arc<dyn ControlPlane>,
            runtime: Arc::new(runtime.clone()),
            clock: Arc::new(SystemClock),
            resources: Arc::new(FixedResourceProbe(HostResources {
                cpu_millis: 4000,
                memory_mib: 8192,
                storage_gib: 64,
                power: None,
            })),
        },
    )
    .await
    .expect("agent starts");
    let h = Harness {
        mem,
        coordinator,
        agents: vec![(agent, runtime)],
        _dir: dir,
    };
    h.eventually("node Ready", Duration::from_secs(20), |s| all_ready(s, 1))
        .await;
    let w = h.create(spec("web:1", 2, 0)).await;
    h.running(w, 2).await;
    let victim = h.state().await.replicas_of(w).map(|r| r.id).next().unwrap();

    // The stale set leaves the victim out: its agent stops the container and reports it gone.
    *view.stale.lock().unwrap() = Some(victim);
    let start = Instant::now();
    while h.containers().await != 1 {
        assert!(start.elapsed() < Duration::from_secs(20), "not stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        *view.sent.lock().unwrap(),
        vec![StoppedReplica {
            replica: victim,
            set_revision: Revision(1),
        }],
        "the agent reported the replica gone"
    );
    let r = &h.state().await.replicas[&victim];
    assert!(
        !r.phase.is_terminal() && r.phase != ReplicaPhase::Stopping,
        "the stop report of a replica the coordinator never stopped changed it: {r:?}"
    );

    // A current set again: the agent runs the replica again, which was never lost.
    *view.stale.lock().unwrap() = None;
    let start = Instant::now();
    while h.containers().await != 2 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "not started again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    h.running(w, 2).await;
    assert!(h.state().await.replicas.contains_key(&victim));
    h.shutdown().await;
}
