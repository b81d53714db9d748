//! The agent side: a [`ControlPlane`] that calls the coordinators over the typed RPC layer.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use cloudless_core::ids::NodeId;
use cloudless_core::node::NodeReport;
use cloudless_core::transport::{Role, Transport, TransportError};
use cloudless_net::wire::control::leader_hint;
use cloudless_net::wire::{Heartbeat, pb};
use cloudless_net::{Method, RpcClient, RpcError, StatusCode};
use prost::Message;

use super::wire::{ack_from_wire, report_to_wire, set_from_wire, stopped_to_wire};
use super::{ASSIGNMENTS, HEARTBEAT, REPORT, REPORT_STOPPED};
use crate::control::{
    AssignmentSet, ControlError, ControlPlane, HeartbeatAck, ReplicaReport, StoppedReplica,
};

/// One coordinator the agent may call: its node id (checked against the identity the
/// transport authenticates) and the address to dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorAddr {
    /// The coordinator's node id.
    pub node: NodeId,
    /// Its transport address (`host:port` for QUIC, `mem://<id>` in memory).
    pub addr: String,
}

impl CoordinatorAddr {
    /// Coordinator `node` at `addr`.
    pub fn new(node: NodeId, addr: impl Into<String>) -> Self {
        Self {
            node,
            addr: addr.into(),
        }
    }
}

/// Settings of an [`RpcControlPlane`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpcControlConfig {
    /// Deadline of one call to one coordinator, dialing included.
    pub call_timeout: Duration,
    /// Leader hints followed within one call beyond one try of every coordinator.
    pub max_redirects: u32,
}

impl Default for RpcControlConfig {
    fn default() -> Self {
        Self {
            call_timeout: Duration::from_secs(2),
            max_redirects: 3,
        }
    }
}

/// An invalid [`RpcControlPlane`] setup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RpcControlConfigError {
    /// No coordinator was given.
    #[error("coordinators: at least one coordinator is required")]
    NoCoordinators,
    /// Two entries name the same coordinator.
    #[error("coordinators: node {0} is listed twice")]
    DuplicateCoordinator(u64),
    /// `call_timeout` is zero.
    #[error("call_timeout: must be greater than zero")]
    ZeroTimeout,
}

/// The agent's [`ControlPlane`] over RPC.
///
/// It knows every coordinator and keeps calling the one that last answered (the leader, as
/// far as it knows). A `NotLeader` answer sends the call to the hinted leader; an unreachable
/// or unavailable coordinator sends it to the next one in the list. Each attempt has its own
/// deadline ([`RpcControlConfig::call_timeout`]) and a call makes at most one attempt per
/// coordinator plus [`RpcControlConfig::max_redirects`], so a call is bounded in time. When
/// every attempt fails the call returns `Unavailable` (or `NotLeader` if some coordinator
/// answered so) and the agent retries with its backoff. `PermissionDenied` and `Rejected`
/// answers end the call at once.
pub struct RpcControlPlane {
    transport: Arc<dyn Transport>,
    client: RpcClient,
    coordinators: Vec<CoordinatorAddr>,
    config: RpcControlConfig,
    preferred: AtomicUsize,
}

impl std::fmt::Debug for RpcControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcControlPlane")
            .field("coordinators", &self.coordinators)
            .field("config", &self.config)
            .field("preferred", &self.preferred.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// How one attempt ended, when it did not produce an answer.
enum Failure {
    /// Try the next coordinator.
    Retry(String),
    /// End the call with this error.
    Fatal(ControlError),
}

/// What an answer said: the value, or "not the leader" with the hint.
type Outcome<T> = Result<T, Option<NodeId>>;

impl RpcControlPlane {
    /// Calls `coordinators` through `client` (an RPC endpoint on `transport`), dialing them
    /// with `transport` when not connected.
    pub fn new(
        transport: Arc<dyn Transport>,
        client: RpcClient,
        coordinators: Vec<CoordinatorAddr>,
        config: RpcControlConfig,
    ) -> Result<Self, RpcControlConfigError> {
        if coordinators.is_empty() {
            return Err(RpcControlConfigError::NoCoordinators);
        }
        for (i, c) in coordinators.iter().enumerate() {
            if coordinators[..i].iter().any(|o| o.node == c.node) {
                return Err(RpcControlConfigError::DuplicateCoordinator(c.node.get()));
            }
        }
        if config.call_timeout.is_zero() {
            return Err(RpcControlConfigError::ZeroTimeout);
        }
        Ok(Self {
            transport,
            client,
            coordinators,
            config,
            preferred: AtomicUsize::new(0),
        })
    }

    /// The coordinator calls go to first (the one that last answered).
    pub fn current(&self) -> NodeId {
        let i = self.preferred.load(Ordering::Relaxed) % self.coordinators.len();
        self.coordinators[i].node
    }

    fn position(&self, node: NodeId) -> Option<usize> {
        self.coordinators.iter().position(|c| c.node == node)
    }

    async fn connect(&self, target: &CoordinatorAddr) -> Result<(), Failure> {
        let connected = self
            .transport
            .connected_peers()
            .iter()
            .any(|p| p.node == target.node);
        if connected {
            return Ok(());
        }
        let peer = tokio::time::timeout(
            self.config.call_timeout,
            self.transport.connect(&target.addr),
        )
        .await
        .map_err(|_| Failure::Retry(format!("dialing {} timed out", target.addr)))?
        .map_err(|e| match e {
            TransportError::Auth(m) => Failure::Fatal(ControlError::PermissionDenied(format!(
                "{} refused our identity: {m}",
                target.addr
            ))),
            e => Failure::Retry(format!("dialing {}: {e}", target.addr)),
        })?;
        if peer.node != target.node || peer.role != Role::Coordinator {
            return Err(Failure::Retry(format!(
                "{} is {peer}, not coordinator {}",
                target.addr,
                target.node.get()
            )));
        }
        Ok(())
    }

    async fn attempt<Req, Resp>(
        &self,
        target: &CoordinatorAddr,
        method: &Method<Req, Resp>,
        req: Req,
    ) -> Result<Resp, Failure>
    where
        Req: Message,
        Resp: Message + Default,
    {
        self.connect(target).await?;
        self.client
            .call(target.node, method, req, self.config.call_timeout)
            .await
            .map_err(|e| failure(target.node, e))
    }

    /// Runs one control call against the coordinators (see the type's docs).
    async fn call<Req, Resp, T>(
        &self,
        method: &Method<Req, Resp>,
        req: Req,
        read: impl Fn(Resp) -> Result<Outcome<T>, String>,
    ) -> Result<T, ControlError>
    where
        Req: Message + Clone,
        Resp: Message + Default,
    {
        let n = self.coordinators.len();
        let budget = n.saturating_add(usize::try_from(self.config.max_redirects).unwrap_or(0));
        let mut idx = self.preferred.load(Ordering::Relaxed) % n;
        let mut hint: Option<Option<NodeId>> = None;
        let mut last = String::new();
        for _ in 0..budget {
            let target = &self.coordinators[idx];
            let next = (idx + 1) % n;
            match self.attempt(target, method, req.clone()).await {
                Ok(resp) => match read(resp) {
                    Ok(Ok(v)) => {
                        self.preferred.store(idx, Ordering::Relaxed);
                        return Ok(v);
                    }
                    Ok(Err(leader)) => {
                        tracing::debug!(coordinator = %target.node, ?leader, "not the leader");
                        hint = Some(leader);
                        idx = match leader.and_then(|l| self.position(l)) {
                            Some(j) if j != idx => j,
                            _ => next,
                        };
                    }
                    Err(m) => {
                        last = format!("coordinator {}: bad answer: {m}", target.node.get());
                        idx = next;
                    }
                },
                Err(Failure::Fatal(e)) => return Err(e),
                Err(Failure::Retry(m)) => {
                    tracing::debug!(coordinator = %target.node, "control call failed: {m}");
                    last = m;
                    idx = next;
                }
            }
        }
        match hint {
            Some(leader) => Err(ControlError::NotLeader { leader }),
            None => Err(ControlError::Unavailable(format!(
                "no coordinator answered ({n} known): {last}"
            ))),
        }
    }
}

/// Classifies an RPC failure: refusals end the call, anything else tries elsewhere.
fn failure(node: NodeId, e: RpcError) -> Failure {
    let who = format!("coordinator {}", node.get());
    match e {
        RpcError::Status { code, message } => match code {
            StatusCode::PermissionDenied | StatusCode::Unauthenticated => {
                Failure::Fatal(ControlError::PermissionDenied(format!("{who}: {message}")))
            }
            StatusCode::FailedPrecondition
            | StatusCode::InvalidArgument
            | StatusCode::NotFound
            | StatusCode::ResourceExhausted
            // A coordinator of an older version without the method (`Control/ReportStopped`):
            // asking the others would not help.
            | StatusCode::Unimplemented => {
                Failure::Fatal(ControlError::Rejected(format!("{who}: {message}")))
            }
            _ => Failure::Retry(format!("{who}: {code}: {message}")),
        },
        RpcError::Transport(TransportError::Auth(m)) => {
            Failure::Fatal(ControlError::PermissionDenied(format!("{who}: {m}")))
        }
        e @ (RpcError::VersionMismatch { .. } | RpcError::MessageTooLarge { .. }) => {
            Failure::Fatal(ControlError::Rejected(format!("{who}: {e}")))
        }
        e => Failure::Retry(format!("{who}: {e}")),
    }
}

#[async_trait]
impl ControlPlane for RpcControlPlane {
    async fn heartbeat(
        &self,
        node: NodeId,
        report: &NodeReport,
    ) -> Result<HeartbeatAck, ControlError> {
        let req = pb::ControlHeartbeat::from(Heartbeat {
            node,
            report: report.clone(),
        });
        self.call(&HEARTBEAT, req, |resp: pb::ControlHeartbeatResponse| {
            use pb::control_heartbeat_response::Outcome as O;
            match resp.outcome {
                Some(O::Ack(a)) => ack_from_wire(a).map(Ok).map_err(|e| e.to_string()),
                Some(O::NotLeader(n)) => Ok(Err(leader_hint(&n))),
                None => Err("outcome: required field is missing".to_owned()),
            }
        })
        .await
    }

    async fn assignments(&self, node: NodeId) -> Result<AssignmentSet, ControlError> {
        let req = pb::ControlAssignmentsRequest {
            node: Some(node.into()),
        };
        self.call(&ASSIGNMENTS, req, |resp: pb::ControlAssignmentsResponse| {
            use pb::control_assignments_response::Outcome as O;
            match resp.outcome {
                Some(O::Set(s)) => set_from_wire(s).map(Ok).map_err(|e| e.to_string()),
                Some(O::NotLeader(n)) => Ok(Err(leader_hint(&n))),
                None => Err("outcome: required field is missing".to_owned()),
            }
        })
        .await
    }

    async fn report(&self, node: NodeId, reports: Vec<ReplicaReport>) -> Result<(), ControlError> {
        let req = pb::ControlReport {
            node: Some(node.into()),
            reports: reports.iter().map(report_to_wire).collect(),
        };
        self.call(&REPORT, req, |resp: pb::ControlReportResponse| {
            use pb::control_report_response::Outcome as O;
            match resp.outcome {
                Some(O::Ack(_)) => Ok(Ok(())),
                Some(O::NotLeader(n)) => Ok(Err(leader_hint(&n))),
                None => Err("outcome: required field is missing".to_owned()),
            }
        })
        .await
    }

    async fn report_stopped(
        &self,
        node: NodeId,
        stopped: Vec<StoppedReplica>,
    ) -> Result<(), ControlError> {
        let req = pb::ControlReportStopped {
            node: Some(node.into()),
            stopped: stopped.iter().map(stopped_to_wire).collect(),
        };
        self.call(
            &REPORT_STOPPED,
            req,
            |resp: pb::ControlReportStoppedResponse| {
                use pb::control_report_stopped_response::Outcome as O;
                match resp.outcome {
                    Some(O::Ack(_)) => Ok(Ok(())),
                    Some(O::NotLeader(n)) => Ok(Err(leader_hint(&n))),
                    None => Err("outcome: required field is missing".to_owned()),
                }
            },
        )
        .await
    }
}
