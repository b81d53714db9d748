//! The Nodes service.

use std::sync::Arc;

use cloudless_core::ids::NodeId;
use cloudless_core::node::Node;
use cloudless_core::state::{ClusterState, Command};
use tonic::{Request, Response, Status};

use super::auth;
use super::pb::nodes_client::NodesClient;
use super::pb::{self, nodes_server::Nodes};
use super::server::{Core, Route, forwarded};
use super::{convert, errors};

macro_rules! on_leader {
    ($self:ident, $caller:ident, $req:ident, $method:ident) => {
        if let Route::Forward(channel) = $self.core.route(&$caller).await? {
            return NodesClient::new(channel)
                .$method(forwarded($req.into_inner(), &$caller))
                .await;
        }
    };
}

pub(crate) struct NodesApi {
    core: Arc<Core>,
}

impl NodesApi {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

/// The node a request names (by name, else by id), or NotFound.
fn find<'s>(state: &'s ClusterState, r: Option<&pb::NodeRef>) -> Result<&'s Node, Status> {
    let r = r.ok_or_else(|| errors::invalid("node", "required"))?;
    if !r.name.is_empty() {
        return state
            .node_by_name(&r.name)
            .ok_or_else(|| Status::not_found(format!("node {} not found", r.name)));
    }
    if r.id == 0 {
        return Err(errors::invalid("node", "a name or an id is required"));
    }
    state
        .nodes
        .get(&NodeId(r.id))
        .ok_or_else(|| Status::not_found(format!("node {} not found", NodeId(r.id))))
}

#[derive(Clone, Copy)]
enum Action {
    Cordon,
    Drain,
    Uncordon,
}

impl NodesApi {
    async fn act(
        &self,
        req: pb::NodeActionRequest,
        action: Action,
    ) -> Result<Response<pb::NodeResponse>, Status> {
        let state = self.core.state().await?;
        let node = find(&state, req.node.as_ref())?.id;
        let command = match action {
            Action::Cordon => Command::Cordon {
                node,
                cordoned: true,
            },
            Action::Uncordon => Command::Cordon {
                node,
                cordoned: false,
            },
            Action::Drain => Command::Drain { node },
        };
        let applied = self.core.propose(command, &req.idempotency_key).await?;
        let state = self.core.state().await?;
        let n = state
            .nodes
            .get(&node)
            .ok_or_else(|| Status::not_found(format!("node {node} not found")))?;
        Ok(Response::new(pb::NodeResponse {
            node: Some(convert::node(&state, n)),
            revision: applied.revision.0.max(state.revision.0),
        }))
    }
}

#[tonic::async_trait]
impl Nodes for NodesApi {
    async fn list(
        &self,
        req: Request<pb::ListNodesRequest>,
    ) -> Result<Response<pb::ListNodesResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_read(&caller)?;
        on_leader!(self, caller, req, list);
        let state = self.core.state().await?;
        Ok(Response::new(pb::ListNodesResponse {
            nodes: state
                .nodes
                .values()
                .map(|n| convert::node(&state, n))
                .collect(),
            revision: state.revision.0,
        }))
    }

    async fn get(
        &self,
        req: Request<pb::GetNodeRequest>,
    ) -> Result<Response<pb::NodeResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_read(&caller)?;
        on_leader!(self, caller, req, get);
        let state = self.core.state().await?;
        let n = find(&state, req.get_ref().node.as_ref())?;
        Ok(Response::new(pb::NodeResponse {
            node: Some(convert::node(&state, n)),
            revision: state.revision.0,
        }))
    }

    async fn cordon(
        &self,
        req: Request<pb::NodeActionRequest>,
    ) -> Result<Response<pb::NodeResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, cordon);
        self.act(req.into_inner(), Action::Cordon).await
    }

    async fn drain(
        &self,
        req: Request<pb::NodeActionRequest>,
    ) -> Result<Response<pb::NodeResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, drain);
        self.act(req.into_inner(), Action::Drain).await
    }

    async fn uncordon(
        &self,
        req: Request<pb::NodeActionRequest>,
    ) -> Result<Response<pb::NodeResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, uncordon);
        self.act(req.into_inner(), Action::Uncordon).await
    }

    async fn remove(
        &self,
        req: Request<pb::RemoveNodeRequest>,
    ) -> Result<Response<pb::RemoveNodeResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, remove);
        let req = req.into_inner();
        let state = self.core.state().await?;
        let node = find(&state, req.node.as_ref())?.id;
        let command = if req.revoke {
            Command::RevokeNode {
                node,
                reason: if req.reason.is_empty() {
                    format!("removed by {}", caller.identity)
                } else {
                    req.reason
                },
            }
        } else {
            Command::RemoveNode { node }
        };
        let applied = self.core.propose(command, &req.idempotency_key).await?;
        Ok(Response::new(pb::RemoveNodeResponse {
            revision: applied.revision.0,
        }))
    }
}
