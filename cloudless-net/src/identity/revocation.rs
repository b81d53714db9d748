//! Revoked node ids: a shared set the verifiers consult on every handshake, so a revoked node
//! is refused new connections; the transport also closes its existing ones.

use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use cloudless_core::ids::NodeId;

/// A cheap-to-clone handle on the set of revoked nodes. The cluster state is the source of
/// truth; a driver mirrors it here.
#[derive(Debug, Clone, Default)]
pub struct RevokedNodes {
    set: Arc<RwLock<BTreeSet<NodeId>>>,
}

impl RevokedNodes {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `node`.
    pub fn revoke(&self, node: NodeId) {
        if let Ok(mut s) = self.set.write() {
            s.insert(node);
        }
    }

    /// Replaces the whole set (e.g. from the cluster state after a restart).
    pub fn replace(&self, nodes: BTreeSet<NodeId>) {
        if let Ok(mut s) = self.set.write() {
            *s = nodes;
        }
    }

    /// True if `node` is revoked. A poisoned lock counts as revoked: refuse when unsure.
    pub fn is_revoked(&self, node: NodeId) -> bool {
        self.set.read().map(|s| s.contains(&node)).unwrap_or(true)
    }
}
