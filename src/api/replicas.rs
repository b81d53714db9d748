//! Logs and Exec of the Workloads service: which replicas a request names, where they run, and
//! the replica streams to their agents (design record: `docs/design/logs-exec.md`).
//!
//! ```text
//!  Logs/Exec ─ authz (logs: read; exec: admin) ─ state: workload → replicas → nodes
//!     every node connected here? ── yes ─▶ AgentStreams (replica streams over the cluster transport)
//!                                └─ no ──▶ forward once to the leader (agents keep their
//!                                          connection to the leader) ─ or Unavailable
//! ```

use std::time::Duration;

use cloudless_core::ids::{NodeId, ReplicaId};
use cloudless_core::node::Liveness;
use cloudless_core::replica::{Replica, ReplicaPhase};
use cloudless_core::state::ClusterState;
use cloudless_core::workload::Workload;
use cloudless_net::StatusCode;
use futures::StreamExt;
use futures::stream::BoxStream;
use tonic::{Code, Status};

use super::errors;
use super::pb;
use crate::protocol::replica_stream::{
    AgentStreams, ExecQuery, ExecResult, LogsQuery, MAX_EXEC_TIMEOUT, RemoteError,
};

/// Exec timeout when the request gives none.
pub(crate) const DEFAULT_EXEC_TIMEOUT: Duration = Duration::from_secs(30);

/// A replica to read from or run in, and the node that runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) replica: ReplicaId,
    pub(crate) node: NodeId,
}

fn full_name(w: &Workload) -> String {
    format!("{}/{}", w.namespace, w.name)
}

/// Replica `id` of `w`, or NotFound naming both.
fn replica_of<'s>(state: &'s ClusterState, w: &Workload, id: u64) -> Result<&'s Replica, Status> {
    state
        .replicas
        .get(&ReplicaId(id))
        .filter(|r| r.workload == w.id)
        .ok_or_else(|| {
            Status::not_found(format!(
                "replica {id} of workload {} not found",
                full_name(w)
            ))
        })
}

/// Whether `node` is alive as far as the ledger knows (Ready or Suspect): a replica on a Down,
/// Left or unknown node cannot be reached, even if the ledger still shows it Running.
fn node_alive(state: &ClusterState, node: NodeId) -> bool {
    state
        .nodes
        .get(&node)
        .is_some_and(|n| matches!(n.liveness, Liveness::Ready | Liveness::Suspect))
}

/// The replicas a logs request reads: `replica` (any phase but Pending), or every replica of
/// the workload that has started and not ended on a live node (`replica` = 0).
pub(crate) fn log_targets(
    state: &ClusterState,
    w: &Workload,
    replica: u64,
) -> Result<Vec<Target>, Status> {
    if replica != 0 {
        let r = replica_of(state, w, replica)?;
        if r.phase == ReplicaPhase::Pending {
            return Err(Status::failed_precondition(format!(
                "replica {replica} of workload {} has not started on node {} yet (Pending)",
                full_name(w),
                r.node
            )));
        }
        return Ok(vec![Target {
            replica: r.id,
            node: r.node,
        }]);
    }
    let targets: Vec<Target> = state
        .replicas_of(w.id)
        .filter(|r| {
            matches!(
                r.phase,
                ReplicaPhase::Starting | ReplicaPhase::Running | ReplicaPhase::Stopping
            ) && node_alive(state, r.node)
        })
        .map(|r| Target {
            replica: r.id,
            node: r.node,
        })
        .collect();
    if targets.is_empty() {
        return Err(Status::failed_precondition(format!(
            "workload {} has no replica running on any node",
            full_name(w)
        )));
    }
    Ok(targets)
}

/// The replica an exec request runs in: `replica` if it is Running, or the Running replica
/// on a live node with the lowest id (`replica` = 0).
pub(crate) fn exec_target(
    state: &ClusterState,
    w: &Workload,
    replica: u64,
) -> Result<Target, Status> {
    let r = if replica != 0 {
        let r = replica_of(state, w, replica)?;
        if r.phase != ReplicaPhase::Running {
            return Err(Status::failed_precondition(format!(
                "replica {replica} of workload {} is {:?}, not Running",
                full_name(w),
                r.phase
            )));
        }
        r
    } else {
        state
            .replicas_of(w.id)
            .filter(|r| r.phase == ReplicaPhase::Running && node_alive(state, r.node))
            .min_by_key(|r| r.id)
            .ok_or_else(|| {
                Status::failed_precondition(format!(
                    "workload {} has no replica running on any node",
                    full_name(w)
                ))
            })?
    };
    Ok(Target {
        replica: r.id,
        node: r.node,
    })
}

/// The exec timeout a request asks for (0: the default), or InvalidArgument.
pub(crate) fn exec_timeout(seconds: u32) -> Result<Duration, Status> {
    if seconds == 0 {
        return Ok(DEFAULT_EXEC_TIMEOUT);
    }
    let t = Duration::from_secs(u64::from(seconds));
    if t > MAX_EXEC_TIMEOUT {
        return Err(errors::invalid(
            "timeout_seconds",
            format!("at most {} seconds", MAX_EXEC_TIMEOUT.as_secs()),
        ));
    }
    Ok(t)
}

/// The gRPC status of a replica stream failure.
pub(crate) fn status(e: RemoteError) -> Status {
    let code = match e.code {
        StatusCode::Ok => Code::Ok,
        StatusCode::Cancelled => Code::Cancelled,
        StatusCode::InvalidArgument => Code::InvalidArgument,
        StatusCode::DeadlineExceeded => Code::DeadlineExceeded,
        StatusCode::NotFound => Code::NotFound,
        StatusCode::PermissionDenied => Code::PermissionDenied,
        StatusCode::ResourceExhausted => Code::ResourceExhausted,
        StatusCode::FailedPrecondition => Code::FailedPrecondition,
        StatusCode::Unimplemented => Code::Unimplemented,
        StatusCode::Internal => Code::Internal,
        StatusCode::Unavailable | StatusCode::HelloRequired => Code::Unavailable,
        StatusCode::Unauthenticated => Code::Unauthenticated,
        StatusCode::Unknown => Code::Unknown,
    };
    Status::new(code, e.message)
}

/// The agent streams, if every target's node is reachable from this coordinator.
pub(crate) fn reachable<'a>(
    agents: Option<&'a AgentStreams>,
    targets: &[Target],
) -> Option<&'a AgentStreams> {
    agents.filter(|a| targets.iter().all(|t| a.reaches(t.node)))
}

/// Why a call cannot be served here (no agent path, and nowhere to forward it).
pub(crate) fn unreachable(agents: Option<&AgentStreams>, targets: &[Target]) -> Status {
    let Some(agents) = agents else {
        return Status::unavailable(
            "this coordinator's API has no path to the agents (it was started without agent streams)",
        );
    };
    let missing: Vec<String> = targets
        .iter()
        .filter(|t| !agents.reaches(t.node))
        .map(|t| format!("node {} (replica {})", t.node, t.replica))
        .collect();
    Status::unavailable(format!(
        "the agent of {} is not connected to this coordinator (it may be down)",
        missing.join(", ")
    ))
}

/// Opens the log of every target and merges them into one stream of API chunks. With `all`
/// (the request named no replica) a target that cannot be opened is skipped, and the call
/// fails only if none could be, with the first failure naming its replica; else (one named
/// replica) its failure is the answer as is.
pub(crate) async fn logs(
    agents: &AgentStreams,
    targets: &[Target],
    req: &pb::LogsRequest,
    all: bool,
) -> Result<BoxStream<'static, Result<pb::LogChunk, Status>>, Status> {
    let mut streams = Vec::with_capacity(targets.len());
    let mut first_failure: Option<Status> = None;
    for t in targets {
        let query = LogsQuery {
            replica: t.replica,
            from_offset: req.from_offset,
            follow: req.follow,
            tail_lines: req.tail_lines,
        };
        let replica = t.replica.get();
        let s = match agents.logs(t.node, query).await {
            Ok(s) => s,
            Err(e) if all => {
                let e = status(e);
                tracing::debug!(replica, node = %t.node, error = %e.message(),
                    "skipping a replica whose log cannot be opened");
                if first_failure.is_none() {
                    first_failure = Some(Status::new(
                        e.code(),
                        format!(
                            "no replica's log could be read; replica {replica} on node {}: {}",
                            t.node,
                            e.message()
                        ),
                    ));
                }
                continue;
            }
            Err(e) => return Err(status(e)),
        };
        streams.push(
            s.map(move |item| {
                item.map(|d| pb::LogChunk {
                    replica,
                    stream: "combined".to_owned(),
                    data: d.data.to_vec(),
                    offset: d.offset,
                })
                .map_err(status)
            })
            .boxed(),
        );
    }
    if streams.is_empty()
        && let Some(e) = first_failure
    {
        return Err(e);
    }
    Ok(futures::stream::select_all(streams).boxed())
}

/// Runs the request's command in `target`.
pub(crate) async fn exec(
    agents: &AgentStreams,
    target: Target,
    command: Vec<String>,
    timeout: Duration,
) -> Result<pb::ExecResponse, Status> {
    let ExecResult {
        exit_code,
        stdout,
        stderr,
        stdout_truncated,
        stderr_truncated,
    } = agents
        .exec(
            target.node,
            ExecQuery {
                replica: target.replica,
                command,
                timeout,
            },
        )
        .await
        .map_err(status)?;
    Ok(pb::ExecResponse {
        exit_code,
        stdout: stdout.to_vec(),
        stderr: stderr.to_vec(),
        stdout_truncated,
        stderr_truncated,
        replica: target.replica.get(),
    })
}
