//! Replica streams without the API: the agent side (`ReplicaHost`, `serve_replica_streams`) on
//! a FakeRuntime and the coordinator side (`AgentStreams`) over MemTransport, on tokio's paused
//! clock. Tail and offsets, chunk splitting, the exec output cap, and bytes that are not the
//! protocol.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use std::sync::Arc;
use std::time::Duration;

use cloudless::agent::{ReplicaHost, serve_replica_streams};
use cloudless::protocol::replica_stream::{MAX_EXEC_OUTPUT, MAX_LOG_CHUNK};
use cloudless::protocol::{AgentStreams, ExecQuery, LogsQuery};
use cloudless::runtime::FakeRuntime;
use cloudless::runtime::fake::{Attempt, ExecScript, Script};
use cloudless_core::ids::{NodeId, ReplicaId};
use cloudless_core::runtime::{ContainerId, Runtime};
use cloudless_core::testing::runtime::basic_spec;
use cloudless_core::transport::{PeerIdentity, Role, Transport};
use cloudless_net::{MemNetwork, StatusCode};
use futures::StreamExt;
use prost::bytes::Bytes;

fn identity(role: Role, node: u64) -> PeerIdentity {
    PeerIdentity {
        cluster: "streams".into(),
        role,
        node: NodeId(node),
    }
}

/// A running container of replica 7 (attempt 0) that logs `log` at once.
async fn runtime_with_log(log: impl Into<Bytes>) -> FakeRuntime {
    let rt = FakeRuntime::new();
    rt.script_image(
        "img",
        Script::new([Attempt::runs_until_stopped().log_at(0, log)]),
    );
    rt.pull_image("img", None).await.unwrap();
    let mut spec = basic_spec(ContainerId::for_replica(ReplicaId(7), 0), "img");
    spec.replica = ReplicaId(7);
    rt.create(&spec).await.unwrap();
    rt.start(&spec.id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    rt
}

fn query(from_offset: u64, tail_lines: u32) -> LogsQuery {
    LogsQuery {
        replica: ReplicaId(7),
        from_offset,
        follow: false,
        tail_lines,
    }
}

async fn read(host: &ReplicaHost, q: LogsQuery) -> (String, Vec<(u64, usize)>) {
    let mut s = host.logs(q).await.unwrap();
    let (mut text, mut pieces) = (Vec::new(), Vec::new());
    while let Some(d) = s.next().await {
        let d = d.unwrap();
        pieces.push((d.offset, d.data.len()));
        text.extend_from_slice(&d.data);
    }
    (String::from_utf8(text).unwrap(), pieces)
}

#[tokio::test(start_paused = true)]
async fn tail_and_offsets_follow_line_boundaries() {
    let rt = runtime_with_log("a\nbb\nccc").await;
    let host = ReplicaHost::new(Arc::new(rt));
    assert_eq!(read(&host, query(0, 0)).await.0, "a\nbb\nccc");
    assert_eq!(read(&host, query(2, 0)).await.0, "bb\nccc");
    assert_eq!(read(&host, query(0, 1)).await.0, "ccc");
    assert_eq!(read(&host, query(0, 2)).await.0, "bb\nccc");
    assert_eq!(read(&host, query(0, 9)).await.0, "a\nbb\nccc");
    assert_eq!(
        read(&host, query(3, 5)).await.0,
        "b\nccc",
        "tail within the offset"
    );
    assert_eq!(read(&host, query(100, 0)).await.0, "", "past the end");

    let rt = runtime_with_log("x\ny\n").await;
    let host = ReplicaHost::new(Arc::new(rt));
    assert_eq!(
        read(&host, query(0, 1)).await.0,
        "y\n",
        "a final newline ends a line"
    );
    let (_, pieces) = read(&host, query(0, 1)).await;
    assert_eq!(pieces, vec![(2, 2)], "the offset is the tail's start");

    let e = host
        .logs(LogsQuery {
            replica: ReplicaId(8),
            ..query(0, 0)
        })
        .await
        .err()
        .expect("no container for replica 8");
    assert_eq!(e.code, StatusCode::FailedPrecondition);
    assert!(
        e.message.contains("replica r8") || e.message.contains("replica 8"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn long_chunks_are_split_and_exec_output_is_capped() {
    let big = vec![b'z'; 3 * MAX_LOG_CHUNK + 10];
    let rt = runtime_with_log(big.clone()).await;
    rt.script_exec(
        &["spew"],
        ExecScript {
            exit_code: 0,
            stdout: vec![b'o'; MAX_EXEC_OUTPUT + 5].into(),
            stderr: "short".into(),
            takes_ms: 0,
        },
    );
    let host = ReplicaHost::new(Arc::new(rt));
    let (text, pieces) = read(&host, query(0, 0)).await;
    assert_eq!(text.len(), big.len());
    assert!(
        pieces.iter().all(|(_, n)| *n <= MAX_LOG_CHUNK),
        "{pieces:?}"
    );
    let mut next = 0;
    for (offset, n) in &pieces {
        assert_eq!(*offset, next, "contiguous offsets");
        next += *n as u64;
    }

    let out = host
        .exec(ExecQuery {
            replica: ReplicaId(7),
            command: vec!["spew".into()],
            timeout: Duration::from_secs(5),
        })
        .await
        .unwrap();
    assert_eq!(out.stdout.len(), MAX_EXEC_OUTPUT);
    assert!(out.stdout_truncated);
    assert_eq!(&out.stderr[..], b"short");
    assert!(!out.stderr_truncated);
}

#[tokio::test(start_paused = true)]
async fn bytes_that_are_not_the_protocol_close_the_stream_and_the_agent_serves_on() {
    let net = MemNetwork::new(5);
    let coordinator: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Coordinator, 1)));
    let agent: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Agent, 2)));
    let rt = runtime_with_log("hello\n").await;
    let _server = serve_replica_streams(Arc::clone(&agent), Arc::new(rt));
    coordinator.connect("mem://2").await.unwrap();

    // A length prefix far over the limit: the agent answers nothing and closes.
    let mut s = coordinator.open_stream(NodeId(2)).await.unwrap();
    s.send(Bytes::from_static(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]))
        .await
        .unwrap();
    let answer = tokio::time::timeout(Duration::from_secs(30), s.recv())
        .await
        .expect("the agent closes the stream");
    assert!(matches!(answer, Ok(None) | Err(_)), "{answer:?}");

    // A well-formed message that is not a request: InvalidArgument.
    let mut s = coordinator.open_stream(NodeId(2)).await.unwrap();
    s.send(Bytes::from_static(&[0, 0, 0, 0])).await.unwrap();
    let mut got = Vec::new();
    while let Ok(Some(c)) = s.recv().await {
        got.extend_from_slice(&c);
    }
    assert!(got.len() > 4, "an error answer: {got:?}");
    assert!(
        String::from_utf8_lossy(&got).contains("op:"),
        "{:?}",
        String::from_utf8_lossy(&got)
    );

    // The agent still serves well-formed requests.
    let streams = AgentStreams::new(Arc::clone(&coordinator));
    let mut logs = streams.logs(NodeId(2), query(0, 0)).await.unwrap();
    let first = logs.next().await.unwrap().unwrap();
    assert_eq!(&first.data[..], b"hello\n");
    assert!(
        logs.next().await.is_none(),
        "without follow the stream ends"
    );
    let e = streams
        .exec(
            NodeId(2),
            ExecQuery {
                replica: ReplicaId(7),
                command: vec![String::new()],
                timeout: Duration::from_secs(1),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(e.code, StatusCode::InvalidArgument, "{e}");
}

#[tokio::test(start_paused = true)]
async fn a_follow_ends_when_the_container_exits_and_the_local_agent_is_served_in_process() {
    let net = MemNetwork::new(6);
    let coordinator: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Coordinator, 1)));
    let agent: Arc<dyn Transport> = Arc::new(net.endpoint(identity(Role::Agent, 2)));
    let rt = FakeRuntime::new();
    rt.script_image(
        "short",
        Script::new([Attempt::exits(0)
            .after_ms(5_000)
            .log_at(0, "start\n")
            .log_at(4_000, "bye\n")]),
    );
    rt.pull_image("short", None).await.unwrap();
    let mut spec = basic_spec(ContainerId::for_replica(ReplicaId(7), 0), "short");
    spec.replica = ReplicaId(7);
    rt.create(&spec).await.unwrap();
    rt.start(&spec.id).await.unwrap();
    let _server = serve_replica_streams(Arc::clone(&agent), Arc::new(rt.clone()));
    coordinator.connect("mem://2").await.unwrap();

    let follow = LogsQuery {
        follow: true,
        ..query(0, 0)
    };
    let streams = AgentStreams::new(Arc::clone(&coordinator));
    let mut s = streams.logs(NodeId(2), follow).await.unwrap();
    let mut text = Vec::new();
    while let Some(d) = s.next().await {
        text.extend_from_slice(&d.unwrap().data);
    }
    assert_eq!(text, b"start\nbye\n", "followed until the container exited");

    // A process running both roles reads its own agent's replicas without the network.
    let local =
        AgentStreams::new(Arc::clone(&coordinator)).with_local_agent(NodeId(1), Arc::new(rt));
    assert!(local.reaches(NodeId(1)));
    let mut s = local.logs(NodeId(1), query(0, 1)).await.unwrap();
    assert_eq!(&s.next().await.unwrap().unwrap().data[..], b"bye\n");
    assert!(!AgentStreams::new(coordinator).reaches(NodeId(9)));
}

/// 16 MiB of log through a replica stream over real QUIC (mutual TLS on 127.0.0.1): every byte
/// arrives in order; the rate is printed (`--nocapture`) for the design record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_log_crosses_quic_whole_and_in_order() {
    use cloudless_net::identity::{ClusterCa, NodeCredentials, NodeKey};
    use cloudless_net::quic::{QuicConfig, QuicTransport};
    let ca = ClusterCa::init("streams", std::time::SystemTime::now()).unwrap();
    let creds = |role, node| {
        let key = NodeKey::generate().unwrap();
        let cert = ca
            .issue(
                &key.csr().unwrap(),
                &identity(role, node),
                std::time::SystemTime::now(),
                Duration::from_secs(600),
            )
            .unwrap();
        NodeCredentials::new(&key, cert, ca.cert().clone()).unwrap()
    };
    let bind = |c: &NodeCredentials| {
        Arc::new(
            QuicTransport::bind("127.0.0.1:0".parse().unwrap(), c, QuicConfig::default()).unwrap(),
        )
    };
    let coordinator = bind(&creds(Role::Coordinator, 1));
    let agent = bind(&creds(Role::Agent, 2));
    let size = 16 * 1024 * 1024;
    let log: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    let rt = runtime_with_log(log.clone()).await;
    let _server = serve_replica_streams(agent.clone(), Arc::new(rt));
    agent
        .connect(&coordinator.local_addr().unwrap().to_string())
        .await
        .unwrap();
    // The dialer finishes its handshake first: wait until the coordinator has the connection
    // (a generous deadline: the accepting side may lag on a loaded machine).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !coordinator
        .connected_peers()
        .iter()
        .any(|p| p.node == NodeId(2))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the coordinator never saw the agent's connection"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let streams = AgentStreams::new(coordinator.clone());
    assert!(streams.reaches(NodeId(2)));
    let started = std::time::Instant::now();
    let mut s = streams.logs(NodeId(2), query(0, 0)).await.unwrap();
    let mut got = Vec::with_capacity(size);
    while let Some(d) = s.next().await {
        let d = d.unwrap();
        assert_eq!(d.offset, got.len() as u64);
        got.extend_from_slice(&d.data);
    }
    let secs = started.elapsed().as_secs_f64();
    assert!(got == log, "the log arrived whole and in order");
    eprintln!(
        "replica stream over QUIC: {} MiB in {secs:.3} s = {:.0} MiB/s",
        size >> 20,
        (size >> 20) as f64 / secs
    );
    agent.close();
    coordinator.close();
}
