//! API forwarding between coordinators: each member answers [`API_ADDRESS`] on its raft port
//! and keeps its API server's table of the other members' API addresses up to date.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use cloudless::api::ApiServer;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{Role, Transport};
use cloudless_net::identity::authz::require_coordinator;
use cloudless_net::{Method, Router, Status};

use super::raft::RaftMember;

/// A coordinator asks another (on its raft port) for the address of its public API, so calls
/// reaching a follower's API can be forwarded to the leader's (coordinator identities only).
pub const API_ADDRESS: Method<ApiAddressRequest, ApiAddressResponse> =
    Method::new("cloudless.v1.Daemon/ApiAddress");

/// Request of [`API_ADDRESS`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct ApiAddressRequest {}

/// Answer of [`API_ADDRESS`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct ApiAddressResponse {
    /// The advertised API address (`host:port`).
    #[prost(string, tag = "1")]
    pub address: String,
}

/// How often a coordinator looks for raft members whose API address it does not know.
pub const API_PEER_SYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Every this many sync rounds, known API addresses are asked again (a member restarted with
/// another API port).
const API_PEER_REFRESH_ROUNDS: u32 = 30;

pub(super) fn serve_api_address(router: &mut Router, address: Arc<std::sync::Mutex<String>>) {
    router.unary(&API_ADDRESS, move |ctx, _req: ApiAddressRequest| {
        let address = address.lock().unwrap_or_else(|p| p.into_inner()).clone();
        async move {
            require_coordinator(&ctx.peer)?;
            if address.is_empty() {
                return Err(Status::unavailable("the API is not started yet"));
            }
            Ok(ApiAddressResponse { address })
        }
    });
}

/// Keeps `api`'s peer table (member id -> API address) in step with the raft membership:
/// asks each member it does not know yet over the raft transport, and all of them again every
/// [`API_PEER_REFRESH_ROUNDS`] rounds. Unreachable members keep their last known address (so a
/// leader hint can still name it).
pub(super) fn spawn_api_peer_sync(
    member: &RaftMember,
    api: Arc<ApiServer>,
    me: NodeId,
    my_address: String,
) -> tokio::task::JoinHandle<()> {
    let consensus = member.consensus.clone();
    let transport = Arc::clone(&member.transport);
    let client = member.endpoint.client();
    tokio::spawn(async move {
        // member id -> (raft address asked, API address)
        let mut known: BTreeMap<u64, (String, String)> = BTreeMap::new();
        let mut applied: BTreeMap<NodeId, String> = BTreeMap::new();
        let mut round: u32 = 0;
        loop {
            let refresh = round.is_multiple_of(API_PEER_REFRESH_ROUNDS);
            round = round.wrapping_add(1);
            let members: Vec<(u64, String)> = {
                let metrics = consensus.raft().metrics();
                let m = metrics.borrow();
                m.membership_config
                    .membership()
                    .nodes()
                    .map(|(id, node)| (*id, node.addr.clone()))
                    .collect()
            };
            for (id, raft_addr) in &members {
                if *id == me.get()
                    || (!refresh && known.get(id).is_some_and(|(a, _)| a == raft_addr))
                {
                    continue;
                }
                match ask_api_address(transport.as_ref(), &client, NodeId(*id), raft_addr).await {
                    Ok(address) => {
                        known.insert(*id, (raft_addr.clone(), address));
                    }
                    Err(e) => tracing::debug!(member = id, %raft_addr, "api address: {e}"),
                }
            }
            known.retain(|id, _| members.iter().any(|(m, _)| m == id));
            let mut peers: BTreeMap<NodeId, String> = known
                .iter()
                .map(|(id, (_, a))| (NodeId(*id), a.clone()))
                .collect();
            peers.insert(me, my_address.clone());
            if peers != applied {
                tracing::info!(peers = ?peers, "coordinator API addresses");
                api.set_peers(peers.clone());
                applied = peers;
            }
            tokio::time::sleep(API_PEER_SYNC_INTERVAL).await;
        }
    })
}

async fn ask_api_address(
    transport: &dyn Transport,
    client: &cloudless_net::RpcClient,
    id: NodeId,
    raft_addr: &str,
) -> Result<String> {
    let limit = Duration::from_secs(3);
    let peer = tokio::time::timeout(limit, transport.connect(raft_addr))
        .await
        .map_err(|_| anyhow!("no answer in {} s", limit.as_secs()))??;
    if peer.node != id || peer.role != Role::Coordinator {
        bail!("{raft_addr} is {peer}, not coordinator {id}");
    }
    let resp = client
        .call(id, &API_ADDRESS, ApiAddressRequest {}, limit)
        .await?;
    match resp.address.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(resp.address),
        _ => bail!("{raft_addr} answered {:?}, not host:port", resp.address),
    }
}
