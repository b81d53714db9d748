//! What this agent process knows between calls: one exit watch per replica, which replicas have
//! a waiter, and the event subscribers. The exit itself lives on disk (`exit.json`); this only
//! tells the waiting parts of this process about it, exactly once.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Mutex;

use cloudless_core::runtime::{ContainerId, RuntimeEvent};
use tokio::sync::{mpsc, watch};

/// A recorded exit: (code, finished at ms).
pub(crate) type Exit = (i32, u64);

#[derive(Default)]
struct State {
    exits: BTreeMap<String, watch::Sender<Option<Exit>>>,
    waiters: BTreeSet<String>,
    subscribers: Vec<mpsc::UnboundedSender<RuntimeEvent>>,
}

/// Shared local state; never held across an await.
#[derive(Default)]
pub(crate) struct Watch {
    state: Mutex<State>,
}

impl Watch {
    fn with<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        // A poisoned lock only means a thread panicked between plain map updates.
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// A receiver of `id`'s exit (made on first use).
    pub(crate) fn exit_watch(&self, id: &str) -> watch::Receiver<Option<Exit>> {
        self.with(|s| {
            s.exits
                .entry(id.to_owned())
                .or_insert_with(|| watch::channel(None).0)
                .subscribe()
        })
    }

    /// Marks that a waiter runs for `id`; false if one already does or the exit is known.
    pub(crate) fn claim_waiter(&self, id: &str) -> bool {
        self.with(|s| {
            let known = s.exits.get(id).is_some_and(|tx| tx.borrow().is_some());
            !known && s.waiters.insert(id.to_owned())
        })
    }

    /// Gives up a claim whose waiter could not be started.
    pub(crate) fn release_waiter(&self, id: &str) {
        self.with(|s| s.waiters.remove(id));
    }

    /// Records an exit that happened before this process looked (no event: nobody was
    /// subscribed then).
    pub(crate) fn mark_exited(&self, id: &str, exit: Exit) {
        self.with(|s| {
            s.exits
                .entry(id.to_owned())
                .or_insert_with(|| watch::channel(None).0)
                .send_replace(Some(exit));
        });
    }

    /// Publishes `id`'s exit to its watch and to every subscriber (only `id`'s single waiter
    /// calls this, so each exit is published once).
    pub(crate) fn record_exit(&self, id: &str, exit: Exit) {
        self.with(|s| {
            s.waiters.remove(id);
            s.exits
                .entry(id.to_owned())
                .or_insert_with(|| watch::channel(None).0)
                .send_replace(Some(exit));
            let event = RuntimeEvent::Exited {
                id: ContainerId(id.to_owned()),
                code: exit.0,
            };
            s.subscribers.retain(|tx| tx.send(event.clone()).is_ok());
        });
    }

    /// Forgets `id` (after remove): log followers see its watch close.
    pub(crate) fn forget(&self, id: &str) {
        self.with(|s| {
            s.exits.remove(id);
            s.waiters.remove(id);
        });
    }

    /// A new event subscriber.
    pub(crate) fn subscribe(&self) -> mpsc::UnboundedReceiver<RuntimeEvent> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.with(|s| s.subscribers.push(tx));
        rx
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exits_reach_every_subscriber_once() {
        let w = Watch::default();
        let mut a = w.subscribe();
        let rx = w.exit_watch("x");
        assert!(w.claim_waiter("x"));
        assert!(!w.claim_waiter("x"), "one waiter per replica");
        w.record_exit("x", (3, 10));
        let mut b = w.subscribe();
        assert_eq!(
            a.try_recv().ok(),
            Some(RuntimeEvent::Exited {
                id: ContainerId("x".into()),
                code: 3
            })
        );
        assert!(a.try_recv().is_err());
        assert!(b.try_recv().is_err(), "subscribed after the exit");
        assert_eq!(*rx.borrow(), Some((3, 10)));
        assert!(!w.claim_waiter("x"), "the exit is known: no second waiter");
        w.mark_exited("y", (1, 2));
        assert!(!w.claim_waiter("y"));
        assert!(a.try_recv().is_err(), "an exit from before is no event");
        w.forget("x");
        assert!(
            w.claim_waiter("x"),
            "forgotten: a new container of that name"
        );
        assert!(rx.has_changed().is_err(), "forgotten: the watch closed");
    }
}
