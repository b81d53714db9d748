//! Shared by the public-API tests: a test cluster CA, credentials for every role, a coordinator
//! on `MemConsensus`, and the API server on 127.0.0.1 with real TLS.
#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use cloudless::Client;
use cloudless::api::{self, ApiConfig, ApiServer, ApiTls};
use cloudless::coordinator::{Coordinator, CoordinatorConfig, CoordinatorDeps, CoordinatorHandle};
use cloudless_core::clock::SystemClock;
use cloudless_core::consensus::{
    ChangeStream, Consensus, ConsensusError, ConsensusStatus, WatchFilter,
};
use cloudless_core::ids::{NodeId, Revision};
use cloudless_core::state::{Applied, ClusterState, CommandEnvelope};
use cloudless_core::testing::consensus::MemConsensus;
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::identity::{ClusterCa, NodeCredentials, NodeKey, RevokedNodes};
use cloudless_sched::{SchedulerConfig, WeightedScheduler};

pub const CLUSTER: &str = "api-test";

pub fn ca(cluster: &str) -> ClusterCa {
    ClusterCa::init(cluster, SystemTime::now()).expect("ca")
}

pub fn creds(ca: &ClusterCa, role: Role, node: u64) -> NodeCredentials {
    let key = NodeKey::generate().expect("key");
    let identity = PeerIdentity {
        cluster: ca.cluster().to_owned(),
        role,
        node: NodeId(node),
    };
    let cert = ca
        .issue(
            &key.csr().expect("csr"),
            &identity,
            SystemTime::now(),
            Duration::from_secs(3600),
        )
        .expect("issue");
    NodeCredentials::new(&key, cert, ca.cert().clone()).expect("credentials")
}

/// A member of a shared `MemConsensus` whose leader the test chooses.
#[derive(Clone)]
pub struct Member {
    pub inner: MemConsensus,
    pub me: NodeId,
    pub leader: Arc<Mutex<NodeId>>,
}

impl Member {
    fn leader(&self) -> NodeId {
        *self.leader.lock().unwrap()
    }
}

#[async_trait]
impl Consensus for Member {
    async fn propose(&self, command: CommandEnvelope) -> Result<Applied, ConsensusError> {
        let leader = self.leader();
        if leader != self.me {
            return Err(ConsensusError::NotLeader {
                leader: Some(leader),
            });
        }
        self.inner.propose(command).await
    }
    async fn state(&self) -> Result<Arc<ClusterState>, ConsensusError> {
        // Like raft's read index: only the leader reads linearizably.
        let leader = self.leader();
        if leader != self.me {
            return Err(ConsensusError::NotLeader {
                leader: Some(leader),
            });
        }
        self.inner.state().await
    }
    async fn watch(
        &self,
        filter: WatchFilter,
        from: Revision,
    ) -> Result<ChangeStream, ConsensusError> {
        self.inner.watch(filter, from).await
    }
    async fn status(&self) -> Result<ConsensusStatus, ConsensusError> {
        let mut s = self.inner.status().await?;
        s.id = self.me;
        s.leader = Some(self.leader());
        s.voters = [NodeId(1), NodeId(2)].into();
        Ok(s)
    }
    async fn add_voter(&self, id: NodeId, address: String) -> Result<(), ConsensusError> {
        self.inner.add_voter(id, address).await
    }
    async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError> {
        self.inner.remove_voter(id).await
    }
}

/// One coordinator (member 1, the leader) with its API server.
pub struct TestApi {
    pub ca: ClusterCa,
    pub mem: MemConsensus,
    pub leader: Arc<Mutex<NodeId>>,
    pub coordinator: CoordinatorHandle,
    pub server: ApiServer,
    pub admin: NodeCredentials,
}

pub async fn start_server(
    ca: &ClusterCa,
    consensus: Arc<dyn Consensus>,
    me: u64,
    max_request_bytes: Option<usize>,
) -> ApiServer {
    let tls = ApiTls {
        credentials: creds(ca, Role::Coordinator, me),
        revoked: RevokedNodes::new(),
    };
    let mut config = ApiConfig::new("127.0.0.1:0".parse().unwrap(), tls);
    if let Some(m) = max_request_bytes {
        config.max_request_bytes = m;
    }
    api::serve(config, consensus, Arc::new(SystemClock))
        .await
        .expect("api server starts")
}

impl TestApi {
    pub async fn start() -> Self {
        Self::start_with(None).await
    }

    pub async fn start_with(max_request_bytes: Option<usize>) -> Self {
        let ca = ca(CLUSTER);
        let mem = MemConsensus::new();
        let leader = Arc::new(Mutex::new(NodeId(1)));
        let member = Arc::new(Member {
            inner: mem.clone(),
            me: NodeId(1),
            leader: Arc::clone(&leader),
        });
        let scheduler = WeightedScheduler::new(SchedulerConfig::default()).expect("scheduler");
        let coordinator = Coordinator::start(
            CoordinatorConfig::default(),
            CoordinatorDeps {
                node: NodeId(1),
                consensus: Arc::clone(&member) as Arc<dyn Consensus>,
                scheduler: Arc::new(scheduler),
                clock: Arc::new(SystemClock),
            },
        )
        .await
        .expect("coordinator starts");
        let server = start_server(&ca, member, 1, max_request_bytes).await;
        let admin = creds(&ca, Role::Admin, 0);
        Self {
            ca,
            mem,
            leader,
            coordinator,
            server,
            admin,
        }
    }

    pub fn addr(&self) -> String {
        self.server.local_addr().to_string()
    }

    pub fn member(&self, me: u64) -> Arc<dyn Consensus> {
        Arc::new(Member {
            inner: self.mem.clone(),
            me: NodeId(me),
            leader: Arc::clone(&self.leader),
        })
    }

    pub fn admin_client(&self) -> Client {
        Client::new([self.addr()], &self.admin).expect("client")
    }

    pub fn client_as(&self, role: Role, node: u64) -> Client {
        Client::new([self.addr()], &creds(&self.ca, role, node)).expect("client")
    }

    /// A client with a raw rustls configuration (e.g. no certificate).
    pub fn client_with(&self, creds: Option<&NodeCredentials>) -> Client {
        let tls = cloudless_net::identity::tls::client_config(self.ca.cert(), creds, api::ALPN)
            .expect("tls");
        Client::with_rustls([self.addr()], Arc::new(tls)).expect("client")
    }
}

pub fn workload_manifest(name: &str, replicas: u32) -> String {
    format!(
        "apiVersion: cloudless.dev/v1\nkind: Workload\nmetadata:\n  name: {name}\n  namespace: demo\n  labels:\n    app: {name}\nspec:\n  image: localhost/cloudless/busybox:latest\n  replicas: {replicas}\n"
    )
}

/// Peer addresses for `set_peers`.
pub fn peers(list: &[(u64, String)]) -> BTreeMap<NodeId, String> {
    list.iter()
        .map(|(id, a)| (NodeId(*id), a.clone()))
        .collect()
}
