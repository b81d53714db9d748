//! Mirrors the cluster state's revoked nodes into the transport (and any other enforcement
//! point), so a `RevokeNode` committed anywhere closes the node's connections and refuses its
//! handshakes on every member.
//!
//! ```text
//!  Consensus ──watch(Node, Event)──▶ state().revoked_nodes ──new ids──▶ sink(node)
//!                                                           (QuicTransport::revoke, RevokedNodes)
//! ```
//!
//! The cluster state is the source of truth: on start the whole set is pushed, then every
//! change to nodes or events re-reads it. A compacted or broken watch is re-opened from the
//! state's current revision after a short pause; no id is ever un-revoked by the mirror.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cloudless_core::consensus::{Consensus, WatchFilter};
use cloudless_core::ids::NodeId;
use cloudless_core::state::ObjectKind;
use futures::StreamExt;
use tokio::task::JoinHandle;

/// Where revocations are enforced: called once per newly revoked node id.
pub type RevocationSink = Arc<dyn Fn(NodeId) + Send + Sync>;

/// How long to wait before re-reading after the consensus answered with an error.
const RETRY: Duration = Duration::from_millis(500);

/// Starts the mirror; abort the handle to stop it.
pub fn mirror_revocations(consensus: Arc<dyn Consensus>, sink: RevocationSink) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut known = BTreeSet::new();
        loop {
            // Push what the state holds now, then follow changes from the next revision.
            let from = match sync(&*consensus, &sink, &mut known).await {
                Some(revision) => revision.next(),
                None => {
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            let filter = WatchFilter {
                kinds: [ObjectKind::Node, ObjectKind::Event].into_iter().collect(),
                ..WatchFilter::default()
            };
            let mut stream = match consensus.watch(filter, from).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(error = %e, "revocation mirror: watch failed; retrying");
                    tokio::time::sleep(RETRY).await;
                    continue;
                }
            };
            while let Some(change) = stream.next().await {
                if let Err(e) = change {
                    tracing::debug!(error = %e, "revocation mirror: watch ended; re-reading");
                    break;
                }
                if sync(&*consensus, &sink, &mut known).await.is_none() {
                    break;
                }
            }
            tokio::time::sleep(RETRY).await;
        }
    })
}

/// Sends every revoked id not sent before; returns the revision read, or `None` when the
/// state could not be read.
async fn sync(
    consensus: &dyn Consensus,
    sink: &RevocationSink,
    known: &mut BTreeSet<NodeId>,
) -> Option<cloudless_core::ids::Revision> {
    let state = match consensus.state().await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(error = %e, "revocation mirror: state unavailable");
            return None;
        }
    };
    for node in &state.revoked_nodes {
        if known.insert(*node) {
            tracing::info!(%node, "node revoked: refusing its connections");
            sink(*node);
        }
    }
    Some(state.revision)
}
