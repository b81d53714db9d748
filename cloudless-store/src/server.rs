//! The serving side of the raft network: handlers for the three raft methods, registered on
//! the member's RPC [`Router`]. Only coordinators of our own cluster may send raft traffic.

use std::sync::{Arc, OnceLock};

use cloudless_core::transport::Role;
use cloudless_net::rpc::RequestContext;
use cloudless_net::{Router, Status, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::network::{APPEND_ENTRIES, FORMAT_CBOR, INSTALL_SNAPSHOT, VOTE};
use crate::pb;
use crate::types::{Raft, decode, encode};

/// The raft methods of one member: register them on its router before the endpoint starts;
/// they answer `Unavailable` until [`RaftConsensus::start`](crate::RaftConsensus::start) has
/// attached the raft instance.
#[derive(Clone)]
pub struct RaftService {
    cluster: String,
    raft: Arc<OnceLock<Raft>>,
}

impl std::fmt::Debug for RaftService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RaftService")
            .field("cluster", &self.cluster)
            .field("attached", &self.raft.get().is_some())
            .finish()
    }
}

impl RaftService {
    /// Raft service for a member of `cluster`: only peers whose certificate names this cluster
    /// and the coordinator role are served.
    pub fn new(cluster: impl Into<String>) -> Self {
        Self {
            cluster: cluster.into(),
            raft: Arc::new(OnceLock::new()),
        }
    }

    /// Attaches the raft instance; false if one was attached already.
    pub(crate) fn attach(&self, raft: Raft) -> bool {
        self.raft.set(raft).is_ok()
    }

    /// Registers `AppendEntries`, `Vote` and `InstallSnapshot` on `router`.
    pub fn register(&self, router: &mut Router) {
        let svc = self.clone();
        router.unary(&APPEND_ENTRIES, move |ctx, msg| {
            let svc = svc.clone();
            async move {
                let raft = svc.admit(&ctx, &msg)?;
                reply(&raft.append_entries(parse(&msg)?).await)
            }
        });
        let svc = self.clone();
        router.unary(&VOTE, move |ctx, msg| {
            let svc = svc.clone();
            async move {
                let raft = svc.admit(&ctx, &msg)?;
                reply(&raft.vote(parse(&msg)?).await)
            }
        });
        let svc = self.clone();
        router.unary(&INSTALL_SNAPSHOT, move |ctx, msg| {
            let svc = svc.clone();
            async move {
                let raft = svc.admit(&ctx, &msg)?;
                reply(&raft.install_snapshot(parse(&msg)?).await)
            }
        });
    }

    /// Authorizes the caller and returns the raft instance to serve it.
    fn admit(&self, ctx: &RequestContext, msg: &pb::RaftMessage) -> Result<Raft, Status> {
        if ctx.peer.role != Role::Coordinator || ctx.peer.cluster != self.cluster {
            return Err(Status::permission_denied(format!(
                "{} may not send raft traffic (coordinators of cluster {} only)",
                ctx.peer, self.cluster
            )));
        }
        if msg.format != FORMAT_CBOR {
            return Err(Status::invalid_argument(format!(
                "unknown raft message format {}",
                msg.format
            )));
        }
        self.raft
            .get()
            .cloned()
            .ok_or_else(|| Status::unavailable("raft is not started on this member"))
    }
}

fn parse<T: DeserializeOwned>(msg: &pb::RaftMessage) -> Result<T, Status> {
    decode(&msg.body).map_err(|e| Status::invalid_argument(format!("bad raft message: {e}")))
}

fn reply<T: Serialize>(answer: &T) -> Result<pb::RaftMessage, Status> {
    let body =
        encode(answer).map_err(|e| Status::new(StatusCode::Internal, format!("encode: {e}")))?;
    Ok(pb::RaftMessage {
        format: FORMAT_CBOR,
        body: body.into(),
    })
}
