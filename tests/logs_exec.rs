//! Logs and Exec end to end: the public API (real TLS) → the coordinator → a replica stream over
//! the cluster transport → the agent that runs the replica → its Runtime (FakeRuntime) → back.
//! Once over MemTransport and once over real QUIC with certificates of the cluster CA.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod api_common;
mod fabric_common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloudless::Client;
use cloudless::api::{self, ApiConfig, ApiServer, ApiTls, pb};
use cloudless::coordinator::CoordinatorConfig;
use cloudless::fabric::{Fabric, FabricHandle};
use cloudless::protocol::{AgentStreams, LogsQuery};
use cloudless::runtime::FakeRuntime;
use cloudless::runtime::fake::{Attempt, ExecScript, Script};
use cloudless_core::clock::{Clock, SystemClock};
use cloudless_core::consensus::Consensus;
use cloudless_core::ids::{NodeId, ReplicaId, WorkloadId};
use cloudless_core::node::Liveness;
use cloudless_core::replica::ReplicaPhase;
use cloudless_core::state::{Command, CommandEnvelope, CommandResult};
use cloudless_core::testing::consensus::MemConsensus;
use cloudless_core::transport::{PeerIdentity, Role, Transport};
use cloudless_core::workload::{SpreadConstraint, TopologyKey, WorkloadSpec};
use cloudless_net::identity::{ClusterCa, NodeCredentials, NodeKey, RevokedNodes};
use cloudless_net::quic::{QuicConfig, QuicTransport};
use cloudless_net::{MemNetwork, StatusCode};
use fabric_common::{agent_config, probe, wait_running};
use futures::StreamExt;
use tonic::Code;

const CLUSTER: &str = "logs-test";
const IMAGE: &str = "docker.io/library/logger:1";
/// When the fake container writes its third line (tokio time after its start).
const LATE_LINE_MS: u64 = 2_500;

fn identity(role: Role, node: u64) -> PeerIdentity {
    PeerIdentity {
        cluster: CLUSTER.into(),
        role,
        node: NodeId(node),
    }
}

fn creds(ca: &ClusterCa, role: Role, node: u64) -> NodeCredentials {
    let key = NodeKey::generate().unwrap();
    let cert = ca
        .issue(
            &key.csr().unwrap(),
            &identity(role, node),
            SystemTime::now(),
            Duration::from_secs(3600),
        )
        .unwrap();
    NodeCredentials::new(&key, cert, ca.cert().clone()).unwrap()
}

fn scripted_runtime() -> FakeRuntime {
    let rt = FakeRuntime::new();
    rt.script_image(
        IMAGE,
        Script::new([Attempt::runs_until_stopped()
            .log_at(0, "line 1\nline 2\n")
            .log_at(LATE_LINE_MS, "line 3\n")]),
    );
    rt.script_exec(&["cat", "/etc/hostname"], ExecScript::prints("logger-0\n"));
    rt.script_exec(
        &["sh", "-c", "exit 3"],
        ExecScript {
            exit_code: 3,
            stdout: "out\n".into(),
            stderr: "err\n".into(),
            takes_ms: 0,
        },
    );
    rt.script_exec(&["sleep", "60"], ExecScript::exits(0).taking_ms(60_000));
    rt
}

async fn create(consensus: &dyn Consensus, name: &str, image: &str) -> WorkloadId {
    let applied = consensus
        .propose(CommandEnvelope::new(
            SystemClock.now_ms(),
            Command::CreateWorkload {
                namespace: "default".into(),
                name: name.into(),
                labels: Default::default(),
                spec: WorkloadSpec::new(image),
            },
        ))
        .await
        .unwrap();
    match applied.result {
        CommandResult::WorkloadCreated { workload } => workload,
        other => panic!("unexpected {other:?}"),
    }
}

/// A coordinator and an agent on some transport, the API on real TLS over the coordinator.
struct Env {
    ca: ClusterCa,
    consensus: MemConsensus,
    streams: AgentStreams,
    api: ApiServer,
    agent: FabricHandle,
    coordinator: FabricHandle,
    replica: ReplicaId,
    _dir: tempfile::TempDir,
}

impl Env {
    async fn start(
        ca: ClusterCa,
        coordinator_transport: Arc<dyn Transport>,
        agent_transport: Arc<dyn Transport>,
        coordinator_addr: String,
    ) -> Self {
        let consensus = MemConsensus::new();
        let coordinator = Fabric::builder()
            .coordinator(CoordinatorConfig::default())
            .consensus(consensus.clone())
            .transport_shared(Arc::clone(&coordinator_transport))
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let agent = Fabric::builder()
            .agent(agent_config(dir.path()))
            .runtime(scripted_runtime())
            .resources(probe())
            .transport_shared(agent_transport)
            .coordinator_addr(NodeId(1), coordinator_addr)
            .build()
            .unwrap()
            .start()
            .await
            .unwrap();
        let streams = AgentStreams::new(coordinator_transport);
        let config = ApiConfig::new(
            "127.0.0.1:0".parse().unwrap(),
            ApiTls {
                credentials: creds(&ca, Role::Coordinator, 1),
                revoked: RevokedNodes::new(),
            },
        )
        .with_agent_streams(streams.clone());
        let mut config = config;
        config.gateway = Some("127.0.0.1:0".parse().unwrap());
        let api = api::serve(config, Arc::new(consensus.clone()), Arc::new(SystemClock))
            .await
            .unwrap();
        let w = create(&consensus, "logger", IMAGE).await;
        wait_running(&consensus, w).await;
        let state = consensus.state().await.unwrap();
        let replica = state.replicas_of(w).next().unwrap().id;
        Self {
            ca,
            consensus,
            streams,
            api,
            agent,
            coordinator,
            replica,
            _dir: dir,
        }
    }

    fn client(&self, role: Role, node: u64) -> Client {
        Client::new(
            [self.api.local_addr().to_string()],
            &creds(&self.ca, role, node),
        )
        .unwrap()
    }

    async fn shutdown(self) {
        self.api.shutdown().await;
        self.agent.shutdown().await;
        self.coordinator.shutdown().await;
    }
}

/// One HTTP/1.1 GET on the gateway over TLS: the status line, the head and the body bytes.
async fn gateway_get(env: &Env, path: &str) -> (u16, String, Vec<u8>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let admin = creds(&env.ca, Role::Admin, 0);
    let tls =
        cloudless_net::identity::tls::client_config(env.ca.cert(), Some(&admin), api::GATEWAY_ALPN)
            .unwrap();
    let tcp = tokio::net::TcpStream::connect(env.api.gateway_addr().unwrap())
        .await
        .unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut s = tokio_rustls::TlsConnector::from(Arc::new(tls))
        .connect(name, tcp)
        .await
        .unwrap();
    let head = format!("GET {path} HTTP/1.1\r\nHost: cloudless\r\nConnection: close\r\n\r\n");
    s.write_all(head.as_bytes()).await.unwrap();
    s.flush().await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("an HTTP answer");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap();
    (status, head, raw[split + 4..].to_vec())
}

fn logs_req(replica: u64, follow: bool) -> pb::LogsRequest {
    pb::LogsRequest {
        workload: Some(pb::WorkloadRef {
            namespace: String::new(),
            name: "logger".into(),
        }),
        replica,
        follow,
        tail_lines: 0,
        from_offset: 0,
    }
}

fn exec_req(replica: u64, command: &[&str], timeout_seconds: u32) -> pb::ExecRequest {
    pb::ExecRequest {
        workload: Some(pb::WorkloadRef {
            namespace: "default".into(),
            name: "logger".into(),
        }),
        replica,
        command: command.iter().map(|s| (*s).to_owned()).collect(),
        timeout_seconds,
    }
}

/// Every chunk of a non-follow logs call, concatenated (checking offsets are contiguous).
async fn read_all(client: &Client, req: pb::LogsRequest) -> Result<String, tonic::Status> {
    let mut stream = client.logs(req).await.map_err(status_of)?;
    let mut out = Vec::new();
    let mut next_offset = None;
    while let Some(chunk) = stream.message().await? {
        if let Some(o) = next_offset {
            assert_eq!(chunk.offset, o, "chunks are contiguous");
        }
        next_offset = Some(chunk.offset + chunk.data.len() as u64);
        assert_eq!(chunk.stream, "combined");
        out.extend_from_slice(&chunk.data);
    }
    Ok(String::from_utf8(out).unwrap())
}

fn status_of(e: cloudless::client::ClientError) -> tonic::Status {
    match e {
        cloudless::client::ClientError::Status(s) => *s,
        other => panic!("not a status: {other}"),
    }
}

/// The scenario both transports run.
async fn logs_and_exec_through_the_api(env: &Env) {
    let admin = env.client(Role::Admin, 0);
    let r = env.replica.get();

    // Logs so far (the third line comes later), for one replica and for all.
    let text = read_all(&admin, logs_req(r, false)).await.unwrap();
    assert!(
        text == "line 1\nline 2\n" || text == "line 1\nline 2\nline 3\n",
        "{text:?}"
    );
    let all = read_all(&admin, logs_req(0, false)).await.unwrap();
    assert!(all.starts_with("line 1\nline 2\n"), "{all:?}");

    // From an offset, and the last line only.
    let mut req = logs_req(r, false);
    req.from_offset = 7;
    assert!(read_all(&admin, req).await.unwrap().starts_with("line 2\n"));
    let mut req = logs_req(r, false);
    req.tail_lines = 1;
    let tail = read_all(&admin, req).await.unwrap();
    assert!(tail == "line 2\n" || tail == "line 3\n", "{tail:?}");

    // Follow: the late line arrives on the open stream, and the stream stays open after it.
    let mut follow = admin.logs(logs_req(r, true)).await.unwrap();
    let mut seen = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), async {
        while !String::from_utf8_lossy(&seen).contains("line 3\n") {
            let chunk = follow.message().await.unwrap().expect("follow stream open");
            assert_eq!(chunk.replica, r);
            seen.extend_from_slice(&chunk.data);
        }
    })
    .await
    .expect("the late line is followed");
    assert_eq!(String::from_utf8_lossy(&seen), "line 1\nline 2\nline 3\n");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), follow.message())
            .await
            .is_err(),
        "a followed stream stays open while the container runs"
    );
    drop(follow);

    // Exec: exit code and output, the cluster picking the replica when none is named.
    let out = admin
        .exec(exec_req(0, &["cat", "/etc/hostname"], 0))
        .await
        .unwrap();
    assert_eq!(out.exit_code, 0);
    assert_eq!(out.stdout, b"logger-0\n");
    assert_eq!(out.replica, r);
    let out = admin
        .exec(exec_req(r, &["sh", "-c", "exit 3"], 5))
        .await
        .unwrap();
    assert_eq!(
        (out.exit_code, &out.stdout[..], &out.stderr[..]),
        (3, &b"out\n"[..], &b"err\n"[..])
    );
    assert!(!out.stdout_truncated && !out.stderr_truncated);
    let e = status_of(
        admin
            .exec(exec_req(r, &["sleep", "60"], 1))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code(), Code::DeadlineExceeded, "{e:?}");

    // Refusals.
    let coordinator = env.client(Role::Coordinator, 9);
    let e = status_of(
        coordinator
            .exec(exec_req(r, &["cat", "/etc/hostname"], 0))
            .await
            .unwrap_err(),
    );
    assert_eq!(
        e.code(),
        Code::PermissionDenied,
        "exec needs an admin: {e:?}"
    );
    assert!(
        read_all(&coordinator, logs_req(r, false)).await.is_ok(),
        "a coordinator identity may read logs"
    );
    let agent = env.client(Role::Agent, 9);
    let e = read_all(&agent, logs_req(r, false)).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = read_all(&admin, logs_req(r + 1000, false))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(
        e.message().contains(&format!("replica {}", r + 1000)),
        "{e:?}"
    );
    let e = status_of(
        admin
            .exec(exec_req(r + 1000, &["true"], 0))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    let mut req = logs_req(0, false);
    req.workload.as_mut().unwrap().name = "nope".into();
    let e = read_all(&admin, req).await.unwrap_err();
    assert_eq!(e.code(), Code::NotFound, "{e:?}");
    assert!(e.message().contains("default/nope"), "{e:?}");
    let e = status_of(admin.exec(exec_req(r, &[], 0)).await.unwrap_err());
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_exec_reach_the_agent_over_mem_transport() {
    let net = MemNetwork::new(41);
    let coordinator: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Coordinator, 1)));
    let agent: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Agent, 2)));
    let env = Env::start(
        ClusterCa::init(CLUSTER, SystemTime::now()).unwrap(),
        coordinator,
        agent,
        "mem://1".into(),
    )
    .await;
    logs_and_exec_through_the_api(&env).await;

    // The HTTP/JSON gateway serves the log so far as text (no chunked encoding: Connection:
    // close and a full body), with where to resume.
    let r = env.replica.get();
    let (status, head, body) = gateway_get(
        &env,
        &format!("/v1/workloads/default/logger/logs?replica={r}&fromOffset=7"),
    )
    .await;
    assert_eq!(status, 200, "{head}");
    assert!(
        String::from_utf8_lossy(&body).starts_with("line 2\n"),
        "{body:?}"
    );
    let next = 7 + body.len();
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("cloudless-next-offset: {next}")),
        "{head}"
    );
    let (status, head, _) = gateway_get(&env, "/v1/workloads/default/nope/logs").await;
    assert_eq!(status, 404, "{head}");
    let (status, head, _) =
        gateway_get(&env, "/v1/workloads/default/logger/logs?follow=true").await;
    assert_eq!(status, 400, "{head}");

    // The agent serves only coordinators of its cluster.
    let stranger: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Agent, 3)));
    stranger.connect("mem://2").await.unwrap();
    let query = LogsQuery {
        replica: env.replica,
        from_offset: 0,
        follow: false,
        tail_lines: 0,
    };
    let e = AgentStreams::new(Arc::clone(&stranger))
        .logs(NodeId(2), query)
        .await
        .err()
        .expect("refused");
    assert_eq!(e.code, StatusCode::PermissionDenied, "{e}");

    // A dropped follow stream ends the agent's work: more streams than the agent serves at
    // once, opened and dropped one after another, are all accepted.
    let follow = LogsQuery {
        follow: true,
        ..query
    };
    for i in 0..80 {
        let mut s = env
            .streams
            .logs(NodeId(2), follow)
            .await
            .unwrap_or_else(|e| panic!("stream {i}: {e}"));
        s.next().await.unwrap().unwrap();
        drop(s);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }

    // A replica with no container on that node, and an agent that cannot be reached.
    let e = env
        .streams
        .logs(
            NodeId(2),
            LogsQuery {
                replica: ReplicaId(99_999),
                ..query
            },
        )
        .await
        .err()
        .expect("no container");
    assert_eq!(e.code, StatusCode::FailedPrecondition, "{e}");
    net.partition(&[NodeId(1)], &[NodeId(2)]);
    let admin = env.client(Role::Admin, 0);
    let e = status_of(
        admin
            .exec(exec_req(env.replica.get(), &["cat", "/etc/hostname"], 0))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains(&NodeId(2).to_string()), "{e:?}");

    env.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_exec_reach_the_agent_over_quic() {
    let ca = ClusterCa::init(CLUSTER, SystemTime::now()).unwrap();
    let bind = |c: &NodeCredentials| {
        Arc::new(
            QuicTransport::bind("127.0.0.1:0".parse().unwrap(), c, QuicConfig::default()).unwrap(),
        )
    };
    let coordinator = bind(&creds(&ca, Role::Coordinator, 1));
    let agent = bind(&creds(&ca, Role::Agent, 2));
    let addr = coordinator.local_addr().unwrap().to_string();
    let env = Env::start(ca, coordinator.clone(), agent.clone(), addr).await;
    logs_and_exec_through_the_api(&env).await;

    // The agent going away: Unavailable naming its node.
    let admin = env.client(Role::Admin, 0);
    env.agent.shutdown().await;
    agent.close();
    let mut unavailable = None;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        match admin
            .exec(exec_req(env.replica.get(), &["cat", "/etc/hostname"], 0))
            .await
        {
            Err(e) => {
                unavailable = Some(status_of(e));
                break;
            }
            Ok(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    let e = unavailable.expect("exec fails once the agent is gone");
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    env.api.shutdown().await;
    env.coordinator.shutdown().await;
    coordinator.close();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_without_the_agent_forwards_logs_and_exec_to_the_leader() {
    let net = MemNetwork::new(43);
    let coordinator: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Coordinator, 1)));
    let agent: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Agent, 2)));
    let env = Env::start(
        ClusterCa::init(CLUSTER, SystemTime::now()).unwrap(),
        coordinator,
        agent,
        "mem://1".into(),
    )
    .await;
    // Member 3 follows member 1 (whose API has the agent streams): it cannot read the state
    // (as a raft follower) and has no connection to the agent.
    let follower = api_common::Member {
        inner: env.consensus.clone(),
        me: NodeId(3),
        leader: Arc::new(std::sync::Mutex::new(NodeId(1))),
    };
    let mut config = ApiConfig::new(
        "127.0.0.1:0".parse().unwrap(),
        ApiTls {
            credentials: creds(&env.ca, Role::Coordinator, 3),
            revoked: RevokedNodes::new(),
        },
    );
    config
        .peers
        .insert(NodeId(1), env.api.local_addr().to_string());
    let follower_api = api::serve(config, Arc::new(follower), Arc::new(SystemClock))
        .await
        .unwrap();
    let admin = Client::new(
        [follower_api.local_addr().to_string()],
        &creds(&env.ca, Role::Admin, 0),
    )
    .unwrap();
    let r = env.replica.get();
    let text = read_all(&admin, logs_req(r, false)).await.unwrap();
    assert!(text.starts_with("line 1\nline 2\n"), "{text:?}");
    let out = admin
        .exec(exec_req(r, &["cat", "/etc/hostname"], 0))
        .await
        .unwrap();
    assert_eq!((out.exit_code, &out.stdout[..]), (0, &b"logger-0\n"[..]));
    // A coordinator identity may not exec through a follower either.
    let coordinator = Client::new(
        [follower_api.local_addr().to_string()],
        &creds(&env.ca, Role::Coordinator, 9),
    )
    .unwrap();
    let e = status_of(
        coordinator
            .exec(exec_req(r, &["cat", "/etc/hostname"], 0))
            .await
            .unwrap_err(),
    );
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    follower_api.shutdown().await;
    env.shutdown().await;
}

/// Every chunk of a non-follow logs call of workload `name`, grouped by replica.
async fn read_by_replica(
    client: &Client,
    name: &str,
) -> Result<std::collections::BTreeMap<u64, String>, tonic::Status> {
    let mut req = logs_req(0, false);
    req.workload = Some(pb::WorkloadRef {
        namespace: String::new(),
        name: name.into(),
    });
    let mut stream = client.logs(req).await.map_err(status_of)?;
    let mut out = std::collections::BTreeMap::<u64, String>::new();
    while let Some(chunk) = stream.message().await? {
        out.entry(chunk.replica)
            .or_default()
            .push_str(&String::from_utf8(chunk.data).unwrap());
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_and_exec_of_a_workload_skip_a_replica_whose_agent_is_gone() {
    let net = MemNetwork::new(47);
    let coordinator: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Coordinator, 1)));
    let agent: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Agent, 2)));
    let env = Env::start(
        ClusterCa::init(CLUSTER, SystemTime::now()).unwrap(),
        coordinator,
        agent,
        "mem://1".into(),
    )
    .await;
    // A second agent, node 4.
    let dir = tempfile::tempdir().unwrap();
    let second = Fabric::builder()
        .agent(agent_config(dir.path()))
        .runtime(scripted_runtime())
        .resources(probe())
        .transport_shared(Arc::new(net.endpoint(identity(Role::Agent, 4))))
        .coordinator_addr(NodeId(1), "mem://1".to_owned())
        .build()
        .unwrap()
        .start()
        .await
        .unwrap();
    // Generous deadlines: on a loaded machine the second agent and the replicas take a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let state = env.consensus.state().await.unwrap();
        if state
            .nodes
            .get(&NodeId(4))
            .is_some_and(|n| n.liveness == Liveness::Ready)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the second agent is not Ready: {:?}",
            state.nodes.get(&NodeId(4))
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Two replicas of "pair", one on each node.
    let mut spec = WorkloadSpec::new(IMAGE);
    spec.replicas = 2;
    spec.placement.spread = Some(SpreadConstraint {
        topology_key: TopologyKey::Node,
        max_skew: 1,
    });
    env.consensus
        .propose(CommandEnvelope::new(
            SystemClock.now_ms(),
            Command::CreateWorkload {
                namespace: "default".into(),
                name: "pair".into(),
                labels: Default::default(),
                spec,
            },
        ))
        .await
        .unwrap();
    let mut placed = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        let state = env.consensus.state().await.unwrap();
        let w = state
            .workloads
            .values()
            .find(|w| w.name == "pair")
            .unwrap()
            .id;
        placed = state
            .replicas_of(w)
            .filter(|r| r.phase == ReplicaPhase::Running)
            .map(|r| (r.id.get(), r.node))
            .collect::<Vec<_>>();
        if placed.len() == 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    placed.sort();
    assert_eq!(placed.len(), 2, "both replicas run: {placed:?}");
    assert_ne!(placed[0].1, placed[1].1, "one replica per node: {placed:?}");
    let admin = env.client(Role::Admin, 0);
    let all = read_by_replica(&admin, "pair").await.unwrap();
    assert_eq!(all.len(), 2, "{all:?}");

    // The agent of the lowest replica (the one exec picks by default) is cut off.
    let ((dead, dead_node), (live, _)) = (placed[0], placed[1]);
    net.partition(&[NodeId(1)], &[dead_node]);
    let logs = read_by_replica(&admin, "pair").await.unwrap();
    assert!(!logs.contains_key(&dead), "{logs:?}");
    assert!(
        logs.get(&live)
            .is_some_and(|t| t.starts_with("line 1\nline 2\n")),
        "{logs:?}"
    );
    // A named replica keeps its precise error.
    let mut named = logs_req(dead, false);
    named.workload = Some(pb::WorkloadRef {
        namespace: String::new(),
        name: "pair".into(),
    });
    let e = status_of(admin.logs(named).await.unwrap_err());
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
    assert!(e.message().contains(&dead_node.to_string()), "{e:?}");

    // Once the node is Down (its replica may still show Running), exec runs in the live one.
    env.consensus
        .propose(CommandEnvelope::new(
            SystemClock.now_ms(),
            Command::SetLiveness {
                changes: vec![(dead_node, Liveness::Down)],
            },
        ))
        .await
        .unwrap();
    let mut req = exec_req(0, &["cat", "/etc/hostname"], 0);
    req.workload = Some(pb::WorkloadRef {
        namespace: "default".into(),
        name: "pair".into(),
    });
    let out = admin.exec(req).await.unwrap();
    assert_eq!(out.replica, live);
    assert_eq!((out.exit_code, &out.stdout[..]), (0, &b"logger-0\n"[..]));
    let logs = read_by_replica(&admin, "pair").await.unwrap();
    assert!(
        logs.contains_key(&live) && !logs.contains_key(&dead),
        "{logs:?}"
    );

    second.shutdown().await;
    env.shutdown().await;
}
