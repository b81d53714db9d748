//! `join`: enrollment as a coordinator with a token and the CA handover (step 1), then
//! becoming a raft voter through [`ADD_VOTER`] on an existing member (step 2, at `run`).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use cloudless_core::consensus::{Consensus, ConsensusError};
use cloudless_core::transport::{Role, Transport};
use cloudless_net::identity::authz::require_coordinator;
use cloudless_net::identity::enroll::{EnrollParams, enroll_patiently};
use cloudless_net::identity::handover::fetch_ca;
use cloudless_net::identity::{JoinToken, NODE_KEY_FILE, NodeCredentials, NodeKey, TokenRole};
use cloudless_net::quic::QuicTransport;
use cloudless_net::{Method, Router, RpcConfig, RpcEndpoint, Status, StatusCode};

use super::data_dir::save_ca;
use super::raft::{bind, cordon_coordinator};
use super::{CoordinatorSettings, IDENTITY_DIR, META_FILE, Meta};
use crate::common::{self, create_private_dir, is_empty_dir, resolve};

/// A coordinator asks an existing one to add it as a raft voter (coordinator identities only;
/// a coordinator can only add itself).
pub const ADD_VOTER: Method<AddVoterRequest, AddVoterResponse> =
    Method::new("cloudless.v1.Daemon/AddVoter");

/// Request of [`ADD_VOTER`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct AddVoterRequest {
    /// The caller's raft address (`host:port`).
    #[prost(string, tag = "1")]
    pub raft_address: String,
}

/// Answer of [`ADD_VOTER`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct AddVoterResponse {
    /// The voters after the change.
    #[prost(uint64, repeated, tag = "1")]
    pub voters: Vec<u64>,
}

/// What `join` needs beyond the settings.
#[derive(Debug, Clone)]
pub struct JoinArgs {
    /// Coordinator join token.
    pub token: String,
    /// Control addresses of existing coordinators.
    pub peers: Vec<String>,
    /// Enrollment address of the first peer (default: its control port + 2).
    pub peer_enroll: Option<String>,
}

/// `join` step 1: enroll as a coordinator and fetch the CA. The data dir is then complete but
/// the member is not yet a voter; [`run`](super::run) finishes the join.
pub async fn join_setup(s: &CoordinatorSettings, args: &JoinArgs) -> Result<()> {
    let dir = &s.data_dir;
    if Meta::path(dir).exists() {
        tracing::info!(
            "{} exists: this coordinator already enrolled",
            dir.display()
        );
        return Ok(());
    }
    if !is_empty_dir(dir)? {
        bail!(
            "data_dir: {} is not empty and holds no {META_FILE}",
            dir.display()
        );
    }
    let first = args
        .peers
        .first()
        .ok_or_else(|| anyhow!("peer: at least one --peer is required"))?;
    let peer_addr = resolve("peer", first)?;
    let enroll_addr = match &args.peer_enroll {
        Some(a) => resolve("peer_enroll", a)?,
        None => common::port_offset("peer_enroll", peer_addr, 2)?,
    };
    let token = JoinToken::parse(&args.token).map_err(|e| anyhow!("token: {e}"))?;
    create_private_dir(dir)?;
    let id_dir = dir.join(IDENTITY_DIR);
    create_private_dir(&id_dir)?;
    let key = NodeKey::generate()?;
    key.save(&id_dir.join(NODE_KEY_FILE))?;
    let report = common::node_report(dir, "", "", &BTreeMap::new());
    let creds = enroll_patiently(
        enroll_addr,
        &token,
        &key,
        EnrollParams {
            name: s.name.clone(),
            role: TokenRole::Coordinator,
            report,
        },
        Duration::from_secs(10),
        BECOME_VOTER_PATIENCE,
    )
    .await
    .with_context(|| format!("enrolling at {enroll_addr}"))?;
    if creds.identity().role != Role::Coordinator {
        bail!(
            "the enrollment issued {}, not a coordinator",
            creds.identity()
        );
    }
    creds.save(&id_dir)?;

    // The CA key, handed over on the authenticated cluster transport.
    let (t, ep) = client_endpoint(s.listen.ip(), &creds)?;
    let peer = t
        .connect(first)
        .await
        .with_context(|| format!("connecting to {first}"))?;
    let ca = fetch_ca(&ep.client(), peer.node, creds.ca(), Duration::from_secs(10))
        .await
        .with_context(|| format!("fetching the CA from {peer}"))?;
    drop(ep);
    t.close();
    let passphrase = s.passphrase()?;
    save_ca(&ca, dir, passphrase.as_ref())?;
    Meta {
        cluster: creds.identity().cluster.clone(),
        node: creds.identity().node.get(),
        name: s.name.clone(),
        voter: false,
        peers: args.peers.clone(),
    }
    .save(dir)?;
    tracing::info!(identity = %creds.identity(), "enrolled as a coordinator");
    Ok(())
}

/// A transport on an ephemeral port of `ip` and an RPC endpoint on it that serves nothing: a
/// client of the other coordinators (the caller closes the transport).
fn client_endpoint(
    ip: IpAddr,
    creds: &NodeCredentials,
) -> Result<(Arc<QuicTransport>, RpcEndpoint)> {
    let t = bind(SocketAddr::new(ip, 0), creds)?;
    let ep = RpcEndpoint::start(t.clone(), Router::new(), RpcConfig::default())?;
    Ok((t, ep))
}

/// How long enrollment and [`become_voter`] keep asking before they give up: a leader
/// election or another member's join in progress makes the peers answer `Unavailable` for a
/// moment.
const BECOME_VOTER_PATIENCE: Duration = Duration::from_secs(60);

/// Asks the peers, in turn, to add this member as a voter; rounds over all peers repeat (with
/// a growing pause, up to [`BECOME_VOTER_PATIENCE`]) until one adds it —
/// unreachable peers, no leader yet, an older peer: the next peer, then another round. A refusal
/// (permission, bad request) ends it at once.
pub(super) async fn become_voter(
    creds: &NodeCredentials,
    listen_ip: IpAddr,
    peers: &[String],
    raft_address: &str,
) -> Result<()> {
    let (t, ep) = client_endpoint(listen_ip, creds)?;
    let give_up = tokio::time::Instant::now() + BECOME_VOTER_PATIENCE;
    let mut pause = Duration::from_millis(200);
    let mut last = String::from("no peers");
    let outcome = 'rounds: loop {
        for p in peers {
            let peer = match t.connect(p).await {
                Ok(peer) => peer,
                Err(e) => {
                    last = format!("{p}: {e}");
                    continue;
                }
            };
            let r = ep
                .client()
                .call(
                    peer.node,
                    &ADD_VOTER,
                    AddVoterRequest {
                        raft_address: raft_address.to_owned(),
                    },
                    Duration::from_secs(30),
                )
                .await;
            match r {
                Ok(resp) => {
                    tracing::info!(voters = ?resp.voters, via = %peer, "added as a raft voter");
                    break 'rounds Ok(());
                }
                // This member's identity or address is refused: asking again cannot help.
                Err(e)
                    if matches!(
                        e.code(),
                        StatusCode::PermissionDenied
                            | StatusCode::Unauthenticated
                            | StatusCode::InvalidArgument
                    ) =>
                {
                    break 'rounds Err(anyhow!("{p} refused to add this member as a voter: {e}"));
                }
                // Anything else (no leader yet, an older peer without the method): the next
                // peer, then another round.
                Err(e) => last = format!("{p}: {e}"),
            }
        }
        if tokio::time::Instant::now() + pause > give_up {
            break Err(anyhow!(
                "no coordinator added this member as a voter within {}s (last: {last})",
                BECOME_VOTER_PATIENCE.as_secs()
            ));
        }
        tracing::info!(%last, retry_in = ?pause, "not a raft voter yet");
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    };
    t.close();
    outcome
}

pub(super) fn serve_add_voter(router: &mut Router, consensus: Arc<dyn Consensus>) {
    router.unary(&ADD_VOTER, move |ctx, req: AddVoterRequest| {
        let consensus = Arc::clone(&consensus);
        async move {
            require_coordinator(&ctx.peer)?;
            if req.raft_address.parse::<SocketAddr>().is_err() && !req.raft_address.contains(':') {
                return Err(Status::invalid_argument(format!(
                    "raft_address {:?} is not host:port",
                    req.raft_address
                )));
            }
            let node = ctx.peer.node;
            let voters = consensus.status().await.map_err(status)?.voters;
            if !voters.contains(&node) {
                tracing::info!(%node, addr = %req.raft_address, "adding a raft voter");
                consensus
                    .add_voter(node, req.raft_address)
                    .await
                    .map_err(status)?;
            }
            // Its node record (from enrollment) is cordoned: no agent runs behind it.
            cordon_coordinator(consensus.as_ref(), node)
                .await
                .map_err(|e| Status::unavailable(e.to_string()))?;
            let voters = consensus.status().await.map_err(status)?.voters;
            Ok(AddVoterResponse {
                voters: voters.iter().map(|n| n.get()).collect(),
            })
        }
    });
}

fn status(e: ConsensusError) -> Status {
    match e {
        ConsensusError::NotLeader { leader } => Status::unavailable(format!(
            "not the leader (leader: {})",
            leader.map_or_else(|| "unknown".to_owned(), |l| l.to_string())
        )),
        other => Status::unavailable(other.to_string()),
    }
}
