//! The coordinator side: the control methods on an RPC router, acting for the caller's
//! authenticated identity.

use std::sync::Arc;

use cloudless_core::ids::NodeId;
use cloudless_net::identity::authz::require_self;
use cloudless_net::rpc::RequestContext;
use cloudless_net::wire::control::not_leader;
use cloudless_net::wire::pb;
use cloudless_net::{Router, Status, StatusCode};

use super::wire::{ack_to_wire, reports_from_wire, set_to_wire, stopped_from_wire};
use super::{ASSIGNMENTS, HEARTBEAT, REPORT, REPORT_STOPPED};
use crate::control::{ControlError, ControlPlane};

/// Registers `Control/Heartbeat`, `Control/Assignments`, `Control/Report` and
/// `Control/ReportStopped` on `router`, served by `control`.
///
/// The node each call acts for is the caller's authenticated identity (`RequestContext::peer`):
/// only agent and coordinator identities are served (admins never act as a node), and a
/// request whose `node` field names a node other than the caller is refused with
/// `PermissionDenied` before `control` is called. An absent `node` field means the caller.
///
/// `ControlError`s map to the answer as follows: `NotLeader` → the typed in-band `NotLeader`
/// outcome with the leader hint; `Unavailable` → `UNAVAILABLE`; `PermissionDenied` →
/// `PERMISSION_DENIED`; `Rejected` → `FAILED_PRECONDITION`. A request that does not decode is
/// `INVALID_ARGUMENT` naming the field.
pub fn register_control(router: &mut Router, control: Arc<dyn ControlPlane>) {
    let c = Arc::clone(&control);
    router.unary(&HEARTBEAT, move |ctx, req: pb::ControlHeartbeat| {
        let c = Arc::clone(&c);
        async move {
            let node = acting_node(&ctx, req.node)?;
            let report = req
                .report
                .ok_or_else(|| Status::invalid_argument("report: required field is missing"))?
                .try_into()
                .map_err(|e: cloudless_net::WireError| {
                    Status::invalid_argument(e.within("report").to_string())
                })?;
            use pb::control_heartbeat_response::Outcome;
            let outcome = match c.heartbeat(node, &report).await {
                Ok(ack) => Outcome::Ack(ack_to_wire(&ack)),
                Err(ControlError::NotLeader { leader }) => Outcome::NotLeader(not_leader(leader)),
                Err(e) => return Err(status_of(e)),
            };
            Ok(pb::ControlHeartbeatResponse {
                outcome: Some(outcome),
            })
        }
    });
    let c = Arc::clone(&control);
    router.unary(
        &ASSIGNMENTS,
        move |ctx, req: pb::ControlAssignmentsRequest| {
            let c = Arc::clone(&c);
            async move {
                let node = acting_node(&ctx, req.node)?;
                use pb::control_assignments_response::Outcome;
                let outcome = match c.assignments(node).await {
                    Ok(set) => Outcome::Set(set_to_wire(&set)),
                    Err(ControlError::NotLeader { leader }) => {
                        Outcome::NotLeader(not_leader(leader))
                    }
                    Err(e) => return Err(status_of(e)),
                };
                Ok(pb::ControlAssignmentsResponse {
                    outcome: Some(outcome),
                })
            }
        },
    );
    let c = Arc::clone(&control);
    router.unary(&REPORT, move |ctx, req: pb::ControlReport| {
        let c = Arc::clone(&c);
        async move {
            let node = acting_node(&ctx, req.node)?;
            let reports = reports_from_wire(req.reports)
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
            use pb::control_report_response::Outcome;
            let outcome = match c.report(node, reports).await {
                Ok(()) => Outcome::Ack(pb::ControlReportAck {}),
                Err(ControlError::NotLeader { leader }) => Outcome::NotLeader(not_leader(leader)),
                Err(e) => return Err(status_of(e)),
            };
            Ok(pb::ControlReportResponse {
                outcome: Some(outcome),
            })
        }
    });
    let c = control;
    router.unary(
        &REPORT_STOPPED,
        move |ctx, req: pb::ControlReportStopped| {
            let c = Arc::clone(&c);
            async move {
                let node = acting_node(&ctx, req.node)?;
                let stopped = stopped_from_wire(req.stopped);
                use pb::control_report_stopped_response::Outcome;
                let outcome = match c.report_stopped(node, stopped).await {
                    Ok(()) => Outcome::Ack(pb::ControlReportAck {}),
                    Err(ControlError::NotLeader { leader }) => {
                        Outcome::NotLeader(not_leader(leader))
                    }
                    Err(e) => return Err(status_of(e)),
                };
                Ok(pb::ControlReportStoppedResponse {
                    outcome: Some(outcome),
                })
            }
        },
    );
}

/// The node the call acts for: the caller itself, if it may act as a node and the request
/// names no other node.
fn acting_node(ctx: &RequestContext, claimed: Option<pb::NodeId>) -> Result<NodeId, Status> {
    let node = claimed.map_or(ctx.peer.node, NodeId::from);
    require_self(&ctx.peer, node)?;
    Ok(node)
}

/// The RPC status of a control error other than `NotLeader` (which is answered in-band).
fn status_of(e: ControlError) -> Status {
    match e {
        ControlError::NotLeader { leader } => Status::new(
            StatusCode::Unavailable,
            format!("not the leader (leader: {leader:?})"),
        ),
        ControlError::Unavailable(m) => Status::unavailable(m),
        ControlError::PermissionDenied(m) => Status::permission_denied(m),
        ControlError::Rejected(m) => Status::new(StatusCode::FailedPrecondition, m),
    }
}
