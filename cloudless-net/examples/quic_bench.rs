//! Measures QuicTransport on loopback: typed-RPC round-trip latency (P50/P99), and bulk
//! throughput over byte streams (1 and 4 streams) through our layer and through raw quinn with
//! the same TLS configuration, in the same run.
//!
//! `cargo run --release -p cloudless-net --example quic_bench [MiB per run, default 1024]`

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role, Transport};
use cloudless_net::identity::{ClusterCa, DEFAULT_NODE_LIFETIME, NodeCredentials, NodeKey, tls};
use cloudless_net::quic::{ALPN, QuicConfig, QuicTransport};
use cloudless_net::wire::pb;
use cloudless_net::{Method, Router, RpcConfig, RpcEndpoint};

const CHUNK: usize = 256 * 1024;
const CALLS: usize = 5_000;
const PING: Method<pb::NodeId, pb::NodeId> = Method::new("bench.v1.Ping/Ping");

fn creds(ca: &ClusterCa, role: Role, node: u64) -> anyhow::Result<NodeCredentials> {
    let key = NodeKey::generate()?;
    let id = PeerIdentity {
        cluster: ca.cluster().to_owned(),
        role,
        node: NodeId(node),
    };
    let cert = ca.issue(&key.csr()?, &id, SystemTime::now(), DEFAULT_NODE_LIFETIME)?;
    Ok(NodeCredentials::new(&key, cert, ca.cert().clone())?)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn mb_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

async fn rpc_latency(a: Arc<QuicTransport>, b: Arc<QuicTransport>) -> anyhow::Result<()> {
    let mut router = Router::new();
    router.unary(&PING, |_ctx, req: pb::NodeId| async move { Ok(req) });
    let _server = RpcEndpoint::start(b.clone(), router, RpcConfig::default())?;
    let client_ep = RpcEndpoint::start(a, Router::new(), RpcConfig::default())?;
    let client = client_ep.client();
    let to = b.local().node;
    let second = Duration::from_secs(5);
    for i in 0..200 {
        client
            .call(to, &PING, pb::NodeId { value: i }, second)
            .await?;
    }
    let mut times = Vec::with_capacity(CALLS);
    for i in 0..CALLS as u64 {
        let t = Instant::now();
        client
            .call(to, &PING, pb::NodeId { value: i }, second)
            .await?;
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "rpc round trip ({CALLS} sequential unary calls): P50 {:?}  P99 {:?}",
        percentile(&times, 0.50),
        percentile(&times, 0.99)
    );
    Ok(())
}

async fn ours(
    a: &QuicTransport,
    b: Arc<QuicTransport>,
    streams: usize,
    total: usize,
) -> anyhow::Result<f64> {
    let per = total / streams;
    let receiver = tokio::spawn(async move {
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let (_, mut s) = b.accept_stream().await?;
            tasks.push(tokio::spawn(async move {
                let mut n = 0usize;
                while let Some(c) = s.recv().await? {
                    n += c.len();
                }
                anyhow::Ok(n)
            }));
        }
        let mut n = 0;
        for t in tasks {
            n += t.await??;
        }
        anyhow::Ok(n)
    });
    let chunk = Bytes::from(vec![7u8; CHUNK]);
    let start = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..streams {
        let mut s = a.open_stream(NodeId(2)).await?;
        let chunk = chunk.clone();
        senders.push(tokio::spawn(async move {
            for _ in 0..per / CHUNK {
                s.send(chunk.clone()).await?;
            }
            s.finish().await?;
            // Wait for the peer to finish its side, so the data is known to be delivered.
            while s.recv().await?.is_some() {}
            anyhow::Ok(())
        }));
    }
    let got = receiver.await??;
    let elapsed = start.elapsed();
    for s in senders {
        s.await??;
    }
    anyhow::ensure!(got == streams * (per / CHUNK) * CHUNK, "lost bytes");
    Ok(mb_per_s(got, elapsed))
}

async fn raw(
    creds_a: &NodeCredentials,
    creds_b: &NodeCredentials,
    streams: usize,
    total: usize,
) -> anyhow::Result<f64> {
    let server = quinn::crypto::rustls::QuicServerConfig::try_from(Arc::new(tls::server_config(
        creds_b, ALPN,
    )?))?;
    let server = quinn::ServerConfig::with_crypto(Arc::new(server));
    let b = quinn::Endpoint::server(server, "127.0.0.1:0".parse()?)?;
    let client = quinn::crypto::rustls::QuicClientConfig::try_from(Arc::new(tls::client_config(
        creds_a.ca(),
        Some(creds_a),
        ALPN,
    )?))?;
    let mut a = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    a.set_default_client_config(quinn::ClientConfig::new(Arc::new(client)));
    let addr = b.local_addr()?;
    let per = total / streams;
    let receiver = tokio::spawn(async move {
        let conn = b
            .accept()
            .await
            .ok_or_else(|| anyhow::anyhow!("no connection"))?
            .await?;
        let mut tasks = Vec::new();
        for _ in 0..streams {
            let (mut send, mut recv) = conn.accept_bi().await?;
            tasks.push(tokio::spawn(async move {
                let mut n = 0usize;
                while let Some(c) = recv.read_chunk(CHUNK, true).await? {
                    n += c.bytes.len();
                }
                send.finish()?;
                anyhow::Ok(n)
            }));
        }
        let mut n = 0;
        for t in tasks {
            n += t.await??;
        }
        conn.closed().await;
        anyhow::Ok(n)
    });
    let conn = a.connect(addr, "cloudless")?.await?;
    let chunk = Bytes::from(vec![7u8; CHUNK]);
    let start = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..streams {
        let (mut send, mut recv) = conn.open_bi().await?;
        let chunk = chunk.clone();
        senders.push(tokio::spawn(async move {
            for _ in 0..per / CHUNK {
                send.write_chunk(chunk.clone()).await?;
            }
            send.finish()?;
            recv.read_to_end(0).await?;
            anyhow::Ok(())
        }));
    }
    for s in senders {
        s.await??;
    }
    let elapsed = start.elapsed();
    conn.close(0u8.into(), b"done");
    let got = receiver.await??;
    anyhow::ensure!(got == streams * (per / CHUNK) * CHUNK, "lost bytes");
    Ok(mb_per_s(got, elapsed))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let mib: usize = std::env::args()
        .nth(1)
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(1024);
    let total = mib << 20;
    let ca = ClusterCa::init("bench", SystemTime::now())?;
    let (ca_a, ca_b) = (
        creds(&ca, Role::Agent, 1)?,
        creds(&ca, Role::Coordinator, 2)?,
    );
    let any = "127.0.0.1:0".parse()?;
    let a = Arc::new(QuicTransport::bind(any, &ca_a, QuicConfig::default())?);
    let b = Arc::new(QuicTransport::bind(any, &ca_b, QuicConfig::default())?);
    a.connect(&b.local_addr()?.to_string()).await?;
    rpc_latency(a.clone(), b.clone()).await?;
    println!(
        "bulk, {mib} MiB per run in {} KiB writes (MB/s = 10^6 bytes/s):",
        CHUNK / 1024
    );
    for streams in [1, 4] {
        for run in 1..=3 {
            let r = raw(&ca_a, &ca_b, streams, total).await?;
            let o = ours(&a, b.clone(), streams, total).await?;
            println!(
                "  {streams} stream(s), run {run}: raw quinn {r:7.0} MB/s   QuicTransport {o:7.0} MB/s   ({:+.1}%)",
                (o - r) / r * 100.0
            );
        }
    }
    Ok(())
}
