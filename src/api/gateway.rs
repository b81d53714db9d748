//! The HTTP/JSON gateway: the workload and node calls as JSON over HTTP/1.1, on its own port
//! with the same TLS 1.3 + client-certificate acceptor. Each route calls the gRPC service
//! implementation in-process with the connection's identity, so authorization, forwarding to
//! the leader and errors are exactly those of the gRPC API.
//!
//! | route | call |
//! |---|---|
//! | `GET /v1/workloads?namespace=` | Workloads.List |
//! | `POST /v1/workloads` `{manifest, idempotencyKey}` | Workloads.Create |
//! | `PUT /v1/workloads` `{manifest, expectedGeneration, idempotencyKey}` | Workloads.Update |
//! | `POST /v1/apply` `{manifest, idempotencyKey}` | Workloads.Apply |
//! | `GET`/`DELETE /v1/workloads/{namespace}/{name}` | Get / Delete |
//! | `POST /v1/workloads/{namespace}/{name}/scale` `{replicas}` | Scale |
//! | `GET /v1/workloads/{namespace}/{name}/rollout` | RolloutStatus |
//! | `POST /v1/workloads/{namespace}/{name}/rollout/pause` (`/resume`) | PauseRollout / ResumeRollout |
//! | `GET /v1/workloads/{namespace}/{name}/logs?replica=&tailLines=&fromOffset=` | Logs (no follow; `text/plain`) |
//! | `GET /v1/nodes`, `GET /v1/nodes/{name}` | Nodes.List / Get |
//! | `POST /v1/nodes/{name}/cordon` (`/drain`, `/uncordon`) | Cordon / Drain / Uncordon |
//! | `DELETE /v1/nodes/{name}?revoke=` | Remove |
//!
//! Mutations without a key in the body take the `Idempotency-Key` header. Errors are
//! `{code, message, fieldPaths, leader, leaderAddress}` with the HTTP status of the gRPC code.

use std::sync::Arc;

use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::IncomingStream;
use axum::{Json, Router};
use tonic::{Code, Status};

use super::auth::ApiPeer;
use super::nodes::NodesApi;
use super::pb::nodes_server::Nodes;
use super::pb::workloads_server::Workloads;
use super::tls::AuthedStream;
use super::workloads::WorkloadsApi;
use super::{FIELD_PATHS_KEY, LEADER_ADDR_KEY, LEADER_KEY, pb};

/// Accepted connections, already authenticated.
pub(crate) struct GatewayListener {
    pub(crate) incoming: tokio::sync::mpsc::Receiver<Result<AuthedStream, std::io::Error>>,
    pub(crate) local_addr: std::net::SocketAddr,
}

impl axum::serve::Listener for GatewayListener {
    type Io = AuthedStream;
    type Addr = ApiPeer;

    async fn accept(&mut self) -> (AuthedStream, ApiPeer) {
        loop {
            match self.incoming.recv().await {
                Some(Ok(s)) => {
                    let peer = s.peer().clone();
                    return (s, peer);
                }
                Some(Err(_)) => continue,
                // The acceptor stopped: wait for the graceful shutdown to end the server.
                None => std::future::pending::<()>().await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<ApiPeer> {
        Err(std::io::Error::other(format!(
            "the gateway on {} has no single peer address",
            self.local_addr
        )))
    }
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, GatewayListener>> for ApiPeer {
    fn connect_info(stream: IncomingStream<'_, GatewayListener>) -> Self {
        stream.remote_addr().clone()
    }
}

#[derive(Clone)]
struct Gw {
    workloads: Arc<WorkloadsApi>,
    nodes: Arc<NodesApi>,
}

/// A gRPC status as an HTTP answer.
struct GwError(Status);

impl From<Status> for GwError {
    fn from(s: Status) -> Self {
        GwError(s)
    }
}

fn http_status(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument => StatusCode::BAD_REQUEST,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists => StatusCode::CONFLICT,
        Code::FailedPrecondition => StatusCode::PRECONDITION_FAILED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::OutOfRange | Code::ResourceExhausted => StatusCode::PAYLOAD_TOO_LARGE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for GwError {
    fn into_response(self) -> Response {
        let s = self.0;
        let meta = |k: &str| {
            s.metadata()
                .get(k)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let field_paths: Vec<String> = meta(FIELD_PATHS_KEY)
            .map(|v| v.split(',').map(str::to_owned).collect())
            .unwrap_or_default();
        let body = serde_json::json!({
            "code": format!("{:?}", s.code()),
            "message": s.message(),
            "fieldPaths": field_paths,
            "leader": meta(LEADER_KEY),
            "leaderAddress": meta(LEADER_ADDR_KEY),
        });
        let mut resp = (http_status(s.code()), Json(body)).into_response();
        for key in [LEADER_KEY, LEADER_ADDR_KEY] {
            if let Some(v) = meta(key).and_then(|v| HeaderValue::from_str(&v).ok()) {
                resp.headers_mut().insert(key, v);
            }
        }
        resp
    }
}

type GwResult<T> = Result<Json<T>, GwError>;

fn req<T>(peer: ApiPeer, msg: T) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.extensions_mut().insert(peer);
    r
}

fn key_from(headers: &HeaderMap, body_key: String) -> String {
    if !body_key.is_empty() {
        return body_key;
    }
    headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

fn wref(namespace: String, name: String) -> Option<pb::WorkloadRef> {
    Some(pb::WorkloadRef { namespace, name })
}

fn nref(name: String) -> Option<pb::NodeRef> {
    Some(pb::NodeRef { name, id: 0 })
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct NamespaceQuery {
    namespace: String,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct RemoveQuery {
    revoke: bool,
    reason: String,
}

async fn list_workloads(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    Query(q): Query<NamespaceQuery>,
) -> GwResult<pb::ListWorkloadsResponse> {
    let msg = pb::ListWorkloadsRequest {
        namespace: q.namespace,
    };
    Ok(Json(gw.workloads.list(req(peer, msg)).await?.into_inner()))
}

async fn create_workload(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    headers: HeaderMap,
    Json(mut msg): Json<pb::CreateWorkloadRequest>,
) -> GwResult<pb::WorkloadResponse> {
    msg.idempotency_key = key_from(&headers, msg.idempotency_key);
    Ok(Json(
        gw.workloads.create(req(peer, msg)).await?.into_inner(),
    ))
}

async fn update_workload(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    headers: HeaderMap,
    Json(mut msg): Json<pb::UpdateWorkloadRequest>,
) -> GwResult<pb::WorkloadResponse> {
    msg.idempotency_key = key_from(&headers, msg.idempotency_key);
    Ok(Json(
        gw.workloads.update(req(peer, msg)).await?.into_inner(),
    ))
}

async fn apply(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    headers: HeaderMap,
    Json(mut msg): Json<pb::ApplyRequest>,
) -> GwResult<pb::ApplyResponse> {
    msg.idempotency_key = key_from(&headers, msg.idempotency_key);
    Ok(Json(gw.workloads.apply(req(peer, msg)).await?.into_inner()))
}

async fn get_workload(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    Path((namespace, name)): Path<(String, String)>,
) -> GwResult<pb::WorkloadResponse> {
    let msg = pb::GetWorkloadRequest {
        workload: wref(namespace, name),
    };
    Ok(Json(gw.workloads.get(req(peer, msg)).await?.into_inner()))
}

async fn delete_workload(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> GwResult<pb::DeleteWorkloadResponse> {
    let msg = pb::DeleteWorkloadRequest {
        workload: wref(namespace, name),
        idempotency_key: key_from(&headers, String::new()),
    };
    Ok(Json(
        gw.workloads.delete(req(peer, msg)).await?.into_inner(),
    ))
}

async fn scale(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
    Json(mut msg): Json<pb::ScaleWorkloadRequest>,
) -> GwResult<pb::WorkloadResponse> {
    msg.workload = wref(namespace, name);
    msg.idempotency_key = key_from(&headers, msg.idempotency_key);
    Ok(Json(gw.workloads.scale(req(peer, msg)).await?.into_inner()))
}

async fn rollout_status(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    Path((namespace, name)): Path<(String, String)>,
) -> GwResult<pb::RolloutStatusResponse> {
    let msg = pb::RolloutStatusRequest {
        workload: wref(namespace, name),
    };
    Ok(Json(
        gw.workloads
            .rollout_status(req(peer, msg))
            .await?
            .into_inner(),
    ))
}

async fn rollout_control(
    gw: Gw,
    peer: ApiPeer,
    headers: &HeaderMap,
    namespace: String,
    name: String,
    pause: bool,
) -> GwResult<pb::RolloutStatusResponse> {
    let msg = pb::RolloutControlRequest {
        workload: wref(namespace, name),
        idempotency_key: key_from(headers, String::new()),
    };
    let r = if pause {
        gw.workloads.pause_rollout(req(peer, msg)).await?
    } else {
        gw.workloads.resume_rollout(req(peer, msg)).await?
    };
    Ok(Json(r.into_inner()))
}

async fn pause_rollout(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> GwResult<pb::RolloutStatusResponse> {
    rollout_control(gw, peer, &headers, namespace, name, true).await
}

async fn resume_rollout(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    headers: HeaderMap,
    Path((namespace, name)): Path<(String, String)>,
) -> GwResult<pb::RolloutStatusResponse> {
    rollout_control(gw, peer, &headers, namespace, name, false).await
}

async fn list_nodes(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
) -> GwResult<pb::ListNodesResponse> {
    Ok(Json(
        gw.nodes
            .list(req(peer, pb::ListNodesRequest {}))
            .await?
            .into_inner(),
    ))
}

async fn get_node(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    Path(name): Path<String>,
) -> GwResult<pb::NodeResponse> {
    let msg = pb::GetNodeRequest { node: nref(name) };
    Ok(Json(gw.nodes.get(req(peer, msg)).await?.into_inner()))
}

async fn node_action(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    headers: HeaderMap,
    Path((name, action)): Path<(String, String)>,
) -> GwResult<pb::NodeResponse> {
    let msg = pb::NodeActionRequest {
        node: nref(name),
        idempotency_key: key_from(&headers, String::new()),
    };
    let r = match action.as_str() {
        "cordon" => gw.nodes.cordon(req(peer, msg)).await?,
        "drain" => gw.nodes.drain(req(peer, msg)).await?,
        "uncordon" => gw.nodes.uncordon(req(peer, msg)).await?,
        other => {
            return Err(GwError(Status::not_found(format!(
                "no node action {other:?} (cordon, drain or uncordon)"
            ))));
        }
    };
    Ok(Json(r.into_inner()))
}

async fn remove_node(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<RemoveQuery>,
) -> GwResult<pb::RemoveNodeResponse> {
    let msg = pb::RemoveNodeRequest {
        node: nref(name),
        revoke: q.revoke,
        reason: q.reason,
        idempotency_key: key_from(&headers, String::new()),
    };
    Ok(Json(gw.nodes.remove(req(peer, msg)).await?.into_inner()))
}

/// Largest log body the gateway returns (the rest is cut, `cloudless-truncated: true`).
const MAX_LOG_BODY: usize = 16 * 1024 * 1024;

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct LogsQuery {
    replica: u64,
    tail_lines: u32,
    from_offset: u64,
    follow: bool,
}

/// `GET /v1/workloads/{namespace}/{name}/logs?replica=&tailLines=&fromOffset=`: the log bytes
/// so far as `text/plain` (follow is served by gRPC only). With one replica the
/// `cloudless-next-offset` header says where to resume.
async fn workload_logs(
    State(gw): State<Gw>,
    ConnectInfo(peer): ConnectInfo<ApiPeer>,
    Path((namespace, name)): Path<(String, String)>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, GwError> {
    if q.follow {
        return Err(GwError(Status::invalid_argument(
            "follow: the gateway returns the log so far; follow with the gRPC Logs call",
        )));
    }
    let msg = pb::LogsRequest {
        workload: wref(namespace, name),
        replica: q.replica,
        follow: false,
        tail_lines: q.tail_lines,
        from_offset: q.from_offset,
    };
    let mut stream = gw.workloads.logs(req(peer, msg)).await?.into_inner();
    let mut body = Vec::new();
    let mut next_offset = None;
    let mut truncated = false;
    while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
        let chunk = chunk?;
        if body.len() + chunk.data.len() > MAX_LOG_BODY {
            truncated = true;
            break;
        }
        next_offset = Some(chunk.offset.saturating_add(chunk.data.len() as u64));
        body.extend_from_slice(&chunk.data);
    }
    let mut resp = (
        StatusCode::OK,
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain"),
        )],
        body,
    )
        .into_response();
    if truncated {
        resp.headers_mut()
            .insert("cloudless-truncated", HeaderValue::from_static("true"));
    }
    if let (Some(o), true) = (next_offset, q.replica != 0) {
        resp.headers_mut()
            .insert("cloudless-next-offset", HeaderValue::from(o));
    }
    Ok(resp)
}

/// The gateway's routes over the given service implementations.
pub(crate) fn router(
    workloads: Arc<WorkloadsApi>,
    nodes: Arc<NodesApi>,
    max_request_bytes: usize,
) -> Router {
    Router::new()
        .route(
            "/v1/workloads",
            get(list_workloads)
                .post(create_workload)
                .put(update_workload),
        )
        .route("/v1/apply", post(apply))
        .route(
            "/v1/workloads/{namespace}/{name}",
            get(get_workload).delete(delete_workload),
        )
        .route("/v1/workloads/{namespace}/{name}/scale", post(scale))
        .route(
            "/v1/workloads/{namespace}/{name}/rollout",
            get(rollout_status),
        )
        .route(
            "/v1/workloads/{namespace}/{name}/rollout/pause",
            post(pause_rollout),
        )
        .route(
            "/v1/workloads/{namespace}/{name}/rollout/resume",
            post(resume_rollout),
        )
        .route("/v1/workloads/{namespace}/{name}/logs", get(workload_logs))
        .route("/v1/nodes", get(list_nodes))
        .route("/v1/nodes/{name}", get(get_node).delete(remove_node))
        .route("/v1/nodes/{name}/{action}", post(node_action))
        .layer(DefaultBodyLimit::max(max_request_bytes))
        .with_state(Gw { workloads, nodes })
}
