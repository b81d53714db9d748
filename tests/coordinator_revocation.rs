//! The revocation mirror: `RevokeNode` committed in the cluster state reaches the enforcement
//! sink (the transport) for ids revoked before the mirror started and for later ones, once each.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cloudless::coordinator::{RevocationSink, mirror_revocations};
use cloudless_core::consensus::Consensus;
use cloudless_core::ids::{NodeId, NodeName};
use cloudless_core::node::{NodeReport, Platform};
use cloudless_core::resources::Resources;
use cloudless_core::state::{Command, CommandEnvelope, CommandResult};
use cloudless_core::testing::consensus::MemConsensus;

fn report() -> NodeReport {
    let r = Resources {
        cpu_millis: 1000,
        memory_mib: 1024,
        ..Resources::ZERO
    };
    NodeReport {
        platform: Platform::linux_amd64(),
        region: "eu".into(),
        zone: "z".into(),
        labels: BTreeMap::new(),
        capacity: r,
        allocatable: r,
        power: Default::default(),
        reliability: Default::default(),
    }
}

async fn propose(c: &MemConsensus, command: Command) -> CommandResult {
    c.propose(CommandEnvelope::new(1, command))
        .await
        .expect("command applies")
        .result
}

async fn register(c: &MemConsensus, name: &str) -> NodeId {
    match propose(
        c,
        Command::RegisterNode {
            name: NodeName::new(name).expect("node name"),
            report: report(),
        },
    )
    .await
    {
        CommandResult::NodeRegistered { node } => node,
        other => panic!("unexpected result {other:?}"),
    }
}

async fn revoke(c: &MemConsensus, node: NodeId) {
    propose(
        c,
        Command::RevokeNode {
            node,
            reason: "lost device".into(),
        },
    )
    .await;
}

/// Waits (virtual time) until the sink has seen `n` ids.
async fn seen(log: &Mutex<Vec<NodeId>>, n: usize) -> Vec<NodeId> {
    for _ in 0..200 {
        {
            let got = log.lock().expect("log");
            if got.len() >= n {
                return got.clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("sink saw {:?}, wanted {n} ids", log.lock().expect("log"));
}

#[tokio::test(start_paused = true)]
async fn revocations_reach_the_sink_once_each() {
    let consensus = Arc::new(MemConsensus::new());
    let a = register(&consensus, "node-a").await;
    let b = register(&consensus, "node-b").await;
    let c = register(&consensus, "node-c").await;
    revoke(&consensus, a).await;

    let log = Arc::new(Mutex::new(Vec::new()));
    let sink: RevocationSink = {
        let log = log.clone();
        Arc::new(move |node| log.lock().expect("log").push(node))
    };
    let task = mirror_revocations(consensus.clone(), sink);

    // Revoked before the mirror started: pushed at start.
    assert_eq!(seen(&log, 1).await, vec![a]);

    // Revoked later: pushed when the change is applied; unrelated changes push nothing.
    let _ = register(&consensus, "node-d").await;
    revoke(&consensus, b).await;
    assert_eq!(seen(&log, 2).await, vec![a, b]);

    // Revoking again (idempotent in the state) does not push twice.
    revoke(&consensus, b).await;
    revoke(&consensus, c).await;
    assert_eq!(seen(&log, 3).await, vec![a, b, c]);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(log.lock().expect("log").len(), 3);
    task.abort();
}
