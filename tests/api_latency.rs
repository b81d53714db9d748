//! Round-trip latency of the public API over real TLS on 127.0.0.1 (one connection, debug
//! build): prints P50/P99 of a read (Workloads.Get) and a mutation (Workloads.Scale, with its
//! idempotency key). The figures are printed, not asserted (a loaded CI machine must not fail a
//! wall-clock bound; `benches/` measure speed). What a pathological regression would break is
//! asserted instead: every call is answered (a stuck lock fails the per-call deadline) and the
//! calls share one TLS connection (a per-call handshake shows in the handshake count).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use api_common::{TestApi, workload_manifest};
use cloudless::Client;

const CALLS: usize = 200;

/// Generous: a call on a loaded machine is slow, a stuck one never ends.
const CALL_DEADLINE: Duration = Duration::from_secs(30);

fn percentiles(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    let p = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)];
    (p(0.5), p(0.99))
}

/// Counts the client's TLS 1.3 handshakes: rustls hands each one's client handshake secret to
/// the key log once.
#[derive(Debug, Default)]
struct Handshakes(AtomicUsize);

impl rustls::KeyLog for Handshakes {
    fn log(&self, label: &str, _client_random: &[u8], _secret: &[u8]) {
        if label == "CLIENT_HANDSHAKE_TRAFFIC_SECRET" {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn will_log(&self, label: &str) -> bool {
        label == "CLIENT_HANDSHAKE_TRAFFIC_SECRET"
    }
}

async fn timed<T, E: std::fmt::Debug>(
    what: &str,
    call: impl std::future::Future<Output = Result<T, E>>,
) -> Duration {
    let t = Instant::now();
    tokio::time::timeout(CALL_DEADLINE, call)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {CALL_DEADLINE:?}"))
        .unwrap_or_else(|e| panic!("{what}: {e:?}"));
    t.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_scale_round_trips() {
    let api = TestApi::start().await;
    let handshakes = Arc::new(Handshakes::default());
    let mut tls = cloudless_net::identity::tls::client_config(
        api.ca.cert(),
        Some(&api.admin),
        cloudless::api::ALPN,
    )
    .expect("tls");
    tls.key_log = handshakes.clone();
    let c = Client::with_rustls([api.addr()], Arc::new(tls)).expect("client");
    c.create_workload(&workload_manifest("web", 1))
        .await
        .expect("create");
    let mut gets = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        gets.push(timed("get", c.get_workload("demo", "web")).await);
    }
    let mut scales = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let replicas = u32::try_from(i % 5 + 1).expect("small");
        scales.push(timed("scale", c.scale("demo", "web", replicas)).await);
    }
    let (g50, g99) = percentiles(gets);
    let (s50, s99) = percentiles(scales);
    let handshakes = handshakes.0.load(Ordering::SeqCst);
    println!(
        "api latency over TLS, {CALLS} calls each: get P50 {g50:?} P99 {g99:?}; scale P50 {s50:?} P99 {s99:?}; {handshakes} TLS handshake(s)"
    );
    // One connection for all the calls (a second one only if the first broke).
    assert!(
        (1..=2).contains(&handshakes),
        "{handshakes} TLS handshakes for {} calls",
        2 * CALLS + 1
    );
}
