//! Round-trip latency of the public API over real TLS on 127.0.0.1 (one connection, debug
//! build): prints P50/P99 of a read (Workloads.Get) and a mutation (Workloads.Scale, with its
//! idempotency key) and bounds them loosely so a pathological regression (a per-call
//! handshake, a stuck lock) fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_common;

use std::time::{Duration, Instant};

use api_common::{TestApi, workload_manifest};

const CALLS: usize = 200;

fn percentiles(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    let p = |q: f64| d[((d.len() as f64 * q) as usize).min(d.len() - 1)];
    (p(0.5), p(0.99))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_scale_round_trips() {
    let api = TestApi::start().await;
    let c = api.admin_client();
    c.create_workload(&workload_manifest("web", 1))
        .await
        .expect("create");
    let mut gets = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        c.get_workload("demo", "web").await.expect("get");
        gets.push(t.elapsed());
    }
    let mut scales = Vec::with_capacity(CALLS);
    for i in 0..CALLS {
        let t = Instant::now();
        let replicas = u32::try_from(i % 5 + 1).expect("small");
        c.scale("demo", "web", replicas).await.expect("scale");
        scales.push(t.elapsed());
    }
    let (g50, g99) = percentiles(gets);
    let (s50, s99) = percentiles(scales);
    println!(
        "api latency over TLS, {CALLS} calls each: get P50 {g50:?} P99 {g99:?}; scale P50 {s50:?} P99 {s99:?}"
    );
    assert!(g99 < Duration::from_secs(1), "get P99 {g99:?}");
    assert!(s99 < Duration::from_secs(1), "scale P99 {s99:?}");
}
