//! Authorization by certificate identity (DESIGN §8), checked where a message is received:
//!
//! - an agent may only act as itself (heartbeat, report, watch and update its own assignments);
//! - admin operations need an admin identity;
//! - raft traffic needs a coordinator identity.
//!
//! Handlers call these with `RequestContext::peer` (the identity the transport took from the
//! peer's verified certificate) and return the `Status` on refusal.

use cloudless_core::ids::NodeId;
use cloudless_core::transport::{PeerIdentity, Role};

use crate::rpc::Status;

/// Allows `peer` to act for `node` only if it *is* `node` (agents and coordinators act for
/// themselves). Admins never act as a node.
pub fn require_self(peer: &PeerIdentity, node: NodeId) -> Result<(), Status> {
    match peer.role {
        Role::Agent | Role::Coordinator if peer.node == node => Ok(()),
        _ => Err(Status::permission_denied(format!(
            "{peer} may not act for node {}",
            node.get()
        ))),
    }
}

/// Allows only an admin identity.
pub fn require_admin(peer: &PeerIdentity) -> Result<(), Status> {
    require_role(peer, Role::Admin)
}

/// Allows only a coordinator identity (raft traffic, coordinator-to-coordinator calls).
pub fn require_coordinator(peer: &PeerIdentity) -> Result<(), Status> {
    require_role(peer, Role::Coordinator)
}

fn require_role(peer: &PeerIdentity, role: Role) -> Result<(), Status> {
    if peer.role == role {
        Ok(())
    } else {
        Err(Status::permission_denied(format!(
            "{peer} is not a {role} identity"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rpc::StatusCode;

    fn id(role: Role, n: u64) -> PeerIdentity {
        PeerIdentity {
            cluster: "c".into(),
            role,
            node: NodeId(n),
        }
    }

    fn denied(r: Result<(), Status>) -> bool {
        r.is_err_and(|s| s.code == StatusCode::PermissionDenied)
    }

    #[test]
    fn nodes_act_only_as_themselves() {
        assert!(require_self(&id(Role::Agent, 1), NodeId(1)).is_ok());
        assert!(denied(require_self(&id(Role::Agent, 2), NodeId(1))));
        assert!(require_self(&id(Role::Coordinator, 3), NodeId(3)).is_ok());
        assert!(denied(require_self(&id(Role::Admin, 1), NodeId(1))));
    }

    #[test]
    fn roles_gate_admin_and_raft_calls() {
        assert!(require_admin(&id(Role::Admin, 0)).is_ok());
        assert!(denied(require_admin(&id(Role::Coordinator, 1))));
        assert!(require_coordinator(&id(Role::Coordinator, 1)).is_ok());
        assert!(denied(require_coordinator(&id(Role::Agent, 1))));
        assert!(denied(require_coordinator(&id(Role::Admin, 1))));
    }
}
