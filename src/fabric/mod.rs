//! The `Fabric`: the building blocks wired into a coordinator, an agent, or both in one
//! process.
//!
//! ```text
//!  Fabric::builder()
//!     .coordinator(CoordinatorConfig) .agent(AgentConfig)            roles (one or both)
//!     .consensus(..) .scheduler(..) .transport(..) .runtime(..)      the six blocks, any impl,
//!     .object_store(..) .secret_store(..) .clock(..)                 erased to Arc<dyn Trait>
//!     .build()?          ── defaults + typed FabricError naming what is missing
//!     .start().await?    ── FabricHandle
//!
//!  coordinator role: Coordinator::start ─control_plane─┬─▶ register_control on the transport's
//!                                                      │   Router (remote agents, RPC)
//!  agent role:       Agent::start ◀─in-process─────────┘   (both roles in one process)
//!                                ◀─RpcControlPlane──────── (agent only: to the coordinators)
//! ```
//!
//! Defaults are safe (DESIGN §8): the scheduler defaults to `WeightedScheduler`, the clock to
//! the system clock, the agent's resource probe to `/proc` + `statvfs`. Nothing that stores data
//! defaults to an in-memory implementation: a coordinator without a `consensus` is an error
//! (tests pass `MemConsensus` explicitly), and a Fabric without an object or secret store does
//! not offer those features. Design record: `docs/design/fabric.md`.

mod builder;
mod error;

use std::sync::Arc;

use cloudless_core::consensus::Consensus;
use cloudless_core::ids::NodeId;
use cloudless_core::object_store::ObjectStore;
use cloudless_core::secret_store::SecretStore;
use cloudless_net::{RpcClient, RpcEndpoint};

pub use builder::{ConsensusFactory, FabricBuilder};
pub use error::FabricError;

use crate::agent::{AgentHandle, AgentSnapshot};
use crate::control::ControlPlane;
use crate::coordinator::CoordinatorHandle;

/// A built, not yet started Fabric: validated roles and blocks. [`start`](Fabric::start) runs it.
///
/// A whole node in one process — coordinator and agent — creating a workload and watching its
/// replica start. `MemConsensus` and `FakeRuntime` keep the example self-contained; a real node
/// passes `RaftConsensus` (see `examples/embed_node.rs`), `QuicTransport` and
/// `ContainerdRuntime`.
///
/// ```rust
/// use std::time::Duration;
///
/// use cloudless::agent::{AgentConfig, FixedResourceProbe, HostResources};
/// use cloudless::coordinator::CoordinatorConfig;
/// use cloudless::core::ids::NodeId;
/// use cloudless::core::replica::ReplicaPhase;
/// use cloudless::core::state::{Command, CommandEnvelope};
/// use cloudless::core::testing::consensus::{MemConsensus, MemConsensusConfig};
/// use cloudless::core::transport::{PeerIdentity, Role};
/// use cloudless::core::workload::WorkloadSpec;
/// use cloudless::fabric::Fabric;
/// use cloudless::net::MemNetwork;
/// use cloudless::runtime::FakeRuntime;
///
/// # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let dir = tempfile::tempdir()?;
/// let net = MemNetwork::new(1);
/// let me = PeerIdentity { cluster: "home".into(), role: Role::Coordinator, node: NodeId(1) };
/// let mut agent = AgentConfig::new(dir.path().join("agent"));
/// agent.heartbeat_interval = Duration::from_millis(100);
///
/// let fabric = Fabric::builder()
///     .coordinator(CoordinatorConfig::default())
///     .consensus(MemConsensus::with_config(MemConsensusConfig::default().with_id(NodeId(1)))?)
///     .transport(net.endpoint(me))
///     .agent(agent)
///     .runtime(FakeRuntime::new())
///     .resources(FixedResourceProbe(HostResources {
///         cpu_millis: 4_000,
///         memory_mib: 4_096,
///         storage_gib: 32,
///         power: None,
///     }))
///     .build()?
///     .start()
///     .await?;
///
/// let consensus = fabric.consensus().ok_or("a coordinator has consensus")?;
/// let create = Command::CreateWorkload {
///     namespace: "default".into(),
///     name: "web".into(),
///     labels: Default::default(),
///     spec: WorkloadSpec::new("nginx:1.27"),
/// };
/// consensus.propose(CommandEnvelope::new(1_000, create)).await?;
///
/// // The coordinator places the replica on this node's agent, which runs it.
/// let running = tokio::time::timeout(Duration::from_secs(20), async {
///     loop {
///         let state = consensus.state().await?;
///         if state.replicas.values().any(|r| r.phase == ReplicaPhase::Running) {
///             return Ok::<_, Box<dyn std::error::Error>>(());
///         }
///         tokio::time::sleep(Duration::from_millis(50)).await;
///     }
/// });
/// running.await??;
/// fabric.shutdown().await;
/// # Ok(())
/// # }
/// ```
pub struct Fabric {
    plan: builder::Plan,
}

impl std::fmt::Debug for Fabric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fabric")
            .field("node", &self.plan.node)
            .field("coordinator", &self.plan.coordinator.is_some())
            .field("agent", &self.plan.agent.is_some())
            .finish_non_exhaustive()
    }
}

impl Fabric {
    /// A builder with no roles and no blocks.
    pub fn builder() -> FabricBuilder {
        FabricBuilder::default()
    }

    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.plan.node
    }

    /// Starts the roles: the RPC endpoint on the transport (serving the control protocol, which
    /// answers `Unavailable` until the coordinator is attached), then the coordinator (after
    /// starting its consensus, for `consensus_with`), then the agent (on the coordinator's
    /// control plane in-process, or over RPC).
    /// Must run inside a tokio runtime. On failure everything started so far is stopped.
    pub async fn start(self) -> Result<FabricHandle, FabricError> {
        builder::start(self.plan).await
    }
}

/// A running Fabric.
pub struct FabricHandle {
    node: NodeId,
    coordinator: Option<CoordinatorHandle>,
    agent: Option<AgentHandle>,
    /// Serves coordinators' log and exec streams for the agent role (dropped on shutdown).
    replica_streams: Option<crate::agent::ReplicaStreamServer>,
    endpoint: Option<RpcEndpoint>,
    control: Option<Arc<dyn ControlPlane>>,
    consensus: Option<Arc<dyn Consensus>>,
    object_store: Option<Arc<dyn ObjectStore>>,
    secret_store: Option<Arc<dyn SecretStore>>,
}

impl std::fmt::Debug for FabricHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FabricHandle")
            .field("node", &self.node)
            .field("coordinator", &self.coordinator)
            .field("agent", &self.agent)
            .finish_non_exhaustive()
    }
}

impl FabricHandle {
    /// This node's id.
    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The coordinator, when this process runs the coordinator role.
    pub fn coordinator(&self) -> Option<&CoordinatorHandle> {
        self.coordinator.as_ref()
    }

    /// The agent, when this process runs the agent role.
    pub fn agent(&self) -> Option<&AgentHandle> {
        self.agent.as_ref()
    }

    /// What the agent currently knows, when this process runs the agent role.
    pub fn agent_snapshot(&self) -> Option<AgentSnapshot> {
        self.agent.as_ref().map(AgentHandle::snapshot)
    }

    /// The control plane the agent uses (in-process or RPC); the coordinator's own for a
    /// coordinator-only process.
    pub fn control_plane(&self) -> Option<Arc<dyn ControlPlane>> {
        self.control.clone()
    }

    /// The cluster state, when this process runs the coordinator role.
    pub fn consensus(&self) -> Option<Arc<dyn Consensus>> {
        self.consensus.clone()
    }

    /// The object store, if one was configured (otherwise the feature is not offered).
    pub fn object_store(&self) -> Option<Arc<dyn ObjectStore>> {
        self.object_store.clone()
    }

    /// The secret store, if one was configured (otherwise the feature is not offered).
    pub fn secret_store(&self) -> Option<Arc<dyn SecretStore>> {
        self.secret_store.clone()
    }

    /// A client of the RPC endpoint on the transport, when a transport was configured.
    pub fn rpc_client(&self) -> Option<RpcClient> {
        self.endpoint.as_ref().map(RpcEndpoint::client)
    }

    /// Stops gracefully: the agent first (its containers keep running, a restarted agent adopts
    /// them), then the coordinator's tasks, then the RPC endpoint. The consensus, stores and
    /// runtime are the caller's and are not shut down.
    pub async fn shutdown(mut self) {
        drop(self.replica_streams.take());
        if let Some(agent) = self.agent.take() {
            agent.shutdown().await;
        }
        if let Some(coordinator) = self.coordinator.take() {
            coordinator.shutdown().await;
        }
        drop(self.endpoint.take());
    }
}
