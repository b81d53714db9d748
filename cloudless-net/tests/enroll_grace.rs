//! Offline renewal on real QUIC (loopback): a node whose certificate expired renews within the
//! grace window by proving possession of its key; past the window, with another key, with a
//! certificate of another CA, or once revoked, it is refused.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod quic_common;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloudless_core::clock::{Clock, ManualClock};
use cloudless_core::consensus::Consensus;
use cloudless_core::node::{NodeReport, Platform};
use cloudless_core::resources::Resources;
use cloudless_core::state::{Command, CommandEnvelope};
use cloudless_core::testing::consensus::MemConsensus;
use cloudless_core::transport::Role;
use cloudless_net::identity::enroll::{
    EnrollConfig, EnrollError, EnrollParams, EnrollServer, EnrollService, RefusalCode, enroll,
    renew_offline,
};
use cloudless_net::identity::renewal::validity;
use cloudless_net::identity::{
    ClusterCa, DEFAULT_NODE_LIFETIME, JoinToken, NodeCredentials, NodeKey, RevokedNodes, TokenRole,
};

const DAY_MS: u64 = 24 * 3600 * 1000;
/// A call's deadline: generous, a handshake on a loaded machine can be slow.
const WAIT: Duration = Duration::from_secs(30);

fn report() -> NodeReport {
    let r = Resources {
        cpu_millis: 1000,
        memory_mib: 512,
        ..Resources::ZERO
    };
    NodeReport {
        platform: Platform::linux_amd64(),
        region: String::new(),
        zone: String::new(),
        labels: Default::default(),
        capacity: r,
        allocatable: r,
        power: Default::default(),
        reliability: Default::default(),
    }
}

struct Setup {
    ca: Arc<ClusterCa>,
    clock: ManualClock,
    revoked: RevokedNodes,
    server: EnrollServer,
    key: NodeKey,
    creds: NodeCredentials,
}

async fn setup() -> Setup {
    let ca = Arc::new(ClusterCa::init("lab", SystemTime::now()).unwrap());
    let consensus = Arc::new(MemConsensus::new());
    let clock = ManualClock::new(cloudless_core::clock::SystemClock.now_ms());
    let revoked = RevokedNodes::new();
    let coordinator = quic_common::creds(&ca, Role::Coordinator, 1_000);
    let service = EnrollService::new(
        Arc::clone(&ca),
        consensus.clone(),
        Arc::new(clock.clone()),
        DEFAULT_NODE_LIFETIME,
    )
    .with_revoked(revoked.clone());
    let any = "127.0.0.1:0".parse().unwrap();
    let server = EnrollServer::bind(
        any,
        &coordinator,
        Arc::new(service),
        EnrollConfig::default(),
    )
    .unwrap();

    let token = JoinToken::generate(ca.digest()).unwrap();
    let record = token.record(
        TokenRole::Agent,
        clock.now_ms(),
        Duration::from_secs(3600),
        None,
    );
    consensus
        .propose(CommandEnvelope::new(
            clock.now_ms(),
            Command::CreateJoinToken { token: record },
        ))
        .await
        .unwrap();
    let key = NodeKey::generate().unwrap();
    let params = EnrollParams {
        name: "edge-1".into(),
        role: TokenRole::Agent,
        report: report(),
    };
    let creds = enroll(server.local_addr().unwrap(), &token, &key, params, WAIT)
        .await
        .unwrap();
    Setup {
        ca,
        clock,
        revoked,
        server,
        key,
        creds,
    }
}

fn refused(got: Result<NodeCredentials, EnrollError>) {
    match got {
        Err(EnrollError::Refused {
            code: RefusalCode::RenewalRefused,
            ..
        }) => {}
        other => panic!("expected RenewalRefused, got {other:?}"),
    }
}

#[tokio::test]
async fn an_expired_node_renews_within_the_grace_window_only() {
    let s = setup().await;
    let addr = s.server.local_addr().unwrap();
    // Offline for eight days: the seven-day certificate expired a day ago.
    s.clock.advance_ms(8 * DAY_MS);
    let renewed = renew_offline(addr, s.ca.cert(), s.creds.cert(), &s.key, WAIT)
        .await
        .unwrap();
    assert_eq!(renewed.identity(), s.creds.identity());
    let (_, new_end) = validity(renewed.cert()).unwrap();
    let (_, old_end) = validity(s.creds.cert()).unwrap();
    assert!(new_end >= old_end + Duration::from_secs(7 * 24 * 3600));

    // Another key cannot use the old certificate.
    let thief = NodeKey::generate().unwrap();
    refused(renew_offline(addr, s.ca.cert(), s.creds.cert(), &thief, WAIT).await);

    // Past the 30-day grace window: refused, re-join with a token.
    s.clock.advance_ms(30 * DAY_MS);
    refused(renew_offline(addr, s.ca.cert(), s.creds.cert(), &s.key, WAIT).await);
}

#[tokio::test]
async fn revoked_nodes_and_foreign_certificates_cannot_renew() {
    let s = setup().await;
    let addr = s.server.local_addr().unwrap();
    s.clock.advance_ms(8 * DAY_MS);
    // A certificate for the same identity from another CA.
    let rogue = ClusterCa::init("lab", SystemTime::now()).unwrap();
    let forged = rogue
        .issue(
            &s.key.csr().unwrap(),
            s.creds.identity(),
            SystemTime::now(),
            DEFAULT_NODE_LIFETIME,
        )
        .unwrap();
    refused(renew_offline(addr, s.ca.cert(), &forged, &s.key, WAIT).await);

    s.revoked.revoke(s.creds.identity().node);
    refused(renew_offline(addr, s.ca.cert(), s.creds.cert(), &s.key, WAIT).await);
}
