//! The agent ↔ coordinator control protocol over the typed RPC layer.
//!
//! [`register_control`] serves a [`ControlPlane`](crate::control::ControlPlane) on a
//! coordinator's RPC [`Router`](cloudless_net::Router); [`RpcControlPlane`] is the agent's
//! `ControlPlane` that calls it over any `Transport`. The messages are in
//! `proto/cloudless/v1/control.proto`; design record: `docs/design/control-protocol.md`.
//!
//! ```text
//!  Agent ──ControlPlane──▶ RpcControlPlane ──Control/Heartbeat|Assignments|Report|ReportStopped──▶ Transport
//!                              │ follows NotLeader hints, rotates on Unavailable
//!                              ▼
//!  coordinator Router ──register_control: node := authenticated peer──▶ ControlPlane (leader)
//! ```
//!
//! The node a call acts for is always the caller's authenticated identity: a request naming
//! another node is refused with `PermissionDenied` before the control plane sees it.
//!
//! [`join`] enrolls an agent with a join token once and reuses its credentials afterwards.

mod client;
pub mod join;
pub mod replica_stream;
mod server;
pub mod wire;

pub use client::{CoordinatorAddr, RpcControlConfig, RpcControlConfigError, RpcControlPlane};
pub use replica_stream::{AgentStreams, ExecQuery, ExecResult, LogData, LogsQuery, RemoteError};
pub use server::register_control;
pub use wire::MessageError;

use cloudless_net::Method;
use cloudless_net::wire::pb;

/// Agent → leader: liveness plus a fresh resource report.
pub const HEARTBEAT: Method<pb::ControlHeartbeat, pb::ControlHeartbeatResponse> =
    Method::idempotent("cloudless.v1.Control/Heartbeat");
/// Agent → leader: the node's full assignment set.
pub const ASSIGNMENTS: Method<pb::ControlAssignmentsRequest, pb::ControlAssignmentsResponse> =
    Method::idempotent("cloudless.v1.Control/Assignments");
/// Agent → leader: replica status changes. Idempotent: a report states a replica's status,
/// so receiving it twice has the effect of receiving it once.
pub const REPORT: Method<pb::ControlReport, pb::ControlReportResponse> =
    Method::idempotent("cloudless.v1.Control/Report");
/// Agent → leader: replicas left out of the node's set whose containers are gone. Idempotent:
/// the leader finishes a replica at most once (a second report finds it terminal). Added after
/// the first three methods; a coordinator without it answers `UNIMPLEMENTED`.
pub const REPORT_STOPPED: Method<pb::ControlReportStopped, pb::ControlReportStoppedResponse> =
    Method::idempotent("cloudless.v1.Control/ReportStopped");
