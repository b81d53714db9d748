//! The dispatcher: the one task that owns an endpoint's mutable RPC state — calls awaiting
//! answers (by peer and call id), handlers running (by peer and call id), and the hello state
//! per peer. Clients and handler tasks talk to it over a bounded command queue; a reader task
//! forwards `Transport::recv` into a bounded inbound queue. Commands are served first, so a
//! call registered before its request was sent is always known when the answer arrives.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{Inbound, PeerIdentity, Transport, TransportError};
use tokio::sync::{mpsc, oneshot};
use tokio::task::AbortHandle;

use super::config::RpcConfig;
use super::error::RpcError;
use super::router::{RequestContext, Router};
use super::serve::{Responder, run_handler};
use super::status::{Status, StatusCode};
use super::version::ProtocolVersion;
use crate::codec::FrameCodec;
use crate::wire::pb::{self, envelope::Body};

/// A call's answer channel.
pub(crate) enum Sink {
    Unary(oneshot::Sender<Result<Bytes, RpcError>>),
    Stream(mpsc::Sender<StreamMsg>),
}

/// What a streaming call's consumer receives.
pub(crate) enum StreamMsg {
    Item(Bytes),
    End(Result<(), RpcError>),
}

/// Requests to the dispatcher.
pub(crate) enum Command {
    /// Resolve once `peer` has accepted our hello.
    Hello {
        peer: NodeId,
        reply: oneshot::Sender<Result<ProtocolVersion, RpcError>>,
    },
    /// Our hello could not be sent.
    HelloFailed {
        peer: NodeId,
        error: String,
        not_connected: bool,
    },
    /// Expect answers to `call_id` from `peer`.
    Register {
        peer: NodeId,
        call_id: u64,
        sink: Sink,
    },
    /// Forget a call; if it was still pending and `cancel`, tell the server.
    Abandon {
        peer: NodeId,
        call_id: u64,
        cancel: bool,
    },
    /// A handler task finished.
    ServeDone { peer: NodeId, call_id: u64 },
}

pub(super) enum HelloState {
    Pending(Vec<oneshot::Sender<Result<ProtocolVersion, RpcError>>>),
    Accepted(ProtocolVersion),
}

pub(crate) struct Dispatcher {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) codec: FrameCodec,
    pub(crate) config: RpcConfig,
    pub(crate) router: Arc<Router>,
    pub(crate) cmd_tx: mpsc::Sender<Command>,
    calls: HashMap<(NodeId, u64), Sink>,
    serving: HashMap<(NodeId, u64), AbortHandle>,
    pub(super) hello_out: HashMap<NodeId, HelloState>,
    pub(super) hello_in: HashMap<NodeId, ProtocolVersion>,
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        for (_, h) in self.serving.drain() {
            h.abort();
        }
    }
}

/// Forwards the transport's inbound frames to the dispatcher until the transport closes.
pub(crate) async fn read_loop(transport: Arc<dyn Transport>, tx: mpsc::Sender<Inbound>) {
    loop {
        match transport.recv().await {
            Ok(inbound) => {
                if tx.send(inbound).await.is_err() {
                    return;
                }
            }
            Err(TransportError::Closed) => return,
            Err(e) => tracing::debug!("transport recv: {e}"),
        }
    }
}

impl Dispatcher {
    pub(crate) fn new(
        transport: Arc<dyn Transport>,
        codec: FrameCodec,
        config: RpcConfig,
        router: Arc<Router>,
        cmd_tx: mpsc::Sender<Command>,
    ) -> Self {
        Self {
            transport,
            codec,
            config,
            router,
            cmd_tx,
            calls: HashMap::new(),
            serving: HashMap::new(),
            hello_out: HashMap::new(),
            hello_in: HashMap::new(),
        }
    }

    pub(crate) async fn run(
        mut self,
        mut cmd_rx: mpsc::Receiver<Command>,
        mut inbound_rx: mpsc::Receiver<Inbound>,
    ) {
        loop {
            tokio::select! {
                biased;
                Some(cmd) = cmd_rx.recv() => self.on_command(cmd),
                inbound = inbound_rx.recv() => match inbound {
                    Some(i) => self.on_inbound(i),
                    None => break,
                },
            }
        }
        // The transport closed: every waiting call fails now rather than at its deadline.
        for (_, sink) in self.calls.drain() {
            match sink {
                Sink::Unary(tx) => drop(tx.send(Err(RpcError::Shutdown))),
                Sink::Stream(tx) => drop(tx.try_send(StreamMsg::End(Err(RpcError::Shutdown)))),
            }
        }
    }

    pub(super) fn our_version(&self) -> ProtocolVersion {
        self.config.version
    }

    pub(super) fn send(&self, to: NodeId, body: Body) {
        let env = pb::Envelope { body: Some(body) };
        let frame = match self.codec.encode(&env) {
            Ok(f) => f,
            Err(e) => return tracing::warn!("frame not encodable: {e}"),
        };
        let transport = Arc::clone(&self.transport);
        tokio::spawn(async move {
            if let Err(e) = transport.send(to, frame).await {
                tracing::debug!(%to, "frame not sent: {e}");
            }
        });
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Hello { peer, reply } => self.hello(peer, reply),
            Command::HelloFailed {
                peer,
                error,
                not_connected,
            } => {
                if let Some(HelloState::Pending(waiters)) = self.hello_out.remove(&peer) {
                    for w in waiters {
                        let e = if not_connected {
                            TransportError::NotConnected(peer)
                        } else {
                            TransportError::ConnectionLost(error.clone())
                        };
                        drop(w.send(Err(RpcError::Transport(e))));
                    }
                }
            }
            Command::Register {
                peer,
                call_id,
                sink,
            } => {
                self.calls.insert((peer, call_id), sink);
            }
            Command::Abandon {
                peer,
                call_id,
                cancel,
            } => {
                if self.calls.remove(&(peer, call_id)).is_some() && cancel {
                    self.send(peer, Body::Cancel(pb::Cancel { call_id }));
                }
            }
            Command::ServeDone { peer, call_id } => {
                self.serving.remove(&(peer, call_id));
            }
        }
    }

    fn on_inbound(&mut self, inbound: Inbound) {
        let Inbound { from, frame } = inbound;
        let env = match self.codec.decode(&frame) {
            Ok(env) => env,
            Err(e) => return tracing::debug!(peer = %from, "undecodable frame dropped: {e}"),
        };
        let Some(body) = env.body else { return };
        let peer = from.node;
        match body {
            Body::Hello(h) => self.on_hello(&from, h),
            Body::HelloAck(a) => self.on_hello_ack(&from, a),
            Body::Request(r) => self.on_request(from, r),
            Body::Response(r) => {
                if let Some(Sink::Unary(tx)) = self.calls.remove(&(peer, r.call_id)) {
                    let status = status_result(r.status);
                    self.forget_hello_if_required(peer, &status);
                    let result = match status {
                        Ok(()) if r.payload.len() > self.config.max_message_size => {
                            Err(RpcError::MessageTooLarge {
                                size: r.payload.len(),
                                limit: self.config.max_message_size,
                            })
                        }
                        Ok(()) => Ok(r.payload),
                        Err(e) => Err(e),
                    };
                    drop(tx.send(result));
                }
            }
            Body::StreamItem(i) => self.on_stream_item(peer, i),
            Body::StreamEnd(e) => {
                if let Some(Sink::Stream(tx)) = self.calls.remove(&(peer, e.call_id)) {
                    let status = status_result(e.status);
                    self.forget_hello_if_required(peer, &status);
                    let end = StreamMsg::End(status);
                    if let Err(mpsc::error::TrySendError::Full(end)) = tx.try_send(end) {
                        // Keep the end behind the buffered items; the consumer drains them.
                        tokio::spawn(async move { drop(tx.send(end).await) });
                    }
                }
            }
            Body::Cancel(c) => {
                if let Some(h) = self.serving.remove(&(peer, c.call_id)) {
                    h.abort();
                }
            }
        }
    }

    fn on_stream_item(&mut self, peer: NodeId, item: pb::StreamItem) {
        let key = (peer, item.call_id);
        let Some(Sink::Stream(tx)) = self.calls.get(&key) else {
            return;
        };
        if item.payload.len() > self.config.max_message_size
            || tx.try_send(StreamMsg::Item(item.payload)).is_err()
        {
            // Too large, or the consumer fell behind its buffer (or left): end the call. The
            // consumer sees the channel close without an end and reports `StreamAborted`.
            self.calls.remove(&key);
            self.send(
                peer,
                Body::Cancel(pb::Cancel {
                    call_id: item.call_id,
                }),
            );
        }
    }

    fn on_request(&mut self, from: PeerIdentity, r: pb::Request) {
        let out = Responder {
            transport: Arc::clone(&self.transport),
            codec: self.codec,
            to: from.node,
            call_id: r.call_id,
            streaming: r.streaming,
            max_message: self.config.max_message_size,
        };
        let refuse = |status: Status| {
            let out = out.clone();
            tokio::spawn(async move { out.finish(Err(status)).await });
        };
        if !self.hello_in.contains_key(&from.node) {
            return refuse(Status::new(
                StatusCode::HelloRequired,
                "no accepted protocol hello from this peer",
            ));
        }
        if r.payload.len() > self.config.max_message_size {
            let msg = format!(
                "request of {} bytes exceeds the limit of {} bytes",
                r.payload.len(),
                self.config.max_message_size
            );
            return refuse(Status::new(StatusCode::ResourceExhausted, msg));
        }
        let Some(route) = self.router.route(&r.method).cloned() else {
            return refuse(Status::new(
                StatusCode::Unimplemented,
                format!("unknown method {:?}", r.method),
            ));
        };
        if route.streaming != r.streaming {
            let kind = if route.streaming {
                "server-streaming"
            } else {
                "unary"
            };
            return refuse(Status::new(
                StatusCode::Unimplemented,
                format!("method {:?} is {kind}", r.method),
            ));
        }
        let deadline = (r.deadline_ms > 0).then(|| Duration::from_millis(r.deadline_ms));
        let ctx = RequestContext {
            peer: from.clone(),
            method: r.method,
            deadline,
        };
        let key = (from.node, r.call_id);
        let done = self.cmd_tx.clone();
        let task = tokio::spawn(async move {
            run_handler(route, ctx, r.payload, deadline, out).await;
            drop(
                done.send(Command::ServeDone {
                    peer: key.0,
                    call_id: key.1,
                })
                .await,
            );
        });
        if let Some(old) = self.serving.insert(key, task.abort_handle()) {
            old.abort();
        }
    }
}

/// A wire status as a call result.
fn status_result(status: Option<pb::Status>) -> Result<(), RpcError> {
    let Some(s) = status else {
        return Err(RpcError::Status {
            code: StatusCode::Unknown,
            message: "answer without a status".into(),
        });
    };
    match StatusCode::from_wire(s.code) {
        StatusCode::Ok => Ok(()),
        StatusCode::Cancelled => Err(RpcError::Cancelled),
        StatusCode::DeadlineExceeded => Err(RpcError::DeadlineExceeded),
        code => Err(RpcError::Status {
            code,
            message: s.message,
        }),
    }
}
