//! Enrollment on real QUIC (loopback): a joiner pins the CA by the token's digest, trades its
//! token and CSR for a certificate, and then speaks mTLS with it. Refusals: wrong CA digest, tampered,
//! expired, exhausted and revoked tokens, an agent token used for a coordinator join, a taken
//! name.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod quic_common;

use std::os::unix::fs::PermissionsExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use cloudless_core::clock::{Clock, SystemClock};
use cloudless_core::consensus::{Consensus, ConsensusError};
use cloudless_core::ids::NodeId;
use cloudless_core::node::{NodeReport, Platform};
use cloudless_core::resources::Resources;
use cloudless_core::state::{Command, CommandEnvelope};
use cloudless_core::testing::consensus::MemConsensus;
use cloudless_core::transport::{PeerIdentity, Role, Transport};
use cloudless_net::identity::enroll::{
    EnrollConfig, EnrollError, EnrollParams, EnrollServer, EnrollService, RefusalCode, enroll,
    enroll_patiently,
};
use cloudless_net::identity::{
    ClusterCa, DEFAULT_NODE_LIFETIME, JoinToken, NODE_KEY_FILE, NodeCredentials, NodeKey, TokenRole,
};
use cloudless_net::quic::{QuicConfig, QuicTransport};

const HOUR: Duration = Duration::from_secs(3600);
/// A call's deadline: generous, a handshake on a loaded machine can be slow.
const WAIT: Duration = Duration::from_secs(30);

struct Cluster {
    ca: Arc<ClusterCa>,
    consensus: Arc<MemConsensus>,
    coordinator: NodeCredentials,
    server: EnrollServer,
}

impl Cluster {
    fn start() -> Self {
        let ca = Arc::new(ClusterCa::init("lab", SystemTime::now()).unwrap());
        let consensus = Arc::new(MemConsensus::new());
        let coordinator = quic_common::creds(&ca, Role::Coordinator, 1_000);
        let service = EnrollService::new(
            Arc::clone(&ca),
            consensus.clone(),
            Arc::new(SystemClock),
            DEFAULT_NODE_LIFETIME,
        );
        let server = EnrollServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            &coordinator,
            Arc::new(service),
            EnrollConfig::default(),
        )
        .unwrap();
        Self {
            ca,
            consensus,
            coordinator,
            server,
        }
    }

    /// Creates a token through consensus, `age` old, valid for `ttl` from its creation.
    async fn token(
        &self,
        role: TokenRole,
        age: Duration,
        ttl: Duration,
        max_uses: Option<u32>,
    ) -> JoinToken {
        let token = JoinToken::generate(self.ca.digest()).unwrap();
        let created = SystemClock.now_ms() - age.as_millis() as u64;
        let record = token.record(role, created, ttl, max_uses);
        assert!(!format!("{record:?}").contains(&*token.reveal()));
        self.propose(Command::CreateJoinToken { token: record })
            .await;
        token
    }

    async fn propose(&self, command: Command) {
        let at = SystemClock.now_ms();
        self.consensus
            .propose(CommandEnvelope::new(at, command))
            .await
            .unwrap();
    }

    async fn join(
        &self,
        token: &JoinToken,
        name: &str,
        role: TokenRole,
    ) -> Result<NodeCredentials, EnrollError> {
        let key = NodeKey::generate().unwrap();
        let params = EnrollParams {
            name: name.into(),
            role,
            report: report(),
        };
        enroll(self.server.local_addr().unwrap(), token, &key, params, WAIT).await
    }

    async fn uses(&self, token: &JoinToken) -> u32 {
        let state = self.consensus.state().await.unwrap();
        state.join_tokens[token.id()].uses
    }
}

fn report() -> NodeReport {
    let r = Resources {
        cpu_millis: 2000,
        memory_mib: 2048,
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

fn refused(got: Result<NodeCredentials, EnrollError>, want: RefusalCode) {
    match got {
        Err(EnrollError::Refused { code, .. }) if code == want => {}
        other => panic!("expected a {want:?} refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_joiner_enrolls_and_then_speaks_mtls_with_its_certificate() {
    let c = Cluster::start();
    let token = c
        .token(TokenRole::Agent, Duration::ZERO, HOUR, Some(2))
        .await;
    // The key is generated and stored locally (0600); only the CSR leaves.
    let dir = tempfile::tempdir().unwrap();
    let key = NodeKey::generate().unwrap();
    key.save(&dir.path().join(NODE_KEY_FILE)).unwrap();
    let mode = std::fs::metadata(dir.path().join(NODE_KEY_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let params = EnrollParams {
        name: "edge-1".into(),
        role: TokenRole::Agent,
        report: report(),
    };
    let creds = enroll(c.server.local_addr().unwrap(), &token, &key, params, WAIT)
        .await
        .unwrap();
    let state = c.consensus.state().await.unwrap();
    let node = state.node_by_name("edge-1").unwrap().id;
    assert_eq!(
        creds.identity(),
        &PeerIdentity {
            cluster: "lab".into(),
            role: Role::Agent,
            node,
        }
    );
    assert_eq!(c.uses(&token).await, 1);

    // The new credentials work on the cluster transport.
    let config = QuicConfig::default();
    let any = "127.0.0.1:0".parse().unwrap();
    let coordinator = QuicTransport::bind(any, &c.coordinator, config.clone()).unwrap();
    let agent = QuicTransport::bind(any, &creds, config).unwrap();
    let addr = coordinator.local_addr().unwrap().to_string();
    assert_eq!(agent.connect(&addr).await.unwrap().role, Role::Coordinator);
    agent
        .send(NodeId(1_000), Bytes::from_static(b"hello"))
        .await
        .unwrap();
    let m = coordinator.recv().await.unwrap();
    assert_eq!(m.from, *creds.identity());
}

#[tokio::test]
async fn a_token_pinning_another_ca_sends_nothing() {
    let c = Cluster::start();
    let real = c.token(TokenRole::Agent, Duration::ZERO, HOUR, None).await;
    let rogue = ClusterCa::init("lab", SystemTime::now()).unwrap();
    // Same id and secret, but the digest of another CA.
    let text = real
        .reveal()
        .replace(&hex_of(&c.ca.digest()), &hex_of(&rogue.digest()));
    let forged = JoinToken::parse(&text).unwrap();
    let got = c.join(&forged, "edge-1", TokenRole::Agent).await;
    assert!(matches!(got, Err(EnrollError::CaMismatch)), "{got:?}");
    assert_eq!(c.uses(&real).await, 0, "the secret reached the server");
}

fn hex_of(d: &[u8; 32]) -> String {
    d.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn tampered_expired_exhausted_and_revoked_tokens_are_refused() {
    let c = Cluster::start();
    // Tampered: one character of the secret changed (still valid base32).
    let token = c.token(TokenRole::Agent, Duration::ZERO, HOUR, None).await;
    let mut text = token.reveal().to_string();
    let last = text.pop().unwrap();
    text.push(if last == 'a' { 'b' } else { 'a' });
    let tampered = JoinToken::parse(&text).unwrap();
    refused(
        c.join(&tampered, "t-1", TokenRole::Agent).await,
        RefusalCode::TokenRefused,
    );

    // Expired: created two hours ago with a one-hour TTL.
    let expired = c.token(TokenRole::Agent, 2 * HOUR, HOUR, None).await;
    refused(
        c.join(&expired, "t-2", TokenRole::Agent).await,
        RefusalCode::TokenRefused,
    );

    // Exhausted: one use only.
    let once = c
        .token(TokenRole::Agent, Duration::ZERO, HOUR, Some(1))
        .await;
    c.join(&once, "t-3", TokenRole::Agent).await.unwrap();
    refused(
        c.join(&once, "t-4", TokenRole::Agent).await,
        RefusalCode::TokenRefused,
    );

    // Revoked.
    let revoked = c.token(TokenRole::Agent, Duration::ZERO, HOUR, None).await;
    c.propose(Command::RevokeJoinToken {
        id: revoked.id().to_owned(),
    })
    .await;
    refused(
        c.join(&revoked, "t-5", TokenRole::Agent).await,
        RefusalCode::TokenRefused,
    );

    let state = c.consensus.state().await.unwrap();
    let names: Vec<&str> = state.nodes.values().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["t-3"], "a refused join registered a node");
}

#[tokio::test]
async fn an_agent_token_cannot_join_a_coordinator_and_names_are_unique() {
    let c = Cluster::start();
    let agent = c.token(TokenRole::Agent, Duration::ZERO, HOUR, None).await;
    refused(
        c.join(&agent, "sneaky", TokenRole::Coordinator).await,
        RefusalCode::RoleMismatch,
    );
    let coord = c
        .token(TokenRole::Coordinator, Duration::ZERO, HOUR, None)
        .await;
    let creds = c.join(&coord, "c-2", TokenRole::Coordinator).await.unwrap();
    assert_eq!(creds.identity().role, Role::Coordinator);
    // A second joiner cannot take over an existing node's name (and so its id).
    refused(
        c.join(&agent, "c-2", TokenRole::Agent).await,
        RefusalCode::NameTaken,
    );
}

/// The replicated state behind coordinators whose reads are gated: with a barrier, every
/// reader waits for the others (two joiners racing under one name, deterministically); with
/// `failures`, the first reads answer Unavailable (a leader without its quorum yet).
struct Gated {
    inner: Arc<MemConsensus>,
    barrier: Option<tokio::sync::Barrier>,
    failures: std::sync::atomic::AtomicU32,
    reads: std::sync::atomic::AtomicU32,
}

impl Gated {
    fn new(inner: Arc<MemConsensus>, barrier: Option<usize>, failures: u32) -> Arc<Self> {
        Arc::new(Self {
            inner,
            barrier: barrier.map(tokio::sync::Barrier::new),
            failures: std::sync::atomic::AtomicU32::new(failures),
            reads: std::sync::atomic::AtomicU32::new(0),
        })
    }
}

#[async_trait::async_trait]
impl Consensus for Gated {
    async fn propose(
        &self,
        command: CommandEnvelope,
    ) -> Result<cloudless_core::state::Applied, ConsensusError> {
        self.inner.propose(command).await
    }
    async fn state(&self) -> Result<Arc<cloudless_core::state::ClusterState>, ConsensusError> {
        use std::sync::atomic::Ordering::SeqCst;
        self.reads.fetch_add(1, SeqCst);
        let left = self.failures.load(SeqCst);
        if left > 0 {
            self.failures.store(left - 1, SeqCst);
            return Err(ConsensusError::Unavailable(
                "not enough for a quorum".into(),
            ));
        }
        let state = self.inner.state().await;
        if let Some(b) = &self.barrier {
            b.wait().await;
        }
        state
    }
    async fn watch(
        &self,
        filter: cloudless_core::consensus::WatchFilter,
        from: cloudless_core::ids::Revision,
    ) -> Result<cloudless_core::consensus::ChangeStream, ConsensusError> {
        self.inner.watch(filter, from).await
    }
    async fn status(&self) -> Result<cloudless_core::consensus::ConsensusStatus, ConsensusError> {
        self.inner.status().await
    }
    async fn add_voter(&self, id: NodeId, address: String) -> Result<(), ConsensusError> {
        self.inner.add_voter(id, address).await
    }
    async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError> {
        self.inner.remove_voter(id).await
    }
}

#[tokio::test]
async fn the_same_name_through_two_coordinators_at_once_enrolls_once() {
    let c = Cluster::start();
    let shared = Gated::new(c.consensus.clone(), Some(2), 0);
    // Two coordinators' enrollment endpoints on the same replicated state.
    let server = |n: u64| {
        EnrollServer::bind(
            "127.0.0.1:0".parse().unwrap(),
            &quic_common::creds(&c.ca, Role::Coordinator, n),
            Arc::new(EnrollService::new(
                Arc::clone(&c.ca),
                shared.clone(),
                Arc::new(SystemClock),
                DEFAULT_NODE_LIFETIME,
            )),
            EnrollConfig::default(),
        )
        .unwrap()
    };
    let (first, second) = (server(1_001), server(1_002));
    for round in 0..3 {
        let name = format!("twin-{round}");
        let token = c.token(TokenRole::Agent, Duration::ZERO, HOUR, None).await;
        let params = || EnrollParams {
            name: name.clone(),
            role: TokenRole::Agent,
            report: report(),
        };
        let (k1, k2) = (NodeKey::generate().unwrap(), NodeKey::generate().unwrap());
        // Both pass the name check (the barrier), then race to register.
        let (a, b) = tokio::join!(
            enroll(first.local_addr().unwrap(), &token, &k1, params(), WAIT),
            enroll(second.local_addr().unwrap(), &token, &k2, params(), WAIT),
        );
        let (won, lost) = match (a, b) {
            (Ok(creds), other) | (other, Ok(creds)) => (creds, other),
            (a, b) => panic!("neither joiner enrolled: {a:?} / {b:?}"),
        };
        refused(lost, RefusalCode::NameTaken);
        let state = c.consensus.state().await.unwrap();
        let twins: Vec<NodeId> = state
            .nodes
            .values()
            .filter(|n| n.name.as_str() == name)
            .map(|n| n.id)
            .collect();
        assert_eq!(twins, [won.identity().node], "round {round}");
    }
}

#[tokio::test]
async fn a_patient_joiner_asks_again_while_the_coordinator_is_unavailable_but_not_after_a_refusal()
{
    use std::sync::atomic::Ordering::SeqCst;
    let c = Cluster::start();
    let flaky = Gated::new(c.consensus.clone(), None, 2);
    let server = EnrollServer::bind(
        "127.0.0.1:0".parse().unwrap(),
        &quic_common::creds(&c.ca, Role::Coordinator, 1_001),
        Arc::new(EnrollService::new(
            Arc::clone(&c.ca),
            flaky.clone(),
            Arc::new(SystemClock),
            DEFAULT_NODE_LIFETIME,
        )),
        EnrollConfig::default(),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    let token = c
        .token(TokenRole::Agent, Duration::ZERO, HOUR, Some(1))
        .await;
    let params = |name: &str| EnrollParams {
        name: name.into(),
        role: TokenRole::Agent,
        report: report(),
    };

    // One attempt: the coordinator's Unavailable is the answer.
    let key = NodeKey::generate().unwrap();
    let once = enroll(addr, &token, &key, params("edge-1"), WAIT).await;
    assert!(
        once.as_ref().is_err_and(EnrollError::is_transient),
        "{once:?}"
    );
    refused(once, RefusalCode::Unavailable);

    // Patiently: the second Unavailable is waited out, the third request enrolls, and the
    // single-use token is spent once.
    let creds = enroll_patiently(addr, &token, &key, params("edge-1"), WAIT, WAIT)
        .await
        .unwrap();
    assert_eq!(creds.identity().role, Role::Agent);
    assert_eq!(flaky.reads.load(SeqCst), 3);
    assert_eq!(c.uses(&token).await, 1);

    // A final refusal (the token is used up) is not asked again.
    let other = NodeKey::generate().unwrap();
    let r = enroll_patiently(addr, &token, &other, params("edge-2"), WAIT, WAIT).await;
    assert!(!r.as_ref().is_err_and(EnrollError::is_transient), "{r:?}");
    refused(r, RefusalCode::TokenRefused);
    assert_eq!(flaky.reads.load(SeqCst), 4);
}
