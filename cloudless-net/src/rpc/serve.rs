//! Running one inbound request: the handler task and the frames it sends back.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::Transport;
use futures::StreamExt;

use super::router::{Reply, RequestContext, Route};
use super::status::{Status, StatusCode};
use crate::codec::FrameCodec;
use crate::wire::pb::{self, envelope::Body};

/// Where a handler task sends its answer.
#[derive(Clone)]
pub(crate) struct Responder {
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) codec: FrameCodec,
    pub(crate) to: NodeId,
    pub(crate) call_id: u64,
    pub(crate) streaming: bool,
    pub(crate) max_message: usize,
}

impl Responder {
    async fn send(&self, body: Body) {
        let env = pb::Envelope { body: Some(body) };
        match self.codec.encode(&env) {
            Ok(frame) => {
                if let Err(e) = self.transport.send(self.to, frame).await {
                    tracing::debug!(to = %self.to, call_id = self.call_id, "answer not sent: {e}");
                }
            }
            Err(e) => tracing::warn!(call_id = self.call_id, "answer not encodable: {e}"),
        }
    }

    /// Sends the final status (a `Response` for unary calls, a `StreamEnd` for streams).
    pub(crate) async fn finish(&self, result: Result<Bytes, Status>) {
        let (status, payload) = match result {
            Ok(p) if p.len() > self.max_message => (
                Status::new(
                    StatusCode::ResourceExhausted,
                    format!(
                        "response of {} bytes exceeds the limit of {} bytes",
                        p.len(),
                        self.max_message
                    ),
                )
                .to_wire(),
                Bytes::new(),
            ),
            Ok(p) => (Status::ok_wire(), p),
            Err(s) => (s.to_wire(), Bytes::new()),
        };
        let body = if self.streaming {
            Body::StreamEnd(pb::StreamEnd {
                call_id: self.call_id,
                status: Some(status),
            })
        } else {
            Body::Response(pb::Response {
                call_id: self.call_id,
                status: Some(status),
                payload,
            })
        };
        self.send(body).await;
    }

    /// Sends one stream item, or ends the stream if it is too large.
    async fn item(&self, payload: Bytes) -> Result<(), Status> {
        if payload.len() > self.max_message {
            return Err(Status::new(
                StatusCode::ResourceExhausted,
                format!("stream item of {} bytes exceeds the limit", payload.len()),
            ));
        }
        self.send(Body::StreamItem(pb::StreamItem {
            call_id: self.call_id,
            payload,
        }))
        .await;
        Ok(())
    }
}

/// Runs `route` on `payload` within `deadline` and sends every answer frame.
pub(crate) async fn run_handler(
    route: Route,
    ctx: RequestContext,
    payload: Bytes,
    deadline: Option<Duration>,
    out: Responder,
) {
    let work = {
        let out = out.clone();
        async move {
            match (route.handler)(ctx, payload).await {
                Reply::Unary(result) => out.finish(result).await,
                Reply::Stream(mut items) => {
                    while let Some(item) = items.next().await {
                        let sent = match item {
                            Ok(bytes) => out.item(bytes).await,
                            Err(status) => Err(status),
                        };
                        if let Err(status) = sent {
                            return out.finish(Err(status)).await;
                        }
                    }
                    out.finish(Ok(Bytes::new())).await;
                }
            }
        }
    };
    match deadline {
        Some(d) => {
            if tokio::time::timeout(d, work).await.is_err() {
                let status = Status::new(
                    StatusCode::DeadlineExceeded,
                    "handler ran past the deadline",
                );
                out.finish(Err(status)).await;
            }
        }
        None => work.await,
    }
}
