//! The raft network over the typed RPC layer: the client side ([`RpcNetworkFactory`], one
//! [`PeerClient`] per target) and the method names both sides use.
//!
//! openraft's requests travel CBOR-encoded in a [`pb::RaftMessage`]; the answer carries
//! `Result<response, RaftError>` the same way. A peer is dialed at its raft address on first
//! use; the transport authenticates it and we check it is the coordinator we meant to reach.

use std::sync::Arc;

use cloudless_core::ids::NodeId;
use cloudless_core::transport::{Role, Transport, TransportError};
use cloudless_net::{Method, RpcClient, RpcError};
use openraft::error::{
    Infallible, InstallSnapshotError, NetworkError, PayloadTooLarge, RPCError, RaftError,
    RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{AnyError, BasicNode};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::pb;
use crate::types::{TypeConfig, decode, encode};

/// `RaftMessage.format` of a CBOR-encoded openraft 0.9 value.
pub const FORMAT_CBOR: u32 = 1;

/// Leader → follower: replicate entries or heartbeat.
pub const APPEND_ENTRIES: Method<pb::RaftMessage, pb::RaftMessage> =
    Method::new("cloudless.raft.v1.Raft/AppendEntries");
/// Candidate → voter: request a vote.
pub const VOTE: Method<pb::RaftMessage, pb::RaftMessage> =
    Method::new("cloudless.raft.v1.Raft/Vote");
/// Leader → follower: one chunk of a snapshot.
pub const INSTALL_SNAPSHOT: Method<pb::RaftMessage, pb::RaftMessage> =
    Method::new("cloudless.raft.v1.Raft/InstallSnapshot");

/// Makes one [`PeerClient`] per raft target, all sharing this member's RPC endpoint.
#[derive(Clone)]
pub struct RpcNetworkFactory {
    transport: Arc<dyn Transport>,
    client: RpcClient,
}

impl std::fmt::Debug for RpcNetworkFactory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcNetworkFactory").finish_non_exhaustive()
    }
}

impl RpcNetworkFactory {
    /// Raft traffic goes out through `client`; peers are dialed with `transport`.
    pub fn new(transport: Arc<dyn Transport>, client: RpcClient) -> Self {
        Self { transport, client }
    }
}

impl RaftNetworkFactory<TypeConfig> for RpcNetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: u64, node: &BasicNode) -> PeerClient {
        PeerClient {
            transport: Arc::clone(&self.transport),
            client: self.client.clone(),
            target,
            addr: node.addr.clone(),
            connected: false,
        }
    }
}

/// The raft connection to one peer.
pub struct PeerClient {
    transport: Arc<dyn Transport>,
    client: RpcClient,
    target: u64,
    addr: String,
    connected: bool,
}

impl std::fmt::Debug for PeerClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerClient")
            .field("target", &self.target)
            .field("addr", &self.addr)
            .finish_non_exhaustive()
    }
}

/// The transport reached someone other than the coordinator we dialed.
#[derive(Debug, thiserror::Error)]
#[error("{addr} is {found}, not coordinator {expected}")]
struct WrongPeer {
    addr: String,
    found: String,
    expected: u64,
}

type Rpc<T, E> = Result<T, RPCError<u64, BasicNode, RaftError<u64, E>>>;

impl PeerClient {
    async fn connect<E: std::error::Error>(&mut self) -> Rpc<(), E> {
        if self.connected {
            return Ok(());
        }
        let peer = self
            .transport
            .connect(&self.addr)
            .await
            .map_err(|e| RPCError::Unreachable(Unreachable::new(&e)))?;
        if peer.node != NodeId(self.target) || peer.role != Role::Coordinator {
            let e = WrongPeer {
                addr: self.addr.clone(),
                found: peer.to_string(),
                expected: self.target,
            };
            return Err(RPCError::Unreachable(Unreachable::new(&e)));
        }
        self.connected = true;
        Ok(())
    }

    /// One raft call: `entries` is the number of log entries carried, for the size hint when
    /// the message is too large.
    async fn call<Req, Resp, E>(
        &mut self,
        method: &Method<pb::RaftMessage, pb::RaftMessage>,
        req: &Req,
        option: &RPCOption,
        entries: u64,
    ) -> Rpc<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: std::error::Error + DeserializeOwned,
    {
        self.connect().await?;
        let network = |e: &dyn std::fmt::Display| {
            RPCError::Network(NetworkError::new(&AnyError::error(e.to_string())))
        };
        let body = encode(req).map_err(|e| network(&e))?;
        let msg = pb::RaftMessage {
            format: FORMAT_CBOR,
            body: body.into(),
        };
        let to = NodeId(self.target);
        match self.client.call(to, method, msg, option.hard_ttl()).await {
            Ok(resp) if resp.format == FORMAT_CBOR => {
                let answer: Result<Resp, RaftError<u64, E>> =
                    decode(&resp.body).map_err(|e| network(&e))?;
                answer.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            Ok(resp) => Err(network(&format!(
                "unknown raft message format {}",
                resp.format
            ))),
            Err(RpcError::MessageTooLarge { .. }) => Err(RPCError::PayloadTooLarge(
                PayloadTooLarge::new_entries_hint((entries / 2).max(1)),
            )),
            Err(RpcError::Transport(e)) => {
                if matches!(e, TransportError::NotConnected(_)) {
                    // Dial again next time (the peer restarted or the connection closed).
                    self.connected = false;
                }
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Err(e) => Err(network(&e)),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<AppendEntriesResponse<u64>, Infallible> {
        let entries = u64::try_from(rpc.entries.len()).unwrap_or(u64::MAX);
        self.call(&APPEND_ENTRIES, &rpc, &option, entries).await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Rpc<InstallSnapshotResponse<u64>, InstallSnapshotError> {
        self.call(&INSTALL_SNAPSHOT, &rpc, &option, 1).await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<u64>,
        option: RPCOption,
    ) -> Rpc<VoteResponse<u64>, Infallible> {
        self.call(&VOTE, &rpc, &option, 1).await
    }
}
