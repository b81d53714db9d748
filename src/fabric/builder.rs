//! [`FabricBuilder`]: roles, blocks, defaults, validation, and starting the roles.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use async_trait::async_trait;
use cloudless_core::BoxError;
use cloudless_core::clock::{Clock, SystemClock};
use cloudless_core::consensus::Consensus;
use cloudless_core::ids::NodeId;
use cloudless_core::node::NodeReport;
use cloudless_core::object_store::ObjectStore;
use cloudless_core::runtime::Runtime;
use cloudless_core::scheduler::Scheduler;
use cloudless_core::secret_store::SecretStore;
use cloudless_core::transport::{Role, Transport};
use cloudless_net::{Router, RpcClient, RpcConfig, RpcEndpoint};
use cloudless_sched::{SchedulerConfig, WeightedScheduler};

use super::{Fabric, FabricError, FabricHandle};
use crate::agent::{Agent, AgentConfig, AgentDeps, ProcResourceProbe, ResourceProbe};
use crate::control::{AssignmentSet, ControlError, ControlPlane, HeartbeatAck, ReplicaReport};
use crate::coordinator::{Coordinator, CoordinatorConfig, CoordinatorDeps};
use crate::protocol::{CoordinatorAddr, RpcControlConfig, RpcControlPlane, register_control};

/// Starts a consensus member on the Fabric's transport and RPC endpoint (see
/// [`FabricBuilder::consensus_with`]).
pub type ConsensusFactory = Box<
    dyn FnOnce(
            Arc<dyn Transport>,
            RpcClient,
        )
            -> Pin<Box<dyn Future<Output = Result<Arc<dyn Consensus>, BoxError>> + Send>>
        + Send,
>;

/// Where the coordinator's consensus comes from.
pub(super) enum ConsensusSource {
    /// Given, already running.
    Given(Arc<dyn Consensus>),
    /// Started by the Fabric once its RPC endpoint runs.
    Factory(ConsensusFactory),
}

/// Collects roles and building blocks; [`build`](FabricBuilder::build) validates them.
///
/// ```rust
/// use cloudless::coordinator::CoordinatorConfig;
/// use cloudless::core::ids::NodeId;
/// use cloudless::fabric::{Fabric, FabricError};
///
/// // The node id comes from `.node(..)` or from the transport's identity.
/// let err = Fabric::builder().coordinator(CoordinatorConfig::default()).build().unwrap_err();
/// assert_eq!(err.missing_block(), Some("node"));
///
/// // Nothing that stores data has a default: a coordinator needs its consensus.
/// let coordinator = Fabric::builder().node(NodeId(1)).coordinator(CoordinatorConfig::default());
/// assert_eq!(coordinator.build().unwrap_err().missing_block(), Some("consensus"));
/// assert!(matches!(Fabric::builder().build(), Err(FabricError::NoRole)));
/// ```
///
/// Every block setter takes any implementation of the block's trait and erases it to
/// `Arc<dyn Trait>`; the `*_shared` variants take an `Arc` the caller keeps using.
#[derive(Default)]
pub struct FabricBuilder {
    node: Option<NodeId>,
    coordinator: Option<CoordinatorConfig>,
    agent: Option<AgentConfig>,
    consensus: Option<ConsensusSource>,
    scheduler: Option<Arc<dyn Scheduler>>,
    transport: Option<Arc<dyn Transport>>,
    runtime: Option<Arc<dyn Runtime>>,
    object_store: Option<Arc<dyn ObjectStore>>,
    secret_store: Option<Arc<dyn SecretStore>>,
    clock: Option<Arc<dyn Clock>>,
    resources: Option<Arc<dyn ResourceProbe>>,
    coordinators: Vec<CoordinatorAddr>,
    router: Option<Router>,
    rpc: RpcConfig,
    control: RpcControlConfig,
}

impl std::fmt::Debug for FabricBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FabricBuilder")
            .field("node", &self.node)
            .field("coordinator", &self.coordinator)
            .field("agent", &self.agent)
            .field("coordinators", &self.coordinators)
            .finish_non_exhaustive()
    }
}

/// The coordinator role's config and blocks.
type CoordinatorRole = (CoordinatorConfig, ConsensusSource, Arc<dyn Scheduler>);
/// The agent role's config and blocks.
type AgentRole = (AgentConfig, Arc<dyn Runtime>, Arc<dyn ResourceProbe>);

/// What `build` validated and `start` runs.
pub(super) struct Plan {
    pub(super) node: NodeId,
    pub(super) coordinator: Option<CoordinatorRole>,
    pub(super) agent: Option<AgentRole>,
    transport: Option<Arc<dyn Transport>>,
    object_store: Option<Arc<dyn ObjectStore>>,
    secret_store: Option<Arc<dyn SecretStore>>,
    clock: Arc<dyn Clock>,
    coordinators: Vec<CoordinatorAddr>,
    router: Router,
    rpc: RpcConfig,
    control: RpcControlConfig,
}

impl FabricBuilder {
    /// Runs the coordinator role with `config`.
    pub fn coordinator(mut self, config: CoordinatorConfig) -> Self {
        self.coordinator = Some(config);
        self
    }

    /// Runs the agent role with `config`.
    pub fn agent(mut self, config: AgentConfig) -> Self {
        self.agent = Some(config);
        self
    }

    /// This node's id. Defaults to the transport's identity; required without a transport.
    pub fn node(mut self, node: NodeId) -> Self {
        self.node = Some(node);
        self
    }

    /// The replicated cluster state (coordinator role; required, no in-memory default).
    pub fn consensus(self, consensus: impl Consensus) -> Self {
        self.consensus_shared(Arc::new(consensus))
    }

    /// [`consensus`](Self::consensus) from a shared handle.
    pub fn consensus_shared(mut self, consensus: Arc<dyn Consensus>) -> Self {
        self.consensus = Some(ConsensusSource::Given(consensus));
        self
    }

    /// The consensus is a member that talks over the Fabric's own transport (e.g. a
    /// `RaftConsensus` whose `RaftService` is registered on the [`router`](Self::router)):
    /// `start` calls `factory` with the transport and the RPC endpoint's client once the
    /// endpoint runs, then starts the coordinator on the result. Needs a transport. Replaces an
    /// earlier [`consensus`](Self::consensus).
    pub fn consensus_with<F, Fut>(mut self, factory: F) -> Self
    where
        F: FnOnce(Arc<dyn Transport>, RpcClient) -> Fut + Send + 'static,
        Fut: Future<Output = Result<Arc<dyn Consensus>, BoxError>> + Send + 'static,
    {
        let factory: ConsensusFactory = Box::new(move |t, c| Box::pin(factory(t, c)));
        self.consensus = Some(ConsensusSource::Factory(factory));
        self
    }

    /// Placement (coordinator role; default `WeightedScheduler` with default weights).
    pub fn scheduler(mut self, scheduler: impl Scheduler) -> Self {
        self.scheduler = Some(Arc::new(scheduler));
        self
    }

    /// The cluster transport: the coordinator role serves the control protocol on it; an
    /// agent without an in-process coordinator calls the coordinators through it.
    pub fn transport(self, transport: impl Transport) -> Self {
        self.transport_shared(Arc::new(transport))
    }

    /// [`transport`](Self::transport) from a shared handle.
    pub fn transport_shared(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// The container runtime (agent role; required).
    pub fn runtime(self, runtime: impl Runtime) -> Self {
        self.runtime_shared(Arc::new(runtime))
    }

    /// [`runtime`](Self::runtime) from a shared handle.
    pub fn runtime_shared(mut self, runtime: Arc<dyn Runtime>) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Object storage; without one the Fabric does not offer it.
    pub fn object_store(mut self, store: impl ObjectStore) -> Self {
        self.object_store = Some(Arc::new(store));
        self
    }

    /// Secret storage; without one the Fabric does not offer it.
    pub fn secret_store(mut self, store: impl SecretStore) -> Self {
        self.secret_store = Some(Arc::new(store));
        self
    }

    /// Wall-clock time (default: the system clock).
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// How the agent reads its host's capacity (default: `/proc` and `statvfs`).
    pub fn resources(mut self, probe: impl ResourceProbe) -> Self {
        self.resources = Some(Arc::new(probe));
        self
    }

    /// A coordinator the agent may call (agent role without an in-process coordinator).
    /// Call once per coordinator.
    pub fn coordinator_addr(mut self, node: NodeId, addr: impl Into<String>) -> Self {
        self.coordinators.push(CoordinatorAddr::new(node, addr));
        self
    }

    /// Further RPC methods to serve on the transport next to the control protocol (e.g. the
    /// raft service of a consensus member sharing the transport).
    pub fn router(mut self, router: Router) -> Self {
        self.router = Some(router);
        self
    }

    /// RPC endpoint settings (default: `RpcConfig::default()`).
    pub fn rpc_config(mut self, config: RpcConfig) -> Self {
        self.rpc = config;
        self
    }

    /// The agent's control-call settings towards remote coordinators.
    pub fn control_config(mut self, config: RpcControlConfig) -> Self {
        self.control = config;
        self
    }

    /// Validates the roles and blocks and fills the defaults. Errors name what is missing.
    pub fn build(self) -> Result<Fabric, FabricError> {
        let has_coordinator = self.coordinator.is_some();
        let has_agent = self.agent.is_some();
        if !has_coordinator && !has_agent {
            return Err(FabricError::NoRole);
        }
        let node = self.node_id()?;
        if let Some(t) = &self.transport {
            let want = if has_coordinator {
                Role::Coordinator
            } else {
                Role::Agent
            };
            if t.local().role != want {
                return Err(FabricError::Identity(format!(
                    "the transport is {}, but a {want} identity is needed for the roles of this process",
                    t.local()
                )));
            }
        }
        let coordinator = match self.coordinator {
            None => None,
            Some(config) => {
                let consensus = self.consensus.ok_or(FabricError::Missing {
                    role: "coordinator",
                    block: "consensus",
                    hint: "pass the cluster's Consensus (e.g. RaftConsensus); there is no in-memory default outside tests",
                })?;
                if matches!(consensus, ConsensusSource::Factory(_)) && self.transport.is_none() {
                    return Err(FabricError::Missing {
                        role: "coordinator",
                        block: "transport",
                        hint: "consensus_with starts the consensus on the Fabric's transport",
                    });
                }
                if !has_agent && self.transport.is_none() {
                    return Err(FabricError::Missing {
                        role: "coordinator",
                        block: "transport",
                        hint: "agents in other processes reach the coordinator through a Transport",
                    });
                }
                let scheduler = match self.scheduler {
                    Some(s) => s,
                    None => Arc::new(
                        WeightedScheduler::new(SchedulerConfig::default())
                            .map_err(|e| FabricError::Scheduler(e.to_string()))?,
                    ),
                };
                Some((config, consensus, scheduler))
            }
        };
        let agent = match self.agent {
            None => None,
            Some(config) => {
                let runtime = self.runtime.ok_or(FabricError::Missing {
                    role: "agent",
                    block: "runtime",
                    hint: "pass a container Runtime (e.g. ContainerdRuntime)",
                })?;
                if coordinator.is_none() {
                    if self.transport.is_none() {
                        return Err(FabricError::Missing {
                            role: "agent",
                            block: "transport",
                            hint: "without an in-process coordinator the agent calls the coordinators through a Transport",
                        });
                    }
                    if self.coordinators.is_empty() {
                        return Err(FabricError::Missing {
                            role: "agent",
                            block: "coordinator_addr",
                            hint: "name every coordinator the agent may call",
                        });
                    }
                }
                let resources = self
                    .resources
                    .unwrap_or_else(|| Arc::new(ProcResourceProbe));
                Some((config, runtime, resources))
            }
        };
        Ok(Fabric {
            plan: Plan {
                node,
                coordinator,
                agent,
                transport: self.transport,
                object_store: self.object_store,
                secret_store: self.secret_store,
                clock: self.clock.unwrap_or_else(|| Arc::new(SystemClock)),
                coordinators: self.coordinators,
                router: self.router.unwrap_or_default(),
                rpc: self.rpc,
                control: self.control,
            },
        })
    }

    fn node_id(&self) -> Result<NodeId, FabricError> {
        match (self.node, &self.transport) {
            (Some(n), Some(t)) if t.local().node != n => Err(FabricError::Identity(format!(
                "node {} was set, but the transport is {}",
                n.get(),
                t.local()
            ))),
            (Some(n), _) => Ok(n),
            (None, Some(t)) => Ok(t.local().node),
            (None, None) => Err(FabricError::Missing {
                role: if self.coordinator.is_some() {
                    "coordinator"
                } else {
                    "agent"
                },
                block: "node",
                hint: "set the node id (it comes from the transport's identity when there is one)",
            }),
        }
    }
}

/// Answers `Unavailable` until the coordinator is attached: the control methods are served
/// from the moment the RPC endpoint starts, which may be before the coordinator exists (its
/// consensus may need the endpoint first).
#[derive(Default)]
struct LateControl(OnceLock<Arc<dyn ControlPlane>>);

impl LateControl {
    fn get(&self) -> Result<&Arc<dyn ControlPlane>, ControlError> {
        self.0
            .get()
            .ok_or_else(|| ControlError::Unavailable("the coordinator is starting".into()))
    }
}

#[async_trait]
impl ControlPlane for LateControl {
    async fn heartbeat(
        &self,
        node: NodeId,
        report: &NodeReport,
    ) -> Result<HeartbeatAck, ControlError> {
        self.get()?.heartbeat(node, report).await
    }

    async fn assignments(&self, node: NodeId) -> Result<AssignmentSet, ControlError> {
        self.get()?.assignments(node).await
    }

    async fn report(&self, node: NodeId, reports: Vec<ReplicaReport>) -> Result<(), ControlError> {
        self.get()?.report(node, reports).await
    }

    async fn report_stopped(
        &self,
        node: NodeId,
        stopped: Vec<crate::control::StoppedReplica>,
    ) -> Result<(), ControlError> {
        self.get()?.report_stopped(node, stopped).await
    }
}

/// Starts the roles of a validated plan (see [`Fabric::start`]).
pub(super) async fn start(plan: Plan) -> Result<FabricHandle, FabricError> {
    let Plan {
        node,
        coordinator,
        agent,
        transport,
        object_store,
        secret_store,
        clock,
        coordinators,
        mut router,
        rpc,
        control,
    } = plan;
    let mut handle = FabricHandle {
        node,
        coordinator: None,
        agent: None,
        replica_streams: None,
        endpoint: None,
        control: None,
        consensus: None,
        object_store,
        secret_store,
    };
    // 1. The RPC endpoint, serving the control protocol (bound to the coordinator below).
    let late = Arc::new(LateControl::default());
    if let Some(t) = &transport {
        if coordinator.is_some() {
            register_control(&mut router, Arc::clone(&late) as Arc<dyn ControlPlane>);
        }
        handle.endpoint = Some(RpcEndpoint::start(Arc::clone(t), router, rpc)?);
    }
    // 2. The coordinator, on its consensus (started here when it needs the endpoint).
    if let Some((config, source, scheduler)) = coordinator {
        let consensus = match source {
            ConsensusSource::Given(c) => c,
            ConsensusSource::Factory(factory) => {
                let (Some(t), Some(ep)) = (&transport, &handle.endpoint) else {
                    handle.shutdown().await;
                    return Err(FabricError::Missing {
                        role: "coordinator",
                        block: "transport",
                        hint: "consensus_with starts the consensus on the Fabric's transport",
                    });
                };
                match factory(Arc::clone(t), ep.client()).await {
                    Ok(c) => c,
                    Err(e) => {
                        handle.shutdown().await;
                        return Err(FabricError::Consensus(e.to_string()));
                    }
                }
            }
        };
        let deps = CoordinatorDeps {
            node,
            consensus: Arc::clone(&consensus),
            scheduler,
            clock: Arc::clone(&clock),
        };
        match Coordinator::start(config, deps).await {
            Ok(c) => {
                let cp = c.control_plane();
                // Set once, here; `late` is fresh.
                let _ = late.0.set(Arc::clone(&cp));
                handle.control = Some(cp);
                handle.consensus = Some(consensus);
                handle.coordinator = Some(c);
            }
            Err(e) => {
                handle.shutdown().await;
                return Err(e.into());
            }
        }
    }
    // 3. The agent, on the in-process coordinator or over RPC to the coordinators.
    if let Some((config, runtime, resources)) = agent {
        let control: Arc<dyn ControlPlane> = match (&handle.control, &transport, &handle.endpoint) {
            (Some(local), _, _) => Arc::clone(local),
            (None, Some(t), Some(ep)) => {
                match RpcControlPlane::new(Arc::clone(t), ep.client(), coordinators, control) {
                    Ok(cp) => Arc::new(cp),
                    Err(e) => {
                        handle.shutdown().await;
                        return Err(e.into());
                    }
                }
            }
            _ => {
                handle.shutdown().await;
                return Err(FabricError::Missing {
                    role: "agent",
                    block: "transport",
                    hint: "without an in-process coordinator the agent calls the coordinators through a Transport",
                });
            }
        };
        // Logs and exec for the coordinators, on the agent's runtime (`agent::remote`).
        let stream_runtime = Arc::clone(&runtime);
        let deps = AgentDeps {
            node,
            control: Arc::clone(&control),
            runtime,
            clock,
            resources,
        };
        match Agent::start(config, deps).await {
            Ok(a) => {
                handle.agent = Some(a);
                if let Some(t) = &transport {
                    handle.replica_streams = Some(crate::agent::serve_replica_streams(
                        Arc::clone(t),
                        stream_runtime,
                    ));
                }
                handle.control = Some(control);
            }
            Err(e) => {
                handle.shutdown().await;
                return Err(e.into());
            }
        }
    }
    Ok(handle)
}
