//! The agent's side of replica streams: logs and exec for coordinators (design record:
//! `docs/design/logs-exec.md`; the wire is in [`crate::protocol::replica_stream`]).
//!
//! [`ReplicaHost`] reads a replica's log and runs commands in it through the [`Runtime`];
//! [`serve_replica_streams`] accepts the byte streams coordinators open to this node and
//! answers them from a `ReplicaHost`. Only coordinator identities of this node's cluster are
//! served. A stream's work stops as soon as the coordinator's end goes away: a write fails
//! (flow control makes a slow reader block the agent, never buffer without bound) or the
//! coordinator's side of the stream ends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use cloudless_core::ids::ReplicaId;
use cloudless_core::runtime::{ContainerId, ContainerState, Runtime, RuntimeError};
use cloudless_core::transport::{ByteStream, PeerIdentity, Role, Transport, TransportError};
use cloudless_net::StatusCode;
use cloudless_net::wire::pb;
use cloudless_runtime::supervisor::parse_container_id;
use futures::StreamExt;
use prost::bytes::Bytes;
use tokio::task::{JoinHandle, JoinSet};

use crate::protocol::replica_stream::{
    ExecQuery, ExecResult, LogData, LogStream, LogsQuery, MAX_EXEC_OUTPUT, MAX_EXEC_TIMEOUT,
    MAX_LOG_CHUNK, MessageReader, RemoteError, error_response, exec_from_wire, exec_result_to_wire,
    logs_from_wire, response, write_message,
};

/// How long a coordinator has to send its request after opening a stream.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Streams served at once; more are refused with ResourceExhausted.
pub const MAX_CONCURRENT_STREAMS: usize = 64;

/// Reads replicas' logs and runs commands in them on this node's runtime.
pub struct ReplicaHost {
    runtime: Arc<dyn Runtime>,
}

impl std::fmt::Debug for ReplicaHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReplicaHost")
            .field("runtime", &self.runtime.name())
            .finish()
    }
}

fn runtime_error(e: RuntimeError) -> RemoteError {
    let code = match &e {
        RuntimeError::NotFound(_) | RuntimeError::InvalidState(_) => StatusCode::FailedPrecondition,
        RuntimeError::InvalidSpec(_) => StatusCode::InvalidArgument,
        RuntimeError::Unsupported(_) => StatusCode::Unimplemented,
        RuntimeError::Unavailable(_) => StatusCode::Unavailable,
        RuntimeError::Timeout => StatusCode::DeadlineExceeded,
        _ => StatusCode::Internal,
    };
    RemoteError::new(code, e.to_string())
}

/// `data` cut to `MAX_EXEC_OUTPUT` bytes, and whether it was cut.
fn capped(data: Bytes) -> (Bytes, bool) {
    if data.len() > MAX_EXEC_OUTPUT {
        (data.slice(..MAX_EXEC_OUTPUT), true)
    } else {
        (data, false)
    }
}

impl ReplicaHost {
    /// A host on `runtime`.
    pub fn new(runtime: Arc<dyn Runtime>) -> Self {
        Self { runtime }
    }

    /// The replica's current container: its latest attempt (the running one, if any runs).
    async fn container(
        &self,
        replica: ReplicaId,
    ) -> Result<(ContainerId, ContainerState), RemoteError> {
        let all = self.runtime.list().await.map_err(runtime_error)?;
        all.into_iter()
            .filter_map(|c| {
                let (r, attempt) = parse_container_id(&c.id)?;
                (r == replica).then_some((c.state == ContainerState::Running, attempt, c))
            })
            .max_by_key(|(running, attempt, _)| (*running, *attempt))
            .map(|(_, _, c)| (c.id, c.state))
            .ok_or_else(|| {
                RemoteError::new(
                    StatusCode::FailedPrecondition,
                    format!(
                        "replica {replica} has no container on this node (not started yet, or removed)"
                    ),
                )
            })
    }

    /// The offset of the last `lines` lines at or after `from`.
    async fn tail_start(
        &self,
        id: &ContainerId,
        from: u64,
        lines: u32,
    ) -> Result<u64, RemoteError> {
        let n = usize::try_from(lines).unwrap_or(usize::MAX);
        let mut chunks = self
            .runtime
            .logs(id, from, false)
            .await
            .map_err(runtime_error)?;
        // Start offsets of the last n+1 lines seen (the last may be the end of the log).
        let mut starts = VecDeque::from([from]);
        let mut end = from;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk.map_err(runtime_error)?;
            for (i, b) in chunk.data.iter().enumerate() {
                if *b == b'\n' {
                    starts.push_back(chunk.offset.saturating_add(i as u64 + 1));
                    if starts.len() > n.saturating_add(1) {
                        starts.pop_front();
                    }
                }
            }
            end = chunk.offset.saturating_add(chunk.data.len() as u64);
        }
        if starts.len() > 1 && starts.back() == Some(&end) {
            starts.pop_back();
        }
        while starts.len() > n {
            starts.pop_front();
        }
        Ok(starts.front().copied().unwrap_or(end))
    }

    /// The replica's log from `query.from_offset` (or its last `tail_lines` lines), in pieces of
    /// at most [`MAX_LOG_CHUNK`] bytes; with `follow`, until the container exits.
    pub async fn logs(&self, query: LogsQuery) -> Result<LogStream, RemoteError> {
        let (id, _) = self.container(query.replica).await?;
        let start = if query.tail_lines > 0 {
            self.tail_start(&id, query.from_offset, query.tail_lines)
                .await?
        } else {
            query.from_offset
        };
        let chunks = self
            .runtime
            .logs(&id, start, query.follow)
            .await
            .map_err(runtime_error)?;
        Ok(chunks
            .flat_map(|c| {
                let pieces: Vec<Result<LogData, RemoteError>> = match c {
                    Ok(c) => {
                        let mut out = Vec::new();
                        let mut data = c.data;
                        let mut offset = c.offset;
                        while !data.is_empty() {
                            let piece = data.split_to(data.len().min(MAX_LOG_CHUNK));
                            let len = piece.len() as u64;
                            out.push(Ok(LogData {
                                offset,
                                data: piece,
                            }));
                            offset = offset.saturating_add(len);
                        }
                        out
                    }
                    Err(e) => vec![Err(runtime_error(e))],
                };
                futures::stream::iter(pieces)
            })
            .boxed())
    }

    /// Runs `query.command` in the replica's running container; output is capped at
    /// [`MAX_EXEC_OUTPUT`] bytes per stream.
    pub async fn exec(&self, query: ExecQuery) -> Result<ExecResult, RemoteError> {
        if query.command.is_empty() {
            return Err(RemoteError::new(
                StatusCode::InvalidArgument,
                "command: a command is required",
            ));
        }
        let (id, state) = self.container(query.replica).await?;
        if state != ContainerState::Running {
            return Err(RemoteError::new(
                StatusCode::FailedPrecondition,
                format!(
                    "replica {} is not running (its container {id} is {state:?})",
                    query.replica
                ),
            ));
        }
        let timeout = query.timeout.min(MAX_EXEC_TIMEOUT);
        let timeout_ms = u64::try_from(timeout.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let out = self
            .runtime
            .exec(&id, &query.command, timeout_ms)
            .await
            .map_err(|e| match e {
                RuntimeError::Timeout => RemoteError::new(
                    StatusCode::DeadlineExceeded,
                    format!(
                        "command in replica {} ran longer than {} ms",
                        query.replica, timeout_ms
                    ),
                ),
                e => runtime_error(e),
            })?;
        let (stdout, stdout_truncated) = capped(out.stdout);
        let (stderr, stderr_truncated) = capped(out.stderr);
        Ok(ExecResult {
            exit_code: out.exit_code,
            stdout,
            stderr,
            stdout_truncated,
            stderr_truncated,
        })
    }
}

/// A running replica stream server. Dropping it stops it and every stream it serves.
#[derive(Debug)]
pub struct ReplicaStreamServer {
    task: JoinHandle<()>,
}

impl Drop for ReplicaStreamServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Serves the replica streams coordinators open on `transport` from `runtime`. The server takes
/// the transport's `accept_stream` (one consumer per the Transport contract).
pub fn serve_replica_streams(
    transport: Arc<dyn Transport>,
    runtime: Arc<dyn Runtime>,
) -> ReplicaStreamServer {
    let host = Arc::new(ReplicaHost::new(runtime));
    let task = tokio::spawn(async move {
        let cluster = transport.local().cluster.clone();
        let mut running = JoinSet::new();
        loop {
            tokio::select! {
                accepted = transport.accept_stream() => match accepted {
                    Ok((peer, stream)) => {
                        if running.len() >= MAX_CONCURRENT_STREAMS {
                            running.spawn(refuse(stream, RemoteError::new(
                                StatusCode::ResourceExhausted,
                                format!("this agent serves at most {MAX_CONCURRENT_STREAMS} log/exec streams at once"),
                            )));
                        } else {
                            running.spawn(serve_one(peer, stream, Arc::clone(&host), cluster.clone()));
                        }
                    }
                    Err(TransportError::Closed) => return,
                    Err(e) => tracing::debug!("accepting a replica stream: {e}"),
                },
                Some(_) = running.join_next(), if !running.is_empty() => {}
            }
        }
    });
    ReplicaStreamServer { task }
}

async fn refuse(mut stream: Box<dyn ByteStream>, e: RemoteError) {
    let _ = write_message(stream.as_mut(), &error_response(&e)).await;
    let _ = stream.finish().await;
}

/// May `peer` read logs and run commands here?
fn authorize(peer: &PeerIdentity, cluster: &str) -> Result<(), RemoteError> {
    if peer.role == Role::Coordinator && peer.cluster == cluster {
        Ok(())
    } else {
        Err(RemoteError::new(
            StatusCode::PermissionDenied,
            format!(
                "{peer} may not read logs or run commands here (a coordinator of cluster {cluster} is required)"
            ),
        ))
    }
}

async fn serve_one(
    peer: PeerIdentity,
    stream: Box<dyn ByteStream>,
    host: Arc<ReplicaHost>,
    cluster: String,
) {
    if let Err(e) = authorize(&peer, &cluster) {
        tracing::warn!(%peer, "replica stream refused: {}", e.message);
        return refuse(stream, e).await;
    }
    let mut reader = MessageReader::new(stream);
    let request = match tokio::time::timeout(
        REQUEST_TIMEOUT,
        reader.next::<pb::ReplicaStreamRequest>(),
    )
    .await
    {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => return tracing::debug!(%peer, "replica stream request not read: {e}"),
        Err(_) => return tracing::debug!(%peer, "replica stream: no request in time"),
    };
    let result = match request.op {
        Some(pb::replica_stream_request::Op::Logs(q)) => {
            serve_logs(&mut reader, &host, logs_from_wire(&q)).await
        }
        Some(pb::replica_stream_request::Op::Exec(q)) => match exec_from_wire(q) {
            Ok(q) => serve_exec(&mut reader, &host, q).await,
            Err(e) => write_message(reader.stream(), &error_response(&e)).await,
        },
        None => {
            let e = RemoteError::new(
                StatusCode::InvalidArgument,
                "op: unknown or missing operation (a newer coordinator?)",
            );
            write_message(reader.stream(), &error_response(&e)).await
        }
    };
    match result {
        Ok(()) => {
            let _ = reader.stream().finish().await;
        }
        Err(e) => tracing::debug!(%peer, "replica stream ended: {e}"),
    }
}

async fn serve_logs(
    reader: &mut MessageReader,
    host: &ReplicaHost,
    query: LogsQuery,
) -> Result<(), TransportError> {
    use pb::replica_stream_response::Item;
    let mut logs = match host.logs(query).await {
        Ok(l) => l,
        Err(e) => return write_message(reader.stream(), &error_response(&e)).await,
    };
    write_message(
        reader.stream(),
        &response(Item::Accepted(pb::ReplicaStreamAccepted {
            container: String::new(),
        })),
    )
    .await?;
    loop {
        let next = tokio::select! {
            item = logs.next() => item,
            // The coordinator writes nothing after its request: its side ending (or anything
            // else arriving) means the reader left.
            _ = reader.next::<pb::ReplicaStreamRequest>() => {
                return Err(TransportError::ConnectionLost("the coordinator left".into()));
            }
        };
        let msg = match next {
            Some(Ok(d)) => response(Item::Log(pb::ReplicaLogData {
                offset: d.offset,
                data: d.data,
            })),
            Some(Err(e)) => return write_message(reader.stream(), &error_response(&e)).await,
            None => {
                return write_message(
                    reader.stream(),
                    &response(Item::LogsEnd(pb::ReplicaLogsEnd {})),
                )
                .await;
            }
        };
        write_message(reader.stream(), &msg).await?;
    }
}

async fn serve_exec(
    reader: &mut MessageReader,
    host: &ReplicaHost,
    query: ExecQuery,
) -> Result<(), TransportError> {
    let outcome = tokio::select! {
        r = host.exec(query) => r,
        _ = reader.next::<pb::ReplicaStreamRequest>() => {
            return Err(TransportError::ConnectionLost("the coordinator left".into()));
        }
    };
    let msg = match outcome {
        Ok(r) => response(pb::replica_stream_response::Item::Exec(
            exec_result_to_wire(&r),
        )),
        Err(e) => error_response(&e),
    };
    write_message(reader.stream(), &msg).await
}
