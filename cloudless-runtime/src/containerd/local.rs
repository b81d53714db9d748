//! What this process remembers about its containers between calls: one exit watch per
//! container (set once its exit is recorded in containerd), which containers have a waiter,
//! and the event subscribers.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use cloudless_core::runtime::RuntimeEvent;
use tokio::sync::{mpsc, watch};

/// The exit a waiter recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exit {
    /// Exit code.
    pub(crate) code: i32,
    /// When (ms since the Unix epoch).
    pub(crate) at_ms: u64,
}

#[derive(Default)]
struct Inner {
    exits: BTreeMap<String, watch::Sender<Option<Exit>>>,
    waiters: BTreeSet<String>,
    subscribers: Vec<mpsc::UnboundedSender<RuntimeEvent>>,
}

/// Shared local state; never held across an await.
#[derive(Default)]
pub(crate) struct Local {
    inner: Mutex<Inner>,
}

impl Local {
    fn with<T>(&self, f: impl FnOnce(&mut Inner) -> T) -> T {
        // A poisoned lock only means another thread panicked mid-update of plain maps; the
        // maps are still consistent enough to keep serving.
        let mut guard = match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// A receiver of `id`'s exit (created on first use).
    pub(crate) fn exit_watch(&self, id: &str) -> watch::Receiver<Option<Exit>> {
        self.with(|i| {
            i.exits
                .entry(id.to_owned())
                .or_insert_with(|| watch::channel(None).0)
                .subscribe()
        })
    }

    /// Marks that a waiter runs for `id`; false if one already does.
    pub(crate) fn claim_waiter(&self, id: &str) -> bool {
        self.with(|i| i.waiters.insert(id.to_owned()))
    }

    /// Records `id`'s exit and sends the event to every open subscriber (exactly once: only the
    /// single waiter of `id` calls this).
    pub(crate) fn record_exit(&self, id: &str, exit: Exit) {
        self.with(|i| {
            i.waiters.remove(id);
            let tx = i
                .exits
                .entry(id.to_owned())
                .or_insert_with(|| watch::channel(None).0);
            tx.send_replace(Some(exit));
            let event = RuntimeEvent::Exited {
                id: cloudless_core::runtime::ContainerId(id.to_owned()),
                code: exit.code,
            };
            i.subscribers.retain(|s| s.send(event.clone()).is_ok());
        });
    }

    /// Forgets `id` (after remove); followers of its log see the watch close.
    pub(crate) fn forget(&self, id: &str) {
        self.with(|i| {
            i.exits.remove(id);
            i.waiters.remove(id);
        });
    }

    /// A new event subscriber.
    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<RuntimeEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.with(|i| i.subscribers.push(tx));
        rx
    }
}
