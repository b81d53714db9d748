//! The server side: typed handlers registered by method name.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloudless_core::transport::PeerIdentity;
use futures::stream::{BoxStream, Stream, StreamExt};
use prost::Message;

use super::method::Method;
use super::status::{Status, StatusCode};

/// What a handler knows about the call: who is calling (the authenticated identity, for
/// authorization decisions), which method, and how long the caller waits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestContext {
    /// The caller, as authenticated by the transport.
    pub peer: PeerIdentity,
    /// The method name.
    pub method: String,
    /// How long the caller still waits; `None` if it sent no deadline.
    pub deadline: Option<Duration>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// An erased handler's answer.
pub(crate) enum Reply {
    Unary(Result<Bytes, Status>),
    Stream(BoxStream<'static, Result<Bytes, Status>>),
}

type Erased = Arc<dyn Fn(RequestContext, Bytes) -> BoxFuture<Reply> + Send + Sync>;

#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) streaming: bool,
    pub(crate) handler: Erased,
}

/// Handlers by method name. Build it, then hand it to [`RpcEndpoint::start`](super::RpcEndpoint::start).
///
/// Handlers run as tasks; a cancelled or timed-out call drops its handler future at its next
/// `.await` (use a drop guard to observe it).
#[derive(Clone, Default)]
pub struct Router {
    routes: BTreeMap<String, Route>,
}

fn decode<Req: Message + Default>(payload: &Bytes) -> Result<Req, Status> {
    Req::decode(payload.as_ref()).map_err(|e| {
        Status::new(
            StatusCode::InvalidArgument,
            format!("bad request payload: {e}"),
        )
    })
}

impl Router {
    /// An empty router (every method is `Unimplemented`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a unary handler for `method`, replacing any earlier one.
    pub fn unary<Req, Resp, F, Fut>(&mut self, method: &Method<Req, Resp>, f: F) -> &mut Self
    where
        Req: Message + Default + 'static,
        Resp: Message + 'static,
        F: Fn(RequestContext, Req) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Resp, Status>> + Send + 'static,
    {
        let f = Arc::new(f);
        let handler: Erased = Arc::new(move |ctx, payload| {
            let f = Arc::clone(&f);
            Box::pin(async move {
                let reply = match decode::<Req>(&payload) {
                    Ok(req) => f(ctx, req)
                        .await
                        .map(|resp| Bytes::from(resp.encode_to_vec())),
                    Err(status) => Err(status),
                };
                Reply::Unary(reply)
            })
        });
        self.routes.insert(
            method.name().to_owned(),
            Route {
                streaming: false,
                handler,
            },
        );
        self
    }

    /// Registers a server-streaming handler for `method`: it returns a stream of answers; the
    /// call ends with the stream (or with the first error item).
    pub fn server_streaming<Req, Resp, F, S>(
        &mut self,
        method: &Method<Req, Resp>,
        f: F,
    ) -> &mut Self
    where
        Req: Message + Default + 'static,
        Resp: Message + 'static,
        F: Fn(RequestContext, Req) -> S + Send + Sync + 'static,
        S: Stream<Item = Result<Resp, Status>> + Send + 'static,
    {
        let f = Arc::new(f);
        let handler: Erased = Arc::new(move |ctx, payload| {
            let f = Arc::clone(&f);
            Box::pin(async move {
                match decode::<Req>(&payload) {
                    Ok(req) => Reply::Stream(
                        f(ctx, req)
                            .map(|r| r.map(|m| Bytes::from(m.encode_to_vec())))
                            .boxed(),
                    ),
                    Err(status) => Reply::Stream(futures::stream::iter([Err(status)]).boxed()),
                }
            })
        });
        self.routes.insert(
            method.name().to_owned(),
            Route {
                streaming: true,
                handler,
            },
        );
        self
    }

    /// The registered method names, sorted.
    pub fn methods(&self) -> Vec<&str> {
        self.routes.keys().map(String::as_str).collect()
    }

    pub(crate) fn route(&self, method: &str) -> Option<&Route> {
        self.routes.get(method)
    }
}
