//! Replica streams: a coordinator reads a replica's container log, or runs a command in its
//! container, on the agent that runs it (design record: `docs/design/logs-exec.md`).
//!
//! ```text
//!  coordinator                                             agent (node N)
//!  AgentStreams::logs(N, q) ──Transport::open_stream(N)──▶ accept_stream ─ peer is a coordinator
//!      write ReplicaStreamRequest (side kept open)           of this cluster? else Error
//!      ◀── Accepted | Error ──────────────────────────────  find the replica's container
//!      ◀── LogData* ─ LogsEnd | Error ────────────────────  Runtime::logs(from, follow)
//!  drop the stream ──────────────────────────────────────▶  send fails / peer side ends: stop
//! ```
//!
//! Messages are `ReplicaStream*` of `control.proto`, each a 4-byte big-endian length then the
//! encoded message, on a transport byte stream the coordinator opens over the connection the
//! agent dialed. Byte streams are flow controlled (QUIC) or bounded (in memory), so a slow
//! reader slows the agent down instead of growing a buffer.

use std::sync::Arc;
use std::time::Duration;

use cloudless_core::ids::{NodeId, ReplicaId};
use cloudless_core::transport::{ByteStream, Transport, TransportError};
use cloudless_net::wire::pb;
use cloudless_net::{CodecError, FrameCodec, FrameDecoder, StatusCode};
use futures::stream::{self, BoxStream, StreamExt};
use prost::Message;
use prost::bytes::{BufMut, Bytes, BytesMut};

use crate::agent::remote::ReplicaHost;

/// Largest log data carried by one message (the agent splits longer runtime chunks).
pub const MAX_LOG_CHUNK: usize = 64 * 1024;
/// Largest exec output kept per stream (stdout, stderr); longer output is cut and flagged.
pub const MAX_EXEC_OUTPUT: usize = 1024 * 1024;
/// Longest exec run the agent accepts.
pub const MAX_EXEC_TIMEOUT: Duration = Duration::from_secs(600);
/// Largest message either side accepts (an exec result with both outputs at the cap fits).
pub const MAX_MESSAGE: usize = 2 * MAX_EXEC_OUTPUT + 64 * 1024;
/// Largest piece written to a byte stream at once.
const WRITE_PIECE: usize = 64 * 1024;

/// A failed or refused replica stream, with the status code the public API answers with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct RemoteError {
    /// The class of failure (NotFound, FailedPrecondition, Unavailable, PermissionDenied, ...).
    pub code: StatusCode,
    /// Detail for humans, naming the replica or node.
    pub message: String,
}

impl RemoteError {
    /// An error with `code` and `message`.
    pub fn new(code: StatusCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::Unavailable, message)
    }

    fn to_wire(&self) -> pb::ReplicaStreamError {
        pb::ReplicaStreamError {
            code: u32::try_from(pb::StatusCode::from(self.code) as i32).unwrap_or(0),
            message: self.message.clone(),
        }
    }

    fn from_wire(e: pb::ReplicaStreamError) -> Self {
        let code = match i32::try_from(e.code) {
            Ok(c) => StatusCode::from_wire(c),
            Err(_) => StatusCode::Unknown,
        };
        Self::new(code, e.message)
    }
}

/// What log bytes to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogsQuery {
    /// The replica.
    pub replica: ReplicaId,
    /// Byte offset in its container's log to start at.
    pub from_offset: u64,
    /// Keep reading new bytes until the container exits or the reader goes away.
    pub follow: bool,
    /// When non-zero: start at the last this many lines at or after `from_offset`.
    pub tail_lines: u32,
}

/// A command to run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecQuery {
    /// The replica.
    pub replica: ReplicaId,
    /// The command and its arguments.
    pub command: Vec<String>,
    /// Longest run (at most [`MAX_EXEC_TIMEOUT`]).
    pub timeout: Duration,
}

/// Bytes of a container's combined log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogData {
    /// Offset of the first byte of `data` in the log.
    pub offset: u64,
    /// The bytes (at most [`MAX_LOG_CHUNK`]).
    pub data: Bytes,
}

/// How a command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecResult {
    /// Its exit code.
    pub exit_code: i32,
    /// Standard output, at most [`MAX_EXEC_OUTPUT`] bytes.
    pub stdout: Bytes,
    /// Standard error, at most [`MAX_EXEC_OUTPUT`] bytes.
    pub stderr: Bytes,
    /// True when stdout was longer and was cut.
    pub stdout_truncated: bool,
    /// True when stderr was longer and was cut.
    pub stderr_truncated: bool,
}

/// A stream of log data; ends after the last byte (without follow: of the log so far).
pub type LogStream = BoxStream<'static, Result<LogData, RemoteError>>;

// ---- framing -------------------------------------------------------------------------------

/// Writes one length-delimited message.
pub(crate) async fn write_message<M: Message>(
    stream: &mut dyn ByteStream,
    msg: &M,
) -> Result<(), TransportError> {
    let len = msg.encoded_len();
    let prefix = u32::try_from(len).map_err(|_| TransportError::FrameTooLarge {
        size: len,
        limit: MAX_MESSAGE,
    })?;
    let mut buf = BytesMut::with_capacity(4 + len);
    buf.put_u32(prefix);
    msg.encode(&mut buf)
        .map_err(|e| TransportError::Other(Box::new(e)))?;
    let mut bytes = buf.freeze();
    while !bytes.is_empty() {
        let piece = bytes.split_to(bytes.len().min(WRITE_PIECE));
        stream.send(piece).await?;
    }
    Ok(())
}

/// Reads length-delimited messages from a byte stream.
pub(crate) struct MessageReader {
    stream: Box<dyn ByteStream>,
    decoder: FrameDecoder,
}

/// Why no message could be read.
#[derive(Debug)]
pub(crate) enum ReadError {
    /// The peer finished its side (or dropped the stream) between messages.
    Ended,
    /// The peer finished in the middle of a message.
    Truncated,
    /// The bytes are not a valid message.
    Malformed(String),
    /// The stream failed.
    Transport(TransportError),
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReadError::Ended => f.write_str("the stream ended"),
            ReadError::Truncated => f.write_str("the stream ended inside a message"),
            ReadError::Malformed(m) => write!(f, "malformed message: {m}"),
            ReadError::Transport(e) => write!(f, "{e}"),
        }
    }
}

impl MessageReader {
    pub(crate) fn new(stream: Box<dyn ByteStream>) -> Self {
        Self {
            stream,
            decoder: FrameDecoder::new(FrameCodec::new(MAX_MESSAGE)),
        }
    }

    /// The stream, for writing.
    pub(crate) fn stream(&mut self) -> &mut dyn ByteStream {
        self.stream.as_mut()
    }

    /// The next message. Cancel-safe: bytes received are kept in the decoder.
    pub(crate) async fn next<M: Message + Default>(&mut self) -> Result<M, ReadError> {
        loop {
            match self.decoder.next_frame() {
                Ok(Some(body)) => {
                    return M::decode(body).map_err(|e| ReadError::Malformed(e.to_string()));
                }
                Ok(None) => {}
                Err(e @ CodecError::FrameTooLarge { .. }) => {
                    return Err(ReadError::Malformed(e.to_string()));
                }
                Err(e) => return Err(ReadError::Malformed(e.to_string())),
            }
            match self.stream.recv().await {
                Ok(Some(chunk)) => self.decoder.push(&chunk),
                Ok(None) if self.decoder.buffered() == 0 => return Err(ReadError::Ended),
                Ok(None) => return Err(ReadError::Truncated),
                Err(e) => return Err(ReadError::Transport(e)),
            }
        }
    }
}

// ---- conversions ---------------------------------------------------------------------------

pub(crate) fn logs_to_wire(q: &LogsQuery) -> pb::ReplicaStreamRequest {
    pb::ReplicaStreamRequest {
        op: Some(pb::replica_stream_request::Op::Logs(
            pb::ReplicaLogsRequest {
                replica: q.replica.get(),
                from_offset: q.from_offset,
                follow: q.follow,
                tail_lines: q.tail_lines,
            },
        )),
    }
}

pub(crate) fn logs_from_wire(r: &pb::ReplicaLogsRequest) -> LogsQuery {
    LogsQuery {
        replica: ReplicaId(r.replica),
        from_offset: r.from_offset,
        follow: r.follow,
        tail_lines: r.tail_lines,
    }
}

pub(crate) fn exec_to_wire(q: &ExecQuery) -> pb::ReplicaStreamRequest {
    pb::ReplicaStreamRequest {
        op: Some(pb::replica_stream_request::Op::Exec(
            pb::ReplicaExecRequest {
                replica: q.replica.get(),
                command: q.command.clone(),
                timeout_ms: u64::try_from(q.timeout.as_millis()).unwrap_or(u64::MAX),
            },
        )),
    }
}

/// The exec query of a request, or InvalidArgument naming the field.
pub(crate) fn exec_from_wire(r: pb::ReplicaExecRequest) -> Result<ExecQuery, RemoteError> {
    if r.command.is_empty() || r.command[0].is_empty() {
        return Err(RemoteError::new(
            StatusCode::InvalidArgument,
            "exec.command: a command is required",
        ));
    }
    if r.timeout_ms == 0 {
        return Err(RemoteError::new(
            StatusCode::InvalidArgument,
            "exec.timeout_ms: must be greater than zero",
        ));
    }
    Ok(ExecQuery {
        replica: ReplicaId(r.replica),
        command: r.command,
        timeout: Duration::from_millis(r.timeout_ms).min(MAX_EXEC_TIMEOUT),
    })
}

pub(crate) fn exec_result_to_wire(r: &ExecResult) -> pb::ReplicaExecResult {
    pb::ReplicaExecResult {
        exit_code: r.exit_code,
        stdout: r.stdout.clone(),
        stderr: r.stderr.clone(),
        stdout_truncated: r.stdout_truncated,
        stderr_truncated: r.stderr_truncated,
    }
}

pub(crate) fn response(item: pb::replica_stream_response::Item) -> pb::ReplicaStreamResponse {
    pb::ReplicaStreamResponse { item: Some(item) }
}

pub(crate) fn error_response(e: &RemoteError) -> pb::ReplicaStreamResponse {
    response(pb::replica_stream_response::Item::Error(e.to_wire()))
}

// ---- the coordinator side ------------------------------------------------------------------

/// Opens replica streams to agents over the coordinator's cluster transport (the one agents
/// dial for the control protocol), or serves them in-process for this node's own agent.
#[derive(Clone)]
pub struct AgentStreams {
    transport: Arc<dyn Transport>,
    local: Option<(NodeId, Arc<ReplicaHost>)>,
    answer_timeout: Duration,
}

impl std::fmt::Debug for AgentStreams {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AgentStreams")
            .field("local", &self.transport.local())
            .field("local_agent", &self.local.as_ref().map(|(n, _)| *n))
            .field("answer_timeout", &self.answer_timeout)
            .finish()
    }
}

/// How long the agent has to accept or refuse a stream (and to answer an exec beyond its
/// timeout).
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);

impl AgentStreams {
    /// Streams over `transport` (the agents must be connected to it).
    pub fn new(transport: Arc<dyn Transport>) -> Self {
        Self {
            transport,
            local: None,
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
        }
    }

    /// Serves node `node` in-process from `runtime` (a process running both roles: its agent
    /// has no connection to itself).
    pub fn with_local_agent(
        mut self,
        node: NodeId,
        runtime: Arc<dyn cloudless_core::runtime::Runtime>,
    ) -> Self {
        self.local = Some((node, Arc::new(ReplicaHost::new(runtime))));
        self
    }

    /// Sets how long an agent has to accept a stream (default 10 s).
    pub fn with_answer_timeout(mut self, timeout: Duration) -> Self {
        self.answer_timeout = timeout;
        self
    }

    /// True if `node` can be reached from here now (it is connected, or it is the local agent).
    pub fn reaches(&self, node: NodeId) -> bool {
        self.local_host(node).is_some()
            || self
                .transport
                .connected_peers()
                .iter()
                .any(|p| p.node == node)
    }

    fn local_host(&self, node: NodeId) -> Option<Arc<ReplicaHost>> {
        match &self.local {
            Some((n, host)) if *n == node => Some(Arc::clone(host)),
            _ => None,
        }
    }

    /// Opens a stream to `node` and writes `request` on it (the coordinator's side stays open:
    /// the agent takes its end as "the reader left"). A failed write is kept, not returned: an
    /// agent that refuses at once may close its side before the request is written, and its
    /// answer is still readable.
    async fn open(
        &self,
        node: NodeId,
        request: &pb::ReplicaStreamRequest,
    ) -> Result<(MessageReader, Option<TransportError>), RemoteError> {
        let mut stream =
            tokio::time::timeout(self.answer_timeout, self.transport.open_stream(node))
                .await
                .map_err(|_| {
                    RemoteError::unavailable(format!(
                        "the agent of node {node} did not take the stream"
                    ))
                })?
                .map_err(|e| {
                    RemoteError::unavailable(format!(
                        "the agent of node {node} is not reachable: {e}"
                    ))
                })?;
        let written =
            tokio::time::timeout(self.answer_timeout, write_message(stream.as_mut(), request))
                .await
                .unwrap_or_else(|_| {
                    Err(TransportError::ConnectionLost(
                        "writing the request timed out".into(),
                    ))
                });
        Ok((MessageReader::new(stream), written.err()))
    }

    /// The first answer, within the answer timeout (`extra` more for an exec).
    async fn first(
        &self,
        node: NodeId,
        (reader, write_error): (&mut MessageReader, Option<TransportError>),
        extra: Duration,
    ) -> Result<pb::replica_stream_response::Item, RemoteError> {
        let unsent = |e: &dyn std::fmt::Display| match &write_error {
            Some(w) => RemoteError::unavailable(format!(
                "the agent of node {node} is not reachable: {w} ({e})"
            )),
            None => {
                RemoteError::unavailable(format!("the agent of node {node} broke the stream: {e}"))
            }
        };
        match tokio::time::timeout(
            self.answer_timeout.saturating_add(extra),
            reader.next::<pb::ReplicaStreamResponse>(),
        )
        .await
        {
            Err(_) => Err(RemoteError::unavailable(format!(
                "the agent of node {node} did not answer in time"
            ))),
            Ok(Err(e)) => Err(unsent(&e)),
            Ok(Ok(pb::ReplicaStreamResponse { item: None })) => Err(RemoteError::unavailable(
                format!("the agent of node {node} sent an empty answer"),
            )),
            Ok(Ok(pb::ReplicaStreamResponse {
                item: Some(pb::replica_stream_response::Item::Error(e)),
            })) => Err(RemoteError::from_wire(e)),
            Ok(Ok(pb::ReplicaStreamResponse { item: Some(item) })) => Ok(item),
        }
    }

    /// The log of `query.replica` on `node`. Errors before the first byte are returned here
    /// (NotFound/FailedPrecondition from the agent, Unavailable when it cannot be reached);
    /// later failures end the stream with one error item. Dropping the stream stops the agent.
    pub async fn logs(&self, node: NodeId, query: LogsQuery) -> Result<LogStream, RemoteError> {
        if let Some(host) = self.local_host(node) {
            return host.logs(query).await;
        }
        let (mut reader, write_error) = self.open(node, &logs_to_wire(&query)).await?;
        match self
            .first(node, (&mut reader, write_error), Duration::ZERO)
            .await?
        {
            pb::replica_stream_response::Item::Accepted(_) => {}
            _ => {
                return Err(RemoteError::unavailable(format!(
                    "the agent of node {node} answered a logs request out of protocol"
                )));
            }
        }
        Ok(log_items(node, reader))
    }

    /// Runs `query.command` in `query.replica`'s container on `node`. Unavailable means the
    /// command did not reach the agent; a request that reached it without an answer is
    /// Unknown ("the command may have run"), so callers do not retry it blindly.
    pub async fn exec(&self, node: NodeId, query: ExecQuery) -> Result<ExecResult, RemoteError> {
        if let Some(host) = self.local_host(node) {
            return host.exec(query).await;
        }
        let timeout = query.timeout.min(MAX_EXEC_TIMEOUT);
        let (mut reader, write_error) = self.open(node, &exec_to_wire(&query)).await?;
        let sent = write_error.is_none();
        let answer = self
            .first(node, (&mut reader, write_error), timeout)
            .await
            .map_err(|e| match e.code {
                // The request reached the agent but no answer came back: the command may have
                // run, so the failure must not look retryable.
                StatusCode::Unavailable if sent => RemoteError::new(
                    StatusCode::Unknown,
                    format!("{} (the command may have run)", e.message),
                ),
                _ => e,
            })?;
        match answer {
            pb::replica_stream_response::Item::Exec(r) => Ok(ExecResult {
                exit_code: r.exit_code,
                stdout_truncated: r.stdout_truncated || r.stdout.len() > MAX_EXEC_OUTPUT,
                stderr_truncated: r.stderr_truncated || r.stderr.len() > MAX_EXEC_OUTPUT,
                stdout: r.stdout.slice(..r.stdout.len().min(MAX_EXEC_OUTPUT)),
                stderr: r.stderr.slice(..r.stderr.len().min(MAX_EXEC_OUTPUT)),
            }),
            _ => Err(RemoteError::unavailable(format!(
                "the agent of node {node} answered an exec request out of protocol"
            ))),
        }
    }
}

/// The log data messages of an accepted logs stream, until `LogsEnd` or an error.
fn log_items(node: NodeId, reader: MessageReader) -> LogStream {
    stream::unfold(Some(reader), move |state| async move {
        let mut reader = state?;
        let item = match reader.next::<pb::ReplicaStreamResponse>().await {
            Ok(pb::ReplicaStreamResponse {
                item: Some(pb::replica_stream_response::Item::Log(d)),
            }) => {
                if d.data.len() > MAX_LOG_CHUNK {
                    Err(RemoteError::unavailable(format!(
                        "the agent of node {node} sent a log chunk of {} bytes (limit {MAX_LOG_CHUNK})",
                        d.data.len()
                    )))
                } else {
                    return Some((
                        Ok(LogData {
                            offset: d.offset,
                            data: d.data,
                        }),
                        Some(reader),
                    ));
                }
            }
            Ok(pb::ReplicaStreamResponse {
                item: Some(pb::replica_stream_response::Item::LogsEnd(_)),
            }) => return None,
            Ok(pb::ReplicaStreamResponse {
                item: Some(pb::replica_stream_response::Item::Error(e)),
            }) => Err(RemoteError::from_wire(e)),
            Ok(_) => Err(RemoteError::unavailable(format!(
                "the agent of node {node} sent a message out of protocol"
            ))),
            Err(e) => Err(RemoteError::unavailable(format!(
                "the log stream from node {node} broke: {e}"
            ))),
        };
        Some((item, None))
    })
    .boxed()
}
