//! What the raft write benchmarks share: a 3-member `RaftConsensus` cluster on `MemTransport`
//! with durable storage in a directory, the small command they write, and percentiles.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use cloudless_core::event::{EventCategory, Severity};
use cloudless_core::ids::NodeId;
use cloudless_core::state::{Command, CommandEnvelope};
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::mem::{MemNetwork, addr_of};
use cloudless_net::{Router, RpcConfig, RpcEndpoint};
use cloudless_store::{RaftConsensus, RaftConsensusConfig, RaftService, Timeouts};

const CLUSTER: &str = "bench";

pub(crate) fn event(i: u64) -> CommandEnvelope {
    CommandEnvelope::new(
        1_700_000_000_000 + i,
        Command::RecordEvent {
            category: EventCategory::Workload,
            severity: Severity::Info,
            subject: "bench".into(),
            reason: "Write".into(),
            message: format!("write {i}"),
        },
    )
}

pub(crate) struct Member {
    pub(crate) consensus: RaftConsensus,
    _endpoint: RpcEndpoint,
}

/// Starts 3 members under `dir`, waits for a leader; the members (keep them alive) and the
/// leader's handle.
pub(crate) async fn start(dir: &std::path::Path) -> (Vec<Member>, RaftConsensus) {
    let net = MemNetwork::new(1);
    let mut members = Vec::new();
    for id in 1..=3u64 {
        let identity = PeerIdentity {
            cluster: CLUSTER.into(),
            role: Role::Coordinator,
            node: NodeId(id),
        };
        let transport = Arc::new(net.endpoint(identity));
        let service = RaftService::new(CLUSTER);
        let mut router = Router::new();
        service.register(&mut router);
        let endpoint = RpcEndpoint::start(transport.clone(), router, RpcConfig::default()).unwrap();
        let config = RaftConsensusConfig::new(NodeId(id), CLUSTER, dir.join(format!("n{id}")))
            .with_timeouts(Timeouts::lan());
        let consensus = RaftConsensus::start(config, transport, endpoint.client(), &service)
            .await
            .unwrap();
        members.push(Member {
            consensus,
            _endpoint: endpoint,
        });
    }
    let voters: BTreeMap<NodeId, String> = (1..=3)
        .map(|id| (NodeId(id), addr_of(NodeId(id))))
        .collect();
    members[0].consensus.initialize(voters).await.unwrap();
    let raft = members[0].consensus.raft().clone();
    let m = raft
        .wait(Some(Duration::from_secs(30)))
        .metrics(|m| m.current_leader.is_some(), "a leader")
        .await
        .unwrap();
    let leader = m.current_leader.unwrap();
    let handle = members
        .iter()
        .find(|m| m.consensus.id() == NodeId(leader))
        .unwrap()
        .consensus
        .clone();
    (members, handle)
}

pub(crate) fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}
