//! The table of live connections, by peer node id, and the addresses of peers we dialed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;

use bytes::Bytes;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::PeerIdentity;
use tokio::sync::mpsc;

/// One live connection to a peer.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) identity: PeerIdentity,
    pub(crate) conn: quinn::Connection,
    /// Frames for the connection's writer task.
    pub(crate) frames: mpsc::Sender<Bytes>,
}

impl Peer {
    fn alive(&self) -> bool {
        self.conn.close_reason().is_none()
    }
}

/// Connections by peer id (the newest connection to a peer wins) and dialed addresses.
/// The std mutexes are never held across an `.await`.
#[derive(Debug, Default)]
pub(crate) struct Peers {
    live: Mutex<BTreeMap<NodeId, Peer>>,
    dialed: Mutex<BTreeMap<NodeId, SocketAddr>>,
}

impl Peers {
    pub(crate) fn insert(&self, peer: Peer) {
        if let Ok(mut live) = self.live.lock() {
            live.insert(peer.identity.node, peer);
        }
    }

    pub(crate) fn remember_dialed(&self, node: NodeId, addr: SocketAddr) {
        if let Ok(mut d) = self.dialed.lock() {
            d.insert(node, addr);
        }
    }

    pub(crate) fn dialed_addr(&self, node: NodeId) -> Option<SocketAddr> {
        self.dialed.lock().ok().and_then(|d| d.get(&node).copied())
    }

    /// The live connection to `node`, if any.
    pub(crate) fn get(&self, node: NodeId) -> Option<Peer> {
        let live = self.live.lock().ok()?;
        live.get(&node).filter(|p| p.alive()).cloned()
    }

    /// Forgets `conn` if it is still the entry for `node` (a newer connection stays).
    pub(crate) fn remove(&self, node: NodeId, conn: &quinn::Connection) {
        if let Ok(mut live) = self.live.lock()
            && live
                .get(&node)
                .is_some_and(|p| p.conn.stable_id() == conn.stable_id())
        {
            live.remove(&node);
        }
    }

    pub(crate) fn identities(&self) -> Vec<PeerIdentity> {
        self.live
            .lock()
            .map(|live| {
                live.values()
                    .filter(|p| p.alive())
                    .map(|p| p.identity.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}
