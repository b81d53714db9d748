//! The Events service: a watch on applied changes, served by any member from its own log.

use std::collections::BTreeSet;
use std::sync::Arc;

use cloudless_core::consensus::WatchFilter;
use cloudless_core::ids::Revision;
use cloudless_core::state::ObjectKind;
use futures::StreamExt;
use futures::stream::BoxStream;
use tonic::{Request, Response, Status};

use super::auth;
use super::pb::{self, events_server::Events};
use super::server::Core;
use super::{convert, errors};

/// Most kinds a filter may name (there are six).
const MAX_KINDS: usize = 16;

pub(crate) struct EventsApi {
    core: Arc<Core>,
}

impl EventsApi {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

fn kind(i: usize, s: &str) -> Result<ObjectKind, Status> {
    serde_json::from_value(serde_json::Value::String(s.to_owned())).map_err(|_| {
        errors::invalid(
            &format!("kinds[{i}]"),
            format!("unknown kind {s:?} (node, workload, replica, service, joinToken or event)"),
        )
    })
}

#[tonic::async_trait]
impl Events for EventsApi {
    type WatchStream = BoxStream<'static, Result<pb::Change, Status>>;

    async fn watch(
        &self,
        req: Request<pb::WatchRequest>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_read(&caller)?;
        let req = req.into_inner();
        if req.kinds.len() > MAX_KINDS {
            return Err(errors::invalid("kinds", format!("at most {MAX_KINDS}")));
        }
        let kinds = req
            .kinds
            .iter()
            .enumerate()
            .map(|(i, k)| kind(i, k))
            .collect::<Result<BTreeSet<_>, _>>()?;
        let filter = WatchFilter {
            kinds,
            key_prefix: req.key_prefix,
        };
        let changes = self
            .core
            .consensus
            .watch(filter, Revision(req.from_revision))
            .await
            .map_err(|e| self.core.consensus_error(&e))?;
        let core = Arc::clone(&self.core);
        let stream = changes.map(move |c| match c {
            Ok(c) => Ok(convert::change(&c)),
            Err(e) => Err(core.consensus_error(&e)),
        });
        Ok(Response::new(self.core.until_stopped(stream.boxed())))
    }
}
