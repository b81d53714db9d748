//! Protocol versions and the compatibility rule checked by the hello exchange.

use cloudless_core::transport::Role;

use crate::wire::pb;

/// An RPC protocol version, `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProtocolVersion {
    /// Incompatible changes bump the major.
    pub major: u32,
    /// Append-only changes bump the minor.
    pub minor: u32,
}

impl ProtocolVersion {
    /// The version this build speaks.
    pub const CURRENT: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };

    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }
}

impl std::fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl From<ProtocolVersion> for pb::ProtocolVersion {
    fn from(v: ProtocolVersion) -> Self {
        pb::ProtocolVersion {
            major: v.major,
            minor: v.minor,
        }
    }
}

impl From<pb::ProtocolVersion> for ProtocolVersion {
    fn from(v: pb::ProtocolVersion) -> Self {
        ProtocolVersion {
            major: v.major,
            minor: v.minor,
        }
    }
}

/// Whether two peers may talk. Same major, and either the same minor, or the newer side is a
/// coordinator exactly one minor ahead (coordinators upgrade first and accept agents — and
/// coordinators — one minor behind during a rolling upgrade).
pub fn compatible(
    ours: ProtocolVersion,
    our_role: Role,
    theirs: ProtocolVersion,
    their_role: Role,
) -> bool {
    if ours.major != theirs.major {
        return false;
    }
    if ours.minor == theirs.minor {
        return true;
    }
    let (newer_role, gap) = if ours.minor > theirs.minor {
        (our_role, ours.minor - theirs.minor)
    } else {
        (their_role, theirs.minor - ours.minor)
    };
    gap == 1 && newer_role == Role::Coordinator
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coordinators_accept_agents_one_minor_behind() {
        let v = ProtocolVersion::new;
        assert!(compatible(v(1, 3), Role::Coordinator, v(1, 2), Role::Agent));
        assert!(compatible(v(1, 2), Role::Agent, v(1, 3), Role::Coordinator));
        assert!(!compatible(
            v(1, 4),
            Role::Coordinator,
            v(1, 2),
            Role::Agent
        ));
        assert!(!compatible(
            v(1, 3),
            Role::Agent,
            v(1, 2),
            Role::Coordinator
        ));
        assert!(!compatible(
            v(2, 0),
            Role::Coordinator,
            v(1, 0),
            Role::Agent
        ));
        assert!(compatible(v(1, 0), Role::Admin, v(1, 0), Role::Agent));
    }
}
