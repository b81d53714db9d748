//! One directed link's delivery task: holds in-flight messages until their delivery time.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;
use std::sync::Weak;

use bytes::Bytes;
use cloudless_core::ids::NodeId;
use cloudless_core::transport::{Inbound, PeerIdentity};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use super::network::NetInner;

/// A message admitted to a link, with everything needed to decide at delivery time.
#[derive(Debug)]
pub(super) struct InFlight {
    /// When to deliver.
    pub(super) at: Instant,
    /// Send order on this link; breaks ties so equal times stay FIFO.
    pub(super) seq: u64,
    /// Partition epoch at send time: a partition cut later drops the message.
    pub(super) epoch: u64,
    /// The incarnation of the receiving endpoint it was sent to.
    pub(super) generation: u64,
    /// The frame.
    pub(super) frame: Bytes,
}

impl PartialEq for InFlight {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for InFlight {}
impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.at, self.seq).cmp(&(other.at, other.seq))
    }
}

/// Runs until the network is gone, or the link is closed and empty.
pub(super) async fn run_link(
    net: Weak<NetInner>,
    from: PeerIdentity,
    to: NodeId,
    mut rx: mpsc::Receiver<InFlight>,
) {
    let mut heap: BinaryHeap<Reverse<InFlight>> = BinaryHeap::new();
    let mut open = true;
    loop {
        let next_at = heap.peek().map(|m| m.0.at);
        tokio::select! {
            biased;
            () = sleep_until(next_at.unwrap_or_else(Instant::now)), if next_at.is_some() => {
                if !deliver_due(&net, &from, to, &mut heap).await {
                    return;
                }
            },
            msg = rx.recv(), if open => match msg {
                Some(m) => {
                    heap.push(Reverse(m));
                    // A message that is already due (no injected delay) goes out now rather
                    // than through the timer, whose millisecond granularity would add up to
                    // 1 ms per hop. Heap order keeps the link FIFO.
                    if heap.peek().is_some_and(|m| m.0.at <= Instant::now())
                        && !deliver_due(&net, &from, to, &mut heap).await
                    {
                        return;
                    }
                }
                None => open = false,
            },
            else => return,
        }
    }
}

/// Delivers every message whose time has come, in order; `false` when the network is gone.
async fn deliver_due(
    net: &Weak<NetInner>,
    from: &PeerIdentity,
    to: NodeId,
    heap: &mut BinaryHeap<Reverse<InFlight>>,
) -> bool {
    let now = Instant::now();
    while heap.peek().is_some_and(|m| m.0.at <= now) {
        let Some(Reverse(m)) = heap.pop() else { break };
        let Some(inner) = net.upgrade() else {
            return false;
        };
        let Some(inbox) = inner.deliverable(from.node, to, &m) else {
            continue;
        };
        drop(inner);
        let inbound = Inbound {
            from: from.clone(),
            frame: m.frame,
        };
        if inbox.send(inbound).await.is_ok()
            && let Some(inner) = net.upgrade()
        {
            inner.count_delivered();
        }
    }
    true
}
