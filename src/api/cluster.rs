//! The Cluster service: who leads, and join tokens.

use std::sync::Arc;
use std::time::Duration;

use cloudless_core::state::Command;
use cloudless_net::identity::{JoinToken, TokenRole, ca_digest};
use tonic::{Request, Response, Status};

use super::auth;
use super::pb::cluster_client::ClusterClient;
use super::pb::{self, cluster_server::Cluster};
use super::server::{Core, Route, forwarded};
use super::{convert, errors};

/// Lifetime of a join token when the request gives none.
const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest lifetime of a join token.
const MAX_TOKEN_TTL: Duration = Duration::from_secs(30 * 24 * 3600);

macro_rules! on_leader {
    ($self:ident, $caller:ident, $req:ident, $method:ident) => {
        if let Route::Forward(channel) = $self.core.route(&$caller).await? {
            return ClusterClient::new(channel)
                .$method(forwarded($req.into_inner(), &$caller))
                .await;
        }
    };
}

pub(crate) struct ClusterApi {
    core: Arc<Core>,
}

impl ClusterApi {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tonic::async_trait]
impl Cluster for ClusterApi {
    async fn info(
        &self,
        req: Request<pb::InfoRequest>,
    ) -> Result<Response<pb::InfoResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_read(&caller)?;
        // Answered by this member: it is how a client learns who leads.
        let status = self
            .core
            .consensus
            .status()
            .await
            .map_err(|e| self.core.consensus_error(&e))?;
        let (revision, nodes, workloads) = match self.core.consensus.state().await {
            Ok(s) => (
                s.revision.0,
                u32::try_from(s.nodes.len()).unwrap_or(u32::MAX),
                u32::try_from(s.workloads.len()).unwrap_or(u32::MAX),
            ),
            // A follower that cannot read linearizably still says who leads.
            Err(_) => (status.applied.0, 0, 0),
        };
        let creds = &self.core.credentials;
        Ok(Response::new(pb::InfoResponse {
            cluster: creds.identity().cluster.clone(),
            member: status.id.get(),
            leader: status.leader.map(|l| l.get()).unwrap_or(0),
            leader_address: status
                .leader
                .and_then(|l| self.core.address_of(l))
                .unwrap_or_default(),
            term: status.term,
            voters: status.voters.iter().map(|v| v.get()).collect(),
            revision,
            nodes,
            workloads,
            ca_digest: hex(&ca_digest(creds.ca())),
            caller: caller.identity.uri(),
        }))
    }

    async fn create_join_token(
        &self,
        req: Request<pb::CreateJoinTokenRequest>,
    ) -> Result<Response<pb::CreateJoinTokenResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, create_join_token);
        let req = req.into_inner();
        let role = match req.role.as_str() {
            "agent" => TokenRole::Agent,
            "coordinator" => TokenRole::Coordinator,
            other => {
                return Err(errors::invalid(
                    "role",
                    format!("expected agent or coordinator, found {other:?}"),
                ));
            }
        };
        let ttl = if req.ttl_seconds == 0 {
            DEFAULT_TOKEN_TTL
        } else {
            Duration::from_secs(req.ttl_seconds)
        };
        if ttl > MAX_TOKEN_TTL {
            return Err(errors::invalid("ttl_seconds", "at most 30 days"));
        }
        let max_uses = (req.max_uses != 0).then_some(req.max_uses);
        let token = JoinToken::generate(ca_digest(self.core.credentials.ca()))
            .map_err(|e| Status::internal(format!("token generation: {e}")))?;
        let record = token.record(role, self.core.clock.now_ms(), ttl, max_uses);
        let applied = self
            .core
            .propose(
                Command::CreateJoinToken {
                    token: record.clone(),
                },
                &req.idempotency_key,
            )
            .await?;
        if applied.deduplicated {
            // The first call stored another secret, shown only to that call.
            return Err(Status::already_exists(
                "a join token was already created with this idempotency key; its secret was \
                 shown once (create a new token with a new key)",
            ));
        }
        Ok(Response::new(pb::CreateJoinTokenResponse {
            token: token.reveal().to_string(),
            record: Some(convert::join_token(&record)),
            revision: applied.revision.0,
        }))
    }

    async fn list_join_tokens(
        &self,
        req: Request<pb::ListJoinTokensRequest>,
    ) -> Result<Response<pb::ListJoinTokensResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, list_join_tokens);
        let state = self.core.state().await?;
        Ok(Response::new(pb::ListJoinTokensResponse {
            tokens: state
                .join_tokens
                .values()
                .map(convert::join_token)
                .collect(),
            revision: state.revision.0,
        }))
    }

    async fn revoke_join_token(
        &self,
        req: Request<pb::RevokeJoinTokenRequest>,
    ) -> Result<Response<pb::RevokeJoinTokenResponse>, Status> {
        let caller = auth::caller(&req)?;
        auth::require_admin(&caller)?;
        on_leader!(self, caller, req, revoke_join_token);
        let req = req.into_inner();
        if req.id.is_empty() {
            return Err(errors::invalid("id", "required"));
        }
        let applied = self
            .core
            .propose(
                Command::RevokeJoinToken { id: req.id },
                &req.idempotency_key,
            )
            .await?;
        Ok(Response::new(pb::RevokeJoinTokenResponse {
            revision: applied.revision.0,
        }))
    }
}
