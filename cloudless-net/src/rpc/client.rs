//! The caller side: typed unary and server-streaming calls with deadlines, cancellation and
//! retries of idempotent calls.

use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::Transport;
use futures::Stream;
use prost::Message;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{Instant, Sleep, sleep, sleep_until, timeout};

use super::config::RpcConfig;
use super::dispatch::{Command, Sink, StreamMsg};
use super::error::RpcError;
use super::method::Method;
use super::status::StatusCode;
use crate::codec::FrameCodec;
use crate::wire::pb::{self, envelope::Body};

/// A cheap, cloneable handle for making calls from one endpoint.
#[derive(Clone)]
pub struct RpcClient {
    inner: Arc<ClientInner>,
}

struct ClientInner {
    cmd_tx: mpsc::Sender<Command>,
    transport: Arc<dyn Transport>,
    codec: FrameCodec,
    config: RpcConfig,
    next_id: AtomicU64,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("local", self.inner.transport.local())
            .finish_non_exhaustive()
    }
}

/// Tells the dispatcher to forget a call when the caller stops waiting (timeout, drop,
/// explicit cancel); while the call is still pending the server is sent a `Cancel`.
struct CallGuard {
    cmd_tx: mpsc::Sender<Command>,
    peer: NodeId,
    call_id: u64,
    armed: bool,
}

impl CallGuard {
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let cmd = Command::Abandon {
            peer: self.peer,
            call_id: self.call_id,
            cancel: true,
        };
        if let Err(mpsc::error::TrySendError::Full(cmd)) = self.cmd_tx.try_send(cmd)
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            let tx = self.cmd_tx.clone();
            rt.spawn(async move { drop(tx.send(cmd).await) });
        }
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RpcClient {
    pub(crate) fn new(
        cmd_tx: mpsc::Sender<Command>,
        transport: Arc<dyn Transport>,
        codec: FrameCodec,
        config: RpcConfig,
    ) -> Self {
        let next_id = AtomicU64::new(1);
        Self {
            inner: Arc::new(ClientInner {
                cmd_tx,
                transport,
                codec,
                config,
                next_id,
            }),
        }
    }

    async fn command(&self, cmd: Command) -> Result<(), RpcError> {
        self.inner
            .cmd_tx
            .send(cmd)
            .await
            .map_err(|_| RpcError::Shutdown)
    }

    /// Exchanges hellos with `peer` (once; later calls reuse the result).
    async fn hello(&self, peer: NodeId) -> Result<(), RpcError> {
        let (reply, rx) = oneshot::channel();
        self.command(Command::Hello { peer, reply }).await?;
        rx.await.map_err(|_| RpcError::Shutdown)?.map(drop)
    }

    fn encode_request<Req: Message>(&self, req: &Req) -> Result<Bytes, RpcError> {
        let limit = self.inner.config.max_message_size;
        let size = req.encoded_len();
        if size > limit {
            return Err(RpcError::MessageTooLarge { size, limit });
        }
        Ok(Bytes::from(req.encode_to_vec()))
    }

    /// Registers the call, then sends the request. The guard cancels it if dropped armed.
    async fn start(
        &self,
        peer: NodeId,
        method: &str,
        payload: Bytes,
        deadline: Duration,
        sink: Sink,
    ) -> Result<CallGuard, RpcError> {
        self.hello(peer).await?;
        let call_id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let streaming = matches!(sink, Sink::Stream(_));
        self.command(Command::Register {
            peer,
            call_id,
            sink,
        })
        .await?;
        let mut guard = CallGuard {
            cmd_tx: self.inner.cmd_tx.clone(),
            peer,
            call_id,
            armed: true,
        };
        let request = pb::Request {
            call_id,
            method: method.to_owned(),
            deadline_ms: millis(deadline),
            payload,
            streaming,
        };
        let sent = match self.inner.codec.encode(&pb::Envelope {
            body: Some(Body::Request(request)),
        }) {
            Ok(frame) => self
                .inner
                .transport
                .send(peer, frame)
                .await
                .map_err(RpcError::from),
            Err(e) => Err(e.into()),
        };
        if let Err(e) = sent {
            // Nothing reached the server: forget the call without a Cancel.
            guard.disarm();
            drop(
                self.command(Command::Abandon {
                    peer,
                    call_id,
                    cancel: false,
                })
                .await,
            );
            return Err(e);
        }
        Ok(guard)
    }

    async fn attempt<Resp: Message + Default>(
        &self,
        peer: NodeId,
        method: &str,
        payload: Bytes,
        deadline: Duration,
    ) -> Result<Resp, RpcError> {
        let (tx, rx) = oneshot::channel();
        let mut guard = self
            .start(peer, method, payload, deadline, Sink::Unary(tx))
            .await?;
        let answer = rx.await.map_err(|_| RpcError::Shutdown);
        guard.disarm();
        let bytes = answer??;
        Resp::decode(bytes.as_ref()).map_err(|e| RpcError::Decode(e.to_string()))
    }

    /// Calls `method` on `peer` and waits at most `deadline` for the answer.
    ///
    /// Idempotent methods are retried on retryable errors (lost messages, unavailable peer)
    /// within the deadline; others are attempted once. Dropping the returned future cancels
    /// the call: the server is sent a `Cancel` and aborts its handler. A late answer is dropped.
    pub async fn call<Req, Resp>(
        &self,
        peer: NodeId,
        method: &Method<Req, Resp>,
        req: Req,
        deadline: Duration,
    ) -> Result<Resp, RpcError>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let payload = self.encode_request(&req)?;
        let policy = self.inner.config.retry;
        let attempts = if method.is_idempotent() {
            policy.max_attempts.max(1)
        } else {
            1
        };
        let until = Instant::now() + deadline;
        let mut backoff = policy.initial_backoff;
        let mut attempt = 1;
        let mut rehello = false;
        loop {
            let remaining = until.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(RpcError::DeadlineExceeded);
            }
            let budget = if attempts > 1 {
                remaining.min(policy.attempt_timeout)
            } else {
                remaining
            };
            let result = timeout(
                budget,
                self.attempt(peer, method.name(), payload.clone(), budget),
            )
            .await
            .unwrap_or(Err(RpcError::DeadlineExceeded));
            match result {
                // The handler did not run: resending is safe for any method, once.
                Err(RpcError::Status {
                    code: StatusCode::HelloRequired,
                    ..
                }) if !rehello => {
                    rehello = true;
                }
                Err(e) if attempt < attempts && e.is_retryable() => {
                    tracing::debug!(%peer, method = method.name(), attempt, "retrying: {e}");
                    let pause = backoff.min(until.saturating_duration_since(Instant::now()));
                    sleep(pause).await;
                    backoff = (backoff * 2).min(policy.max_backoff);
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// Starts a server-streaming call; the stream ends after the server's last item, or with
    /// an error (including `DeadlineExceeded` once `deadline` has passed). Streaming calls are
    /// never retried. Dropping the stream (or [`CallStream::cancel`]) cancels the call.
    pub async fn call_stream<Req, Resp>(
        &self,
        peer: NodeId,
        method: &Method<Req, Resp>,
        req: Req,
        deadline: Duration,
    ) -> Result<CallStream<Resp>, RpcError>
    where
        Req: Message,
        Resp: Message + Default,
    {
        let payload = self.encode_request(&req)?;
        let until = Instant::now() + deadline;
        let (tx, rx) = mpsc::channel(self.inner.config.stream_buffer);
        let guard = timeout(
            deadline,
            self.start(peer, method.name(), payload, deadline, Sink::Stream(tx)),
        )
        .await
        .unwrap_or(Err(RpcError::DeadlineExceeded))?;
        Ok(CallStream {
            rx,
            guard: Some(guard),
            deadline: Box::pin(sleep_until(until)),
            done: false,
            _resp: PhantomData,
        })
    }
}

/// The answers of a server-streaming call. Yields decoded items, then ends (`None`); a failure
/// is yielded once as `Some(Err(..))` before the end.
pub struct CallStream<Resp> {
    rx: mpsc::Receiver<StreamMsg>,
    // Dropped (sending Cancel) when the deadline passes or the stream is dropped.
    guard: Option<CallGuard>,
    deadline: Pin<Box<Sleep>>,
    done: bool,
    _resp: PhantomData<fn() -> Resp>,
}

impl<Resp> CallStream<Resp> {
    /// Stops the call: the server is told to abort its handler.
    pub fn cancel(self) {}

    fn disarm(&mut self) {
        if let Some(g) = self.guard.as_mut() {
            g.disarm();
        }
    }
}

impl<Resp: Message + Default> Stream for CallStream<Resp> {
    type Item = Result<Resp, RpcError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.done {
            return Poll::Ready(None);
        }
        let item = match self.rx.poll_recv(cx) {
            Poll::Ready(Some(StreamMsg::Item(bytes))) => {
                return Poll::Ready(Some(
                    Resp::decode(bytes.as_ref()).map_err(|e| RpcError::Decode(e.to_string())),
                ));
            }
            Poll::Ready(Some(StreamMsg::End(result))) => {
                self.disarm();
                result.err()
            }
            Poll::Ready(None) => {
                self.disarm();
                Some(RpcError::StreamAborted(
                    "the stream ended without a final status".into(),
                ))
            }
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    // Dropping the armed guard tells the server to stop now.
                    self.guard = None;
                    Some(RpcError::DeadlineExceeded)
                }
                Poll::Pending => return Poll::Pending,
            },
        };
        self.done = true;
        Poll::Ready(item.map(Err))
    }
}
