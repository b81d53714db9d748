//! The HTTP/JSON gateway over real TLS: workload and node calls as JSON, the same errors and
//! authorization as gRPC, and refusal of clients without a cluster certificate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api_common;

use std::sync::Arc;

use api_common::{ca, creds, workload_manifest};
use cloudless::api::{self, ApiConfig, ApiTls};
use cloudless_core::clock::SystemClock;
use cloudless_core::consensus::Consensus;
use cloudless_core::transport::Role;
use cloudless_net::identity::{ClusterCa, NodeCredentials, RevokedNodes};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// One HTTP/1.1 request over TLS; the status and the JSON body.
async fn http(
    addr: std::net::SocketAddr,
    ca: &ClusterCa,
    creds: Option<&NodeCredentials>,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> std::io::Result<(u16, serde_json::Value)> {
    let tls = cloudless_net::identity::tls::client_config(ca.cert(), creds, api::GATEWAY_ALPN)
        .expect("tls");
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("127.0.0.1").expect("name");
    let mut s = TlsConnector::from(Arc::new(tls)).connect(name, tcp).await?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: cloudless\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await?;
    s.write_all(body.as_bytes()).await?;
    s.flush().await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| std::io::Error::other(format!("no HTTP answer: {text:?}")))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad status line: {head:?}")))?;
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    Ok((status, json))
}

#[tokio::test]
async fn gateway_serves_workload_and_node_calls_as_json() {
    let ca = ca(api_common::CLUSTER);
    let mem = cloudless_core::testing::consensus::MemConsensus::new();
    let tls = ApiTls {
        credentials: creds(&ca, Role::Coordinator, 1),
        revoked: RevokedNodes::new(),
    };
    let mut config = ApiConfig::new("127.0.0.1:0".parse().unwrap(), tls);
    config.gateway = Some("127.0.0.1:0".parse().unwrap());
    config.max_request_bytes = 64 * 1024;
    let server = api::serve(
        config,
        Arc::new(mem.clone()) as Arc<dyn Consensus>,
        Arc::new(SystemClock),
    )
    .await
    .expect("serve");
    let gw = server.gateway_addr().expect("gateway");
    let admin = creds(&ca, Role::Admin, 0);
    let call = |method: &'static str, path: String, body: Option<serde_json::Value>| {
        let ca = &ca;
        let admin = &admin;
        async move {
            http(gw, ca, Some(admin), method, &path, body)
                .await
                .expect("http")
        }
    };

    let (code, body) = call(
        "POST",
        "/v1/workloads".into(),
        Some(serde_json::json!({ "manifest": workload_manifest("web", 2) })),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["workload"]["name"], "web");
    assert_eq!(body["workload"]["replicas"], 2);

    let (code, body) = call("GET", "/v1/workloads?namespace=demo".into(), None).await;
    assert_eq!(code, 200);
    assert_eq!(body["workloads"].as_array().map(Vec::len), Some(1));

    let (code, body) = call(
        "POST",
        "/v1/workloads/demo/web/scale".into(),
        Some(serde_json::json!({ "replicas": 4 })),
    )
    .await;
    assert_eq!(
        (code, body["workload"]["replicas"].as_u64()),
        (200, Some(4))
    );

    let (code, body) = call("GET", "/v1/workloads/demo/web/rollout".into(), None).await;
    assert_eq!((code, body["desired"].as_u64()), (200, Some(4)));

    let (code, body) = call("GET", "/v1/workloads/demo/nope".into(), None).await;
    assert_eq!((code, body["code"].as_str()), (404, Some("NotFound")));

    let bad = workload_manifest("web2", 1).replace("  replicas: 1\n", "  replicsa: 1\n");
    let (code, body) = call(
        "POST",
        "/v1/workloads".into(),
        Some(serde_json::json!({ "manifest": bad })),
    )
    .await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["fieldPaths"], serde_json::json!(["spec.replicsa"]));

    let (code, _) = call(
        "POST",
        "/v1/workloads".into(),
        Some(serde_json::json!({ "manifest": "#".repeat(128 * 1024) })),
    )
    .await;
    assert_eq!(code, 413, "oversized body");

    let (code, body) = call("GET", "/v1/nodes".into(), None).await;
    assert_eq!(
        (code, body["nodes"].as_array().map(Vec::len)),
        (200, Some(0))
    );
    let (code, _) = call("POST", "/v1/nodes/edge-9/cordon".into(), None).await;
    assert_eq!(code, 404);

    let (code, _) = call("DELETE", "/v1/workloads/demo/web".into(), None).await;
    assert_eq!(code, 200);
    let (_, body) = call("GET", "/v1/workloads".into(), None).await;
    assert_eq!(body["workloads"].as_array().map(Vec::len), Some(0));

    // An agent may not mutate; a client without a certificate or from another CA gets no
    // answer at all.
    let agent = creds(&ca, Role::Agent, 11);
    let (code, body) = http(
        gw,
        &ca,
        Some(&agent),
        "POST",
        "/v1/workloads",
        Some(serde_json::json!({ "manifest": workload_manifest("web", 1) })),
    )
    .await
    .expect("http");
    assert_eq!(
        (code, body["code"].as_str()),
        (403, Some("PermissionDenied"))
    );
    let rogue = creds(&ca_other(), Role::Admin, 0);
    for who in [None, Some(&rogue)] {
        let r = http(gw, &ca, who, "GET", "/v1/workloads", None).await;
        assert!(r.is_err(), "served without a cluster certificate: {r:?}");
    }
    let state = mem.state().await.expect("state");
    assert!(state.workloads.is_empty());
    server.shutdown().await;
}

fn ca_other() -> ClusterCa {
    ca(api_common::CLUSTER)
}
