//! Conformance suite for the [`Transport`] contract.
//!
//! Run it from an implementation's tests inside a tokio runtime (wrap it in a timeout: a
//! transport that loses a frame makes the suite wait forever rather than guess a duration):
//!
//! ```text
//! #[tokio::test]
//! async fn my_transport_conforms() {
//!     cloudless_core::testing::transport::conformance(|| async {
//!         let (a, b, b_addr) = make_two_endpoints().await;
//!         TransportPair { a, b, b_addr }
//!     })
//!     .await;
//! }
//! ```
//!
//! `cloudless-net/tests/transport_conformance.rs` runs it on `MemTransport`.
//!
//! Each check gets a fresh pair from the factory. The suite needs no timers and no runtime of
//! its own; it panics (with the name of the check) on the first violation.

use std::future::Future;
use std::sync::Arc;

use bytes::Bytes;

use crate::ids::NodeId;
use crate::transport::{Transport, TransportError};

/// Two endpoints that can reach each other, not yet connected. `b_addr` is what `a` passes
/// to `connect` to reach `b`. Faults must be off.
pub struct TransportPair {
    /// The dialing endpoint.
    pub a: Arc<dyn Transport>,
    /// The listening endpoint.
    pub b: Arc<dyn Transport>,
    /// `b`'s address, as `a` dials it.
    pub b_addr: String,
}

/// A node id no endpoint in the suite uses.
const STRANGER: NodeId = NodeId(u64::MAX - 7);

/// Runs every check, each on a fresh pair.
pub async fn conformance<F, Fut>(mut make_pair: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = TransportPair>,
{
    connect_learns_identity_and_addresses_both_ways(make_pair().await).await;
    unknown_peers_are_not_connected(make_pair().await).await;
    frames_arrive_whole_and_in_order(make_pair().await).await;
    oversized_frame_fails_and_connection_survives(make_pair().await).await;
    streams_deliver_chunks_in_order_then_end(make_pair().await).await;
}

async fn connect(p: &TransportPair) {
    let who =
        p.a.connect(&p.b_addr)
            .await
            .expect("connect: dialing b failed");
    assert_eq!(&who, p.b.local(), "connect: returned identity is not b's");
}

/// After `connect`, each side addresses the other by id and sees its identity on inbound.
pub async fn connect_learns_identity_and_addresses_both_ways(p: TransportPair) {
    connect(&p).await;
    let (a_id, b_id) = (p.a.local().clone(), p.b.local().clone());
    p.a.send(b_id.node, Bytes::from_static(b"ping"))
        .await
        .expect("addressing: a -> b");
    let m = p.b.recv().await.expect("addressing: b recv");
    assert_eq!(m.from, a_id, "identity: inbound frame not attributed to a");
    assert_eq!(&m.frame[..], b"ping");
    // The dialed side answers over the connection a opened (an agent behind NAT).
    p.b.send(a_id.node, Bytes::from_static(b"pong"))
        .await
        .expect("addressing: b -> a");
    let m = p.a.recv().await.expect("addressing: a recv");
    assert_eq!(
        (m.from, &m.frame[..]),
        (b_id.clone(), &b"pong"[..]),
        "identity: b's answer"
    );
    assert!(
        p.a.connected_peers().contains(&b_id),
        "connected_peers: a does not list b"
    );
    assert!(
        p.b.connected_peers().contains(&a_id),
        "connected_peers: b does not list a"
    );
}

/// Sending to a peer without a connection fails with `NotConnected`.
pub async fn unknown_peers_are_not_connected(p: TransportPair) {
    let before = p.a.send(p.b.local().node, Bytes::from_static(b"x")).await;
    assert!(
        matches!(before, Err(TransportError::NotConnected(n)) if n == p.b.local().node),
        "addressing: send before connect gave {before:?}"
    );
    connect(&p).await;
    let stranger = p.a.send(STRANGER, Bytes::from_static(b"x")).await;
    assert!(
        matches!(stranger, Err(TransportError::NotConnected(n)) if n == STRANGER),
        "addressing: send to an unknown id gave {stranger:?}"
    );
    assert!(
        matches!(
            p.a.open_stream(STRANGER).await,
            Err(TransportError::NotConnected(_))
        ),
        "addressing: open_stream to an unknown id"
    );
}

/// Frames of assorted sizes (including empty and the maximum) arrive whole and in order.
pub async fn frames_arrive_whole_and_in_order(p: TransportPair) {
    connect(&p).await;
    let max = p.a.max_frame_size().min(p.b.max_frame_size());
    let sizes = [0, 1, 17, 1000, 65_536, max];
    let frames: Vec<Bytes> = sizes
        .iter()
        .enumerate()
        .map(|(i, &n)| Bytes::from((0..n).map(|j| (i + j) as u8).collect::<Vec<u8>>()))
        .collect();
    let to = p.b.local().node;
    for f in &frames {
        p.a.send(to, f.clone()).await.expect("frames: send");
    }
    for (i, f) in frames.iter().enumerate() {
        let m = p.b.recv().await.expect("frames: recv");
        assert_eq!(
            m.frame.len(),
            f.len(),
            "frames: frame {i} has the wrong length"
        );
        assert!(
            m.frame == *f,
            "frames: frame {i} arrived altered or out of order"
        );
    }
}

/// A frame over the limit fails with `FrameTooLarge`; the next frame still goes through.
pub async fn oversized_frame_fails_and_connection_survives(p: TransportPair) {
    connect(&p).await;
    let limit = p.a.max_frame_size();
    let to = p.b.local().node;
    let big = Bytes::from(vec![0u8; limit + 1]);
    match p.a.send(to, big).await {
        Err(TransportError::FrameTooLarge { size, limit: l }) => {
            assert_eq!((size, l), (limit + 1, limit), "frame size: error fields");
        }
        other => panic!("frame size: oversized send gave {other:?}"),
    }
    p.a.send(to, Bytes::from_static(b"after"))
        .await
        .expect("frame size: connection broken");
    let m = p.b.recv().await.expect("frame size: recv");
    assert_eq!(
        &m.frame[..],
        b"after",
        "frame size: the oversized frame was delivered"
    );
}

/// Stream chunks arrive in order, both ways, then `None` after `finish`.
pub async fn streams_deliver_chunks_in_order_then_end(p: TransportPair) {
    connect(&p).await;
    let mut ours =
        p.a.open_stream(p.b.local().node)
            .await
            .expect("streams: open");
    let chunks: Vec<Bytes> = (0..20u8)
        .map(|i| Bytes::from(vec![i; usize::from(i) * 3 + 1]))
        .collect();
    for c in &chunks {
        ours.send(c.clone()).await.expect("streams: send");
    }
    ours.finish().await.expect("streams: finish");
    let (from, mut theirs) = p.b.accept_stream().await.expect("streams: accept");
    assert_eq!(&from, p.a.local(), "identity: stream not attributed to a");
    let mut received = Vec::new();
    while let Some(c) = theirs.recv().await.expect("streams: recv") {
        received.push(c);
    }
    let sent: Vec<u8> = chunks.concat();
    assert_eq!(
        received.concat(),
        sent,
        "streams: bytes altered or out of order"
    );
    // And the other direction on the same stream.
    theirs
        .send(Bytes::from_static(b"back"))
        .await
        .expect("streams: reply");
    theirs.finish().await.expect("streams: reply finish");
    assert_eq!(
        ours.recv().await.expect("streams: recv reply").as_deref(),
        Some(&b"back"[..])
    );
    assert_eq!(
        ours.recv().await.expect("streams: end").as_deref(),
        None,
        "streams: no end after finish"
    );
}
