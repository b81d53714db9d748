//! The typed RPC layer over MemTransport: round trips, deadlines, cancellation, streaming,
//! errors, size limits, versions, and retries under faults.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cloudless_core::ids::NodeId;
use cloudless_core::transport::{Role, Transport};
use cloudless_net::mem::{FaultConfig, MemNetwork, MemTransport, addr_of};
use cloudless_net::rpc::{ProtocolVersion, RetryPolicy};
use cloudless_net::wire::pb;
use cloudless_net::{Method, Router, RpcConfig, RpcEndpoint, RpcError, Status, StatusCode};
use common::id;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio::time::Instant;

const ECHO: Method<pb::NodeId, pb::NodeId> = Method::idempotent("test.v1.Echo/Inc");
const ECHO_ONCE: Method<pb::NodeId, pb::NodeId> = Method::new("test.v1.Echo/IncOnce");
const WHOAMI: Method<pb::NodeId, pb::NodeId> = Method::new("test.v1.Echo/WhoAmI");
const SLOW: Method<pb::NodeId, pb::NodeId> = Method::new("test.v1.Echo/Slow");
const COUNT: Method<pb::NodeId, pb::NodeId> = Method::new("test.v1.Echo/Count");
const MISSING: Method<pb::NodeId, pb::NodeId> = Method::new("test.v1.Echo/Missing");
const TICKS: Method<pb::NodeId, pb::NodeId> = Method::new("test.v1.Echo/Ticks");
const BIG: Method<pb::Replica, pb::NodeId> = Method::new("test.v1.Echo/Big");

const SEC: Duration = Duration::from_secs(1);

/// Events a handler reports to the test.
#[derive(Debug, PartialEq, Eq)]
enum Event {
    Started,
    Dropped,
}

struct OnDrop(mpsc::UnboundedSender<Event>);
impl Drop for OnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(Event::Dropped);
    }
}

struct Server {
    router: Router,
    events: mpsc::UnboundedReceiver<Event>,
    calls: Arc<AtomicU32>,
}

fn server() -> Server {
    let (tx, events) = mpsc::unbounded_channel();
    let tx_ticks = tx.clone();
    let calls = Arc::new(AtomicU32::new(0));
    let mut router = Router::new();
    for m in [&ECHO, &ECHO_ONCE] {
        let calls = Arc::clone(&calls);
        router.unary(m, move |_ctx, req: pb::NodeId| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move {
                Ok(pb::NodeId {
                    value: req.value + 1,
                })
            }
        });
    }
    router.unary(&WHOAMI, |ctx, _req| async move {
        Ok(pb::NodeId {
            value: ctx.peer.node.get(),
        })
    });
    router.unary(&SLOW, move |_ctx, req: pb::NodeId| {
        let tx = tx.clone();
        async move {
            let _guard = OnDrop(tx.clone());
            let _ = tx.send(Event::Started);
            tokio::time::sleep(Duration::from_secs(req.value)).await;
            Ok(req)
        }
    });
    router.server_streaming(&COUNT, |_ctx, req: pb::NodeId| {
        futures::stream::iter(0..req.value).then(|i| async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            if i == 1000 {
                Err(Status::unavailable("never"))
            } else {
                Ok(pb::NodeId { value: i })
            }
        })
    });
    let ticks_tx = tx_ticks.clone();
    router.server_streaming(&TICKS, move |_ctx, _req: pb::NodeId| {
        let guard = OnDrop(ticks_tx.clone());
        let _ = ticks_tx.send(Event::Started);
        futures::stream::unfold((0u64, guard), |(i, guard)| async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            Some((Ok(pb::NodeId { value: i }), (i + 1, guard)))
        })
    });
    router.unary(&BIG, |_ctx, req: pb::Replica| async move {
        Ok(pb::NodeId {
            value: req.message.len() as u64,
        })
    });
    Server {
        router,
        events,
        calls,
    }
}

struct Setup {
    net: MemNetwork,
    client: cloudless_net::RpcClient,
    a: Arc<MemTransport>,
    _a: RpcEndpoint,
    _b: RpcEndpoint,
    server: Server,
}

/// Agent 1 (client, `ca`) connected to coordinator 2 (server, `cb`).
async fn setup_with(ca: RpcConfig, cb: RpcConfig) -> Setup {
    let net = MemNetwork::new(11);
    let a: Arc<MemTransport> = Arc::new(net.endpoint(id(1, Role::Agent)));
    let b: Arc<MemTransport> = Arc::new(net.endpoint(id(2, Role::Coordinator)));
    a.connect(&addr_of(NodeId(2))).await.unwrap();
    let mut srv = server();
    let router = std::mem::take(&mut srv.router);
    let ea = RpcEndpoint::start(Arc::clone(&a) as Arc<dyn Transport>, Router::new(), ca).unwrap();
    let eb = RpcEndpoint::start(b, router, cb).unwrap();
    Setup {
        net,
        client: ea.client(),
        a,
        _a: ea,
        _b: eb,
        server: srv,
    }
}

async fn setup() -> Setup {
    setup_with(RpcConfig::default(), RpcConfig::default()).await
}

fn n(v: u64) -> pb::NodeId {
    pb::NodeId { value: v }
}

#[tokio::test(start_paused = true)]
async fn unary_round_trip_and_caller_identity() {
    let s = setup().await;
    assert_eq!(
        s.client.call(NodeId(2), &ECHO, n(41), SEC).await.unwrap(),
        n(42)
    );
    assert_eq!(
        s.client.call(NodeId(2), &WHOAMI, n(0), SEC).await.unwrap(),
        n(1)
    );
}

#[tokio::test(start_paused = true)]
async fn slow_handler_hits_the_deadline_and_is_aborted() {
    let mut s = setup().await;
    let start = Instant::now();
    let err = s
        .client
        .call(NodeId(2), &SLOW, n(10), Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::DeadlineExceeded), "{err}");
    assert_eq!(start.elapsed(), Duration::from_millis(100));
    assert_eq!(s.server.events.recv().await, Some(Event::Started));
    assert_eq!(s.server.events.recv().await, Some(Event::Dropped));
    // The endpoint is still usable.
    assert_eq!(
        s.client.call(NodeId(2), &ECHO, n(1), SEC).await.unwrap(),
        n(2)
    );
}

#[tokio::test(start_paused = true)]
async fn lost_request_hits_the_deadline() {
    let s = setup().await;
    assert_eq!(
        s.client.call(NodeId(2), &ECHO, n(1), SEC).await.unwrap(),
        n(2)
    ); // hello done
    s.net
        .set_link_faults(NodeId(1), NodeId(2), FaultConfig::none().with_drop(1.0))
        .unwrap();
    let err = s
        .client
        .call(NodeId(2), &ECHO_ONCE, n(1), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::DeadlineExceeded), "{err}");
}

#[tokio::test(start_paused = true)]
async fn dropping_the_call_cancels_the_handler() {
    let mut s = setup().await;
    let client = s.client.clone();
    let call =
        tokio::spawn(async move { client.call(NodeId(2), &SLOW, n(3600), 2 * 3600 * SEC).await });
    assert_eq!(s.server.events.recv().await, Some(Event::Started));
    let before = Instant::now();
    call.abort();
    assert_eq!(s.server.events.recv().await, Some(Event::Dropped));
    assert!(
        before.elapsed() < Duration::from_secs(1),
        "aborted by Cancel, not by a timeout"
    );
}

#[tokio::test(start_paused = true)]
async fn server_streaming_delivers_items_then_ends() {
    let mut s = setup().await;
    let stream = s
        .client
        .call_stream(NodeId(2), &COUNT, n(5), SEC)
        .await
        .unwrap();
    let items: Vec<u64> = stream.map(|r| r.unwrap().value).collect().await;
    assert_eq!(items, vec![0, 1, 2, 3, 4]);

    // A stream outliving its deadline ends with DeadlineExceeded, and the server stops.
    let mut stream = s
        .client
        .call_stream(NodeId(2), &COUNT, n(1_000_000), Duration::from_millis(55))
        .await
        .unwrap();
    let mut got = 0;
    let last = loop {
        match stream.next().await {
            Some(Ok(_)) => got += 1,
            Some(Err(e)) => break e,
            None => panic!("ended without an error"),
        }
    };
    assert!(matches!(last, RpcError::DeadlineExceeded), "{last}");
    assert_eq!(got, 5);
    assert!(stream.next().await.is_none());
    assert!(s.server.events.try_recv().is_err());
}

#[tokio::test(start_paused = true)]
async fn unknown_method_is_unimplemented() {
    let s = setup().await;
    let err = s
        .client
        .call(NodeId(2), &MISSING, n(1), SEC)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::Status { code: StatusCode::Unimplemented, ref message } if message.contains("Missing")),
        "{err}"
    );
    // Calling a unary method as a stream is refused too.
    let mut st = s
        .client
        .call_stream(NodeId(2), &ECHO, n(1), SEC)
        .await
        .unwrap();
    let err = st.next().await.unwrap().unwrap_err();
    assert_eq!(err.code(), StatusCode::Unimplemented);
}

fn big(len: usize) -> pb::Replica {
    pb::Replica {
        message: "x".repeat(len),
        ..Default::default()
    }
}

#[tokio::test(start_paused = true)]
async fn oversize_messages_are_rejected_both_ways() {
    let small = RpcConfig::default().with_max_message_size(1000);
    let s = setup_with(small.clone(), RpcConfig::default()).await;
    assert_eq!(
        s.client.call(NodeId(2), &BIG, big(900), SEC).await.unwrap(),
        n(900)
    );
    let err = s
        .client
        .call(NodeId(2), &BIG, big(2000), SEC)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RpcError::MessageTooLarge { limit: 1000, .. }),
        "{err}"
    );

    // The server enforces its own limit on what it receives.
    let s = setup_with(RpcConfig::default(), small).await;
    let err = s
        .client
        .call(NodeId(2), &BIG, big(2000), SEC)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::Status {
                code: StatusCode::ResourceExhausted,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(s.server.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test(start_paused = true)]
async fn incompatible_versions_are_rejected_naming_both() {
    let v = ProtocolVersion::new;
    let s = setup_with(
        RpcConfig::default().with_version(v(2, 0)),
        RpcConfig::default(),
    )
    .await;
    let err = s
        .client
        .call(NodeId(2), &ECHO, n(1), SEC)
        .await
        .unwrap_err();
    match &err {
        RpcError::VersionMismatch { ours, theirs, .. } => {
            assert_eq!((*ours, *theirs), (v(2, 0), v(1, 0)))
        }
        e => panic!("{e}"),
    }
    assert!(
        err.to_string().contains("2.0") && err.to_string().contains("1.0"),
        "{err}"
    );

    // A coordinator one minor ahead accepts the agent; two ahead does not.
    let s = setup_with(
        RpcConfig::default(),
        RpcConfig::default().with_version(v(1, 1)),
    )
    .await;
    assert_eq!(
        s.client.call(NodeId(2), &ECHO, n(1), SEC).await.unwrap(),
        n(2)
    );
    let s = setup_with(
        RpcConfig::default(),
        RpcConfig::default().with_version(v(1, 2)),
    )
    .await;
    assert!(matches!(
        s.client.call(NodeId(2), &ECHO, n(1), SEC).await,
        Err(RpcError::VersionMismatch { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn unknown_peer_fails_fast_with_not_connected() {
    let s = setup().await;
    let err = s
        .client
        .call(NodeId(99), &ECHO_ONCE, n(1), SEC)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RpcError::Transport(cloudless_core::transport::TransportError::NotConnected(_))
        ),
        "{err}"
    );
}

#[tokio::test(start_paused = true)]
async fn idempotent_calls_are_retried_under_loss_and_delay() {
    let retry = RetryPolicy {
        max_attempts: 8,
        attempt_timeout: Duration::from_millis(200),
        ..RetryPolicy::default()
    };
    let s = setup_with(RpcConfig::default().with_retry(retry), RpcConfig::default()).await;
    s.net
        .set_faults(
            FaultConfig::none()
                .with_drop(0.3)
                .with_delay(Duration::from_millis(20), Duration::from_millis(30)),
        )
        .unwrap();
    for i in 0..30 {
        assert_eq!(
            s.client
                .call(NodeId(2), &ECHO, n(i), 10 * SEC)
                .await
                .unwrap(),
            n(i + 1)
        );
    }
    let handled = s.server.calls.load(Ordering::SeqCst);
    assert!(handled >= 30, "{handled}");

    // The same loss without retries: some non-idempotent calls fail.
    let mut failed = 0;
    for i in 0..30 {
        match s
            .client
            .call(NodeId(2), &ECHO_ONCE, n(i), Duration::from_millis(500))
            .await
        {
            Ok(r) => assert_eq!(r, n(i + 1)),
            Err(RpcError::DeadlineExceeded) => failed += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(failed > 0);
}

#[tokio::test(start_paused = true)]
async fn restarted_server_gets_a_fresh_hello_transparently() {
    let s = setup().await;
    assert_eq!(
        s.client
            .call(NodeId(2), &ECHO_ONCE, n(1), SEC)
            .await
            .unwrap(),
        n(2)
    );
    // The coordinator restarts: a new incarnation with an empty hello table.
    let Setup {
        net,
        client,
        a,
        _a,
        _b,
        ..
    } = s;
    drop(_b);
    let b = Arc::new(net.endpoint(id(2, Role::Coordinator)));
    let _b = RpcEndpoint::start(b, server().router, RpcConfig::default()).unwrap();
    a.connect(&addr_of(NodeId(2))).await.unwrap();
    // Not idempotent, yet resent once: the server refused it before running the handler.
    assert_eq!(
        client.call(NodeId(2), &ECHO_ONCE, n(5), SEC).await.unwrap(),
        n(6)
    );
}

#[tokio::test(start_paused = true)]
async fn cancelling_a_stream_stops_the_server_handler() {
    let mut s = setup().await;
    let mut ticks = s
        .client
        .call_stream(NodeId(2), &TICKS, n(0), 3600 * SEC)
        .await
        .unwrap();
    assert_eq!(s.server.events.recv().await, Some(Event::Started));
    assert_eq!(ticks.next().await.unwrap().unwrap(), n(0));
    assert_eq!(ticks.next().await.unwrap().unwrap(), n(1));
    let before = Instant::now();
    ticks.cancel();
    assert_eq!(s.server.events.recv().await, Some(Event::Dropped));
    assert!(before.elapsed() < SEC);
}
