//! [`MemConsensus`], the single-member in-memory [`Consensus`](crate::consensus::Consensus), and
//! the conformance suite for its contract.
//!
//! ```text
//!  propose ──lock──▶ apply(Arc::make_mut(state)) ──▶ history ring (bounded, whole revisions)
//!                                   │                        ▲
//!                                   └─ watch::Sender<Revision>   │ re-read on every wake-up
//!                                              │                 │
//!  watch(filter, from) ── stream: cursor `next` ─┴─ wait ────────┘  (too far behind → Compacted)
//! ```
//!
//! Watch streams never hold changes of their own: they keep a cursor and re-read the shared
//! ring whenever the applied revision moves. A slow subscriber therefore cannot lose changes
//! silently — if the ring moved past its cursor it gets `Err(Compacted)` and ends.
//!
//! ```
//! use cloudless_core::testing::consensus::{conformance, MemConsensus};
//!
//! // The factory is async: a replicated implementation elects a leader before it serves.
//! futures::executor::block_on(conformance(|| async { MemConsensus::new() }));
//! ```

mod mem;
mod suite;

pub use mem::{MemConsensus, MemConsensusConfig, MemConsensusConfigError};
pub use suite::*;

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::collections::BTreeSet;
    use std::sync::Arc;

    use async_trait::async_trait;
    use futures::StreamExt;

    use super::suite::event;
    use super::*;
    use crate::consensus::{ChangeStream, Consensus, ConsensusError, ConsensusStatus, WatchFilter};
    use crate::ids::{NodeId, Revision};
    use crate::state::{Applied, ClusterState, CommandEnvelope, ObjectKind, apply};

    /// Runs `f` under a deadline: a watch that lost a change would otherwise hang the test.
    async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
        match tokio::time::timeout(Duration::from_secs(30), f).await {
            Ok(v) => v,
            Err(_) => panic!("{what} timed out: a watch stream probably lost a change"),
        }
    }

    #[tokio::test]
    async fn mem_consensus_conforms() {
        within("suite", conformance(|| async { MemConsensus::new() })).await;
    }

    #[tokio::test]
    async fn mem_consensus_conforms_with_a_small_compacting_history() {
        let make = || async {
            let config = MemConsensusConfig::default().with_retained_changes(32);
            MemConsensus::with_config(config).unwrap()
        };
        let options = ConformanceOptions {
            compacts_after: Some(40),
        };
        within("suite", conformance_with(make, options)).await;
    }

    #[tokio::test]
    async fn a_lagging_watcher_gets_compacted_instead_of_losing_changes() {
        let config = MemConsensusConfig::default().with_retained_changes(4);
        let c = MemConsensus::with_config(config).unwrap();
        let mut stream = c.watch(WatchFilter::all(), Revision(0)).await.unwrap();
        for i in 0..10 {
            c.propose(event(i)).await.unwrap();
        }
        match stream.next().await {
            Some(Err(ConsensusError::Compacted { requested, oldest })) => {
                assert_eq!(requested, Revision(1));
                assert_eq!(oldest, Revision(7));
            }
            other => panic!("expected Compacted, got {other:?}"),
        }
        assert!(stream.next().await.is_none());
        // Watching from the oldest retained revision works.
        let mut again = c.watch(WatchFilter::all(), Revision(0)).await.unwrap();
        assert_eq!(again.next().await.unwrap().unwrap().revision, Revision(7));
    }

    #[tokio::test]
    async fn a_watch_started_from_a_snapshot_resumes_after_it() {
        let mut state = ClusterState::new();
        apply(&mut state, &event(0)).unwrap();
        let c = MemConsensus::with_state(MemConsensusConfig::default(), state).unwrap();
        assert!(matches!(
            c.watch(WatchFilter::all(), Revision(1)).await,
            Err(ConsensusError::Compacted {
                requested: Revision(1),
                oldest: Revision(2)
            })
        ));
        let mut stream = c.watch(WatchFilter::all(), Revision(2)).await.unwrap();
        let applied = c.propose(event(1)).await.unwrap();
        assert_eq!(applied.revision, Revision(2));
        assert_eq!(stream.next().await.unwrap().unwrap(), applied.changes[0]);
    }

    #[tokio::test]
    async fn shutdown_ends_streams_and_refuses_calls() {
        let c = MemConsensus::new();
        let mut stream = c.watch(WatchFilter::all(), Revision(0)).await.unwrap();
        let waiting = tokio::spawn(async move { stream.next().await });
        tokio::task::yield_now().await;
        c.shutdown();
        let first = within("shutdown", waiting).await.unwrap();
        assert!(matches!(first, Some(Err(ConsensusError::Shutdown))));
        assert!(matches!(
            c.propose(event(0)).await,
            Err(ConsensusError::Shutdown)
        ));
        assert!(matches!(c.state().await, Err(ConsensusError::Shutdown)));
    }

    #[tokio::test]
    async fn membership_is_fixed() {
        let c =
            MemConsensus::with_config(MemConsensusConfig::default().with_id(NodeId(7))).unwrap();
        let status = c.status().await.unwrap();
        assert_eq!(status.id, NodeId(7));
        assert_eq!(status.leader, Some(NodeId(7)));
        assert_eq!(status.term, 1);
        assert_eq!(status.voters, BTreeSet::from([NodeId(7)]));
        assert!(matches!(
            c.add_voter(NodeId(8), "x:1".into()).await,
            Err(ConsensusError::Membership(_))
        ));
        assert!(matches!(
            c.remove_voter(NodeId(7)).await,
            Err(ConsensusError::Membership(_))
        ));
        assert_eq!(register_node(&c, "conf-x").await, NodeId(1));
    }

    /// A broken implementation: its watches skip every change of an event.
    struct SkipsEvents(MemConsensus);

    #[async_trait]
    impl Consensus for SkipsEvents {
        async fn propose(&self, command: CommandEnvelope) -> Result<Applied, ConsensusError> {
            self.0.propose(command).await
        }
        async fn state(&self) -> Result<Arc<ClusterState>, ConsensusError> {
            self.0.state().await
        }
        async fn watch(
            &self,
            filter: WatchFilter,
            from: Revision,
        ) -> Result<ChangeStream, ConsensusError> {
            let inner = self.0.watch(filter, from).await?;
            Ok(inner
                .filter(|c| {
                    let keep = !matches!(c, Ok(c) if c.kind == ObjectKind::Event);
                    async move { keep }
                })
                .boxed())
        }
        async fn status(&self) -> Result<ConsensusStatus, ConsensusError> {
            self.0.status().await
        }
        async fn add_voter(&self, id: NodeId, address: String) -> Result<(), ConsensusError> {
            self.0.add_voter(id, address).await
        }
        async fn remove_voter(&self, id: NodeId) -> Result<(), ConsensusError> {
            self.0.remove_voter(id).await
        }
    }

    #[tokio::test]
    async fn the_suite_catches_a_watch_with_gaps() {
        use futures::FutureExt;
        let broken = SkipsEvents(MemConsensus::new());
        let run = std::panic::AssertUnwindSafe(watch_replays_then_follows(&broken));
        let outcome = within("broken suite", run.catch_unwind()).await;
        let message = match outcome {
            Ok(()) => panic!("the suite accepted a watch that skips changes"),
            Err(payload) => payload
                .downcast_ref::<String>()
                .cloned()
                .unwrap_or_default(),
        };
        assert!(message.contains("Consensus contract violated"), "{message}");
    }

    #[test]
    fn config_is_validated() {
        let bad = MemConsensusConfig::default().with_retained_changes(0);
        assert_eq!(bad.validate(), Err(MemConsensusConfigError::NoRetention));
        assert!(MemConsensus::with_config(bad).is_err());
    }
}
