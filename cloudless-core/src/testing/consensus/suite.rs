//! The conformance suite for the [`Consensus`] contract.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt;

use crate::consensus::{ChangeStream, Consensus, ConsensusError, WatchFilter};
use crate::event::{EventCategory, Severity};
use crate::ids::{NodeId, Revision};
use crate::node::{NodeReport, Platform};
use crate::resources::Resources;
use crate::service::{ServiceSelector, ServiceSpec};
use crate::state::{
    Applied, ApplyError, COMMAND_VERSION, Change, ClusterState, Command, CommandEnvelope,
    CommandResult, ObjectKind, apply,
};
use crate::testing::check;
use crate::workload::WorkloadSpec;

const SUITE: &str = "Consensus";

/// What the suite may assume about an implementation beyond the contract.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConformanceOptions {
    /// If the implementation compacts its watch history: after this many more proposals
    /// (each producing one change) revision 1 is guaranteed to be compacted. `None` skips
    /// the compaction check.
    pub compacts_after: Option<u64>,
}

/// Runs every check of the [`Consensus`] contract that one handle can observe, each on a
/// fresh instance from `make` (async, since a replicated implementation must elect a leader
/// before it serves).
///
/// A watch that loses a change makes the suite wait forever for it: run the suite under a
/// timeout (`tokio::time::timeout`).
pub async fn conformance<C, F, Fut>(make: F)
where
    C: Consensus,
    F: Fn() -> Fut,
    Fut: Future<Output = C>,
{
    conformance_with(make, ConformanceOptions::default()).await;
}

/// [`conformance`] with [`ConformanceOptions`].
pub async fn conformance_with<C, F, Fut>(make: F, options: ConformanceOptions)
where
    C: Consensus,
    F: Fn() -> Fut,
    Fut: Future<Output = C>,
{
    propose_applies_the_state_machine(&make().await).await;
    rejections_are_errors_and_change_nothing(&make().await).await;
    revisions_are_dense(&make().await).await;
    idempotency_keys_deduplicate(&make().await).await;
    watch_replays_then_follows(&make().await).await;
    watch_filters(&make().await).await;
    watch_from_zero_starts_at_oldest_retained(&make().await).await;
    status_names_a_leader(&make().await).await;
    if let Some(n) = options.compacts_after {
        compacted_revisions_are_refused(&make().await, n).await;
    }
}

fn at(i: u64) -> u64 {
    1_700_000_000_000 + i
}

fn node_report() -> NodeReport {
    let r = Resources {
        cpu_millis: 1000,
        memory_mib: 1024,
        ..Resources::ZERO
    };
    NodeReport {
        platform: Platform::linux_amd64(),
        region: String::new(),
        zone: String::new(),
        labels: Default::default(),
        capacity: r,
        allocatable: r,
        power: Default::default(),
        reliability: Default::default(),
    }
}

fn register(name: &str, i: u64) -> CommandEnvelope {
    let name = match crate::ids::NodeName::new(name) {
        Ok(n) => n,
        Err(e) => panic!("suite bug: bad node name {name}: {e}"),
    };
    CommandEnvelope::new(
        at(i),
        Command::RegisterNode {
            name,
            report: node_report(),
        },
    )
}

fn create_workload(name: &str, i: u64) -> CommandEnvelope {
    CommandEnvelope::new(
        at(i),
        Command::CreateWorkload {
            namespace: "default".into(),
            name: name.into(),
            labels: Default::default(),
            spec: WorkloadSpec::new("conformance:1"),
        },
    )
}

fn put_service(namespace: &str, name: &str, i: u64) -> CommandEnvelope {
    CommandEnvelope::new(
        at(i),
        Command::PutService {
            namespace: namespace.into(),
            name: name.into(),
            spec: ServiceSpec {
                selector: ServiceSelector::default(),
                ports: Vec::new(),
                locality_aware: true,
            },
        },
    )
}

pub(super) fn event(i: u64) -> CommandEnvelope {
    CommandEnvelope::new(
        at(i),
        Command::RecordEvent {
            category: EventCategory::Workload,
            severity: Severity::Info,
            subject: "conformance".into(),
            reason: "Probe".into(),
            message: format!("event {i}"),
        },
    )
}

async fn state_of(c: &dyn Consensus, what: &str) -> Arc<ClusterState> {
    check::ok(SUITE, what, c.state().await)
}

async fn propose_ok(c: &dyn Consensus, env: CommandEnvelope, what: &str) -> Applied {
    check::ok(SUITE, what, c.propose(env).await)
}

/// The next item of a watch stream, which must be a change.
async fn next_change(stream: &mut ChangeStream, what: &str) -> Change {
    match stream.next().await {
        Some(Ok(change)) => change,
        Some(Err(e)) => panic!("{SUITE} contract violated: {what}: watch failed with {e:?}"),
        None => panic!("{SUITE} contract violated: {what}: watch stream ended"),
    }
}

/// Reads `expected.len()` changes and checks they are exactly `expected`, in order.
async fn expect_changes(stream: &mut ChangeStream, expected: &[Change], what: &str) {
    for (i, want) in expected.iter().enumerate() {
        let got = next_change(stream, what).await;
        check::that(
            SUITE,
            &format!(
                "{what}: change #{i} should be {:?} {} at {}, got {:?} {} at {}",
                want.kind, want.key, want.revision, got.kind, got.key, got.revision
            ),
            &got == want,
        );
    }
}

/// `propose` returns exactly what [`apply`] returns on the state it was applied to, and a
/// later `state()` shows it.
pub async fn propose_applies_the_state_machine(c: &dyn Consensus) {
    let commands = [
        register("conf-a", 1),
        create_workload("conf-web", 2),
        put_service("default", "conf-web", 3),
        register("conf-a", 4),
    ];
    for env in commands {
        let before = state_of(c, "state() before propose").await;
        let mut expected_state = (*before).clone();
        let expected = check::ok(
            SUITE,
            "the suite's command applies to the state",
            apply(&mut expected_state, &env),
        );
        let applied = propose_ok(c, env, "propose of a valid command").await;
        check::that(
            SUITE,
            &format!("propose must return apply's result: expected {expected:?}, got {applied:?}"),
            applied == expected,
        );
        let after = state_of(c, "state() after propose").await;
        check::that(
            SUITE,
            "state() after propose must equal the state apply produced (linearizable read)",
            *after == expected_state,
        );
    }
}

/// A state-machine rejection is `Err(Rejected)` and neither changes state nor uses a revision.
pub async fn rejections_are_errors_and_change_nothing(c: &dyn Consensus) {
    propose_ok(c, register("conf-a", 1), "register").await;
    let before = state_of(c, "state()").await;
    let unknown = CommandEnvelope::new(
        at(2),
        Command::ReportNode {
            node: NodeId(u64::MAX),
            report: node_report(),
        },
    );
    check::err(
        SUITE,
        "report for an unknown node",
        "Rejected(NotFound)",
        c.propose(unknown).await,
        |e| matches!(e, ConsensusError::Rejected(ApplyError::NotFound { .. })),
    );
    let mut future = register("conf-b", 3);
    future.version = COMMAND_VERSION + 1;
    check::err(
        SUITE,
        "an unknown command version",
        "Rejected(UnsupportedVersion)",
        c.propose(future).await,
        |e| {
            matches!(
                e,
                ConsensusError::Rejected(ApplyError::UnsupportedVersion { .. })
            )
        },
    );
    let after = state_of(c, "state()").await;
    check::that(
        SUITE,
        "a rejected command changed the state",
        after == before,
    );
    let next = propose_ok(c, register("conf-b", 4), "register after rejections").await;
    check::that(
        SUITE,
        "a rejected command must not use a revision",
        next.revision == Revision(before.revision.0 + 1),
    );
}

/// Every applied command advances the revision by exactly one.
pub async fn revisions_are_dense(c: &dyn Consensus) {
    let mut last = state_of(c, "state()").await.revision;
    for i in 0..10 {
        if i % 3 == 0 {
            let bad = CommandEnvelope::new(
                at(i),
                Command::DeleteService {
                    namespace: "none".into(),
                    name: "none".into(),
                },
            );
            check::that(SUITE, "rejection", c.propose(bad).await.is_err());
        }
        let applied = propose_ok(c, event(i), "record event").await;
        check::that(
            SUITE,
            &format!(
                "revisions must be dense: after {last} came {}",
                applied.revision
            ),
            applied.revision == Revision(last.0 + 1),
        );
        check::that(
            SUITE,
            "every change carries its command's revision",
            applied
                .changes
                .iter()
                .all(|ch| ch.revision == applied.revision),
        );
        last = applied.revision;
    }
    let status = check::ok(SUITE, "status()", c.status().await);
    check::that(
        SUITE,
        "status().applied covers every returned propose",
        status.applied >= last,
    );
}

/// A repeated idempotency key returns the first result, deduplicated, changing nothing.
pub async fn idempotency_keys_deduplicate(c: &dyn Consensus) {
    let env = register("conf-a", 1).with_idempotency_key("conformance-key");
    let first = propose_ok(c, env.clone(), "first use of a key").await;
    check::that(
        SUITE,
        "a first use is not deduplicated",
        !first.deduplicated,
    );
    let before = state_of(c, "state()").await;
    let again = propose_ok(c, env, "repeat of a key").await;
    check::that(
        SUITE,
        "a repeated key must be deduplicated with the first result and no changes",
        again.deduplicated && again.result == first.result && again.changes.is_empty(),
    );
    let after = state_of(c, "state()").await;
    check::that(
        SUITE,
        "a deduplicated command changed the state",
        after == before,
    );
    let other = register("conf-b", 2).with_idempotency_key("another-key");
    let applied = propose_ok(c, other, "a different key").await;
    check::that(
        SUITE,
        "a new key is applied at the next revision",
        !applied.deduplicated && applied.revision == Revision(before.revision.0 + 1),
    );
}

/// `watch(all, r)` replays every change from `r` on, without gaps or duplicates, then follows.
pub async fn watch_replays_then_follows(c: &dyn Consensus) {
    let mut history: Vec<Change> = Vec::new();
    let mut revisions = Vec::new();
    for env in [
        register("conf-a", 1),
        register("conf-b", 2),
        create_workload("conf-web", 3),
        event(4),
    ] {
        let applied = propose_ok(c, env, "propose").await;
        revisions.push(applied.revision);
        history.extend(applied.changes);
    }
    let from = revisions[0];
    let mut all = check::ok(
        SUITE,
        "watch from a past revision",
        c.watch(WatchFilter::all(), from).await,
    );
    expect_changes(&mut all, &history, "replay from a past revision").await;

    // From the middle: exactly the suffix.
    let mid = revisions[2];
    let mut suffix = check::ok(
        SUITE,
        "watch from the middle",
        c.watch(WatchFilter::all(), mid).await,
    );
    let tail: Vec<Change> = history
        .iter()
        .filter(|ch| ch.revision >= mid)
        .cloned()
        .collect();
    expect_changes(&mut suffix, &tail, "replay from the middle").await;

    // Live: new changes follow, in order, on both streams.
    let mut live = Vec::new();
    for env in [
        register("conf-c", 5),
        event(6),
        put_service("default", "conf-svc", 7),
    ] {
        live.extend(propose_ok(c, env, "propose while watching").await.changes);
    }
    expect_changes(&mut all, &live, "live changes after the replay").await;
    expect_changes(&mut suffix, &live, "live changes on a second stream").await;

    // From the next revision: only what comes after.
    let now = state_of(c, "state()").await.revision;
    let mut future = check::ok(
        SUITE,
        "watch from the next revision",
        c.watch(WatchFilter::all(), Revision(now.0 + 1)).await,
    );
    let applied = propose_ok(c, event(8), "propose").await;
    expect_changes(
        &mut future,
        &applied.changes,
        "watch from the next revision",
    )
    .await;
}

/// Filters by kind and by key prefix deliver exactly the matching changes.
pub async fn watch_filters(c: &dyn Consensus) {
    let from = Revision(state_of(c, "state()").await.revision.0 + 1);
    let mut workloads = check::ok(
        SUITE,
        "watch workloads",
        c.watch(WatchFilter::kind(ObjectKind::Workload), from).await,
    );
    let prefix = WatchFilter {
        kinds: BTreeSet::new(),
        key_prefix: "conf-b/".into(),
    };
    let mut services = check::ok(SUITE, "watch a key prefix", c.watch(prefix, from).await);

    propose_ok(c, register("conf-a", 1), "register").await;
    let w1 = propose_ok(c, create_workload("conf-one", 2), "create").await;
    propose_ok(c, put_service("conf-a", "x", 3), "put service").await;
    let s1 = propose_ok(c, put_service("conf-b", "y", 4), "put service").await;
    propose_ok(c, event(5), "event").await;
    let w2 = propose_ok(c, create_workload("conf-two", 6), "create").await;
    let s2 = propose_ok(c, put_service("conf-b", "z", 7), "put service").await;

    let only = |a: &Applied, kind: ObjectKind| -> Vec<Change> {
        a.changes
            .iter()
            .filter(|ch| ch.kind == kind)
            .cloned()
            .collect()
    };
    let want_workloads: Vec<Change> = [
        only(&w1, ObjectKind::Workload),
        only(&w2, ObjectKind::Workload),
    ]
    .concat();
    expect_changes(&mut workloads, &want_workloads, "kind filter").await;
    let want_services: Vec<Change> = [s1.changes, s2.changes].concat();
    expect_changes(&mut services, &want_services, "key prefix filter").await;
}

/// `from = Revision(0)` starts at the oldest retained change.
pub async fn watch_from_zero_starts_at_oldest_retained(c: &dyn Consensus) {
    let mut history = Vec::new();
    for i in 0..3 {
        history.extend(propose_ok(c, event(i), "propose").await.changes);
    }
    let mut stream = check::ok(
        SUITE,
        "watch from 0",
        c.watch(WatchFilter::all(), Revision(0)).await,
    );
    let first = next_change(&mut stream, "watch from 0").await;
    let Some(start) = history.iter().position(|ch| *ch == first) else {
        panic!(
            "{SUITE} contract violated: watch from 0 began with a change never applied: {first:?}"
        );
    };
    // A fresh member may retain changes from before the suite's commands (its own setup);
    // what the suite proposed must then follow without gaps.
    expect_changes(&mut stream, &history[start + 1..], "watch from 0").await;
}

/// A member reports a leader, and voters that include itself.
pub async fn status_names_a_leader(c: &dyn Consensus) {
    let status = check::ok(SUITE, "status()", c.status().await);
    check::that(
        SUITE,
        "status() must name a leader on a serving member",
        status.leader.is_some(),
    );
    check::that(
        SUITE,
        "status().voters must include a leader",
        status.leader.is_some_and(|l| status.voters.contains(&l)),
    );
    let applied = propose_ok(c, event(1), "propose").await;
    let status = check::ok(SUITE, "status()", c.status().await);
    check::that(
        SUITE,
        "status().applied must cover a returned propose",
        status.applied >= applied.revision,
    );
}

/// Revisions older than the retained history are refused with `Compacted`, at the call or as
/// the stream's first item; the oldest retained revision still replays.
pub async fn compacted_revisions_are_refused(c: &dyn Consensus, proposals: u64) {
    for i in 0..proposals.max(2) {
        propose_ok(c, event(i), "propose").await;
    }
    let oldest = match c.watch(WatchFilter::all(), Revision(1)).await {
        Err(ConsensusError::Compacted { requested, oldest }) => {
            check::that(
                SUITE,
                "Compacted names the requested revision",
                requested == Revision(1),
            );
            oldest
        }
        Err(e) => panic!(
            "{SUITE} contract violated: watch from a compacted revision: expected Compacted, got {e:?}"
        ),
        Ok(mut stream) => match stream.next().await {
            Some(Err(ConsensusError::Compacted { oldest, .. })) => oldest,
            other => panic!(
                "{SUITE} contract violated: watch from a compacted revision: expected Compacted, got {other:?}"
            ),
        },
    };
    check::that(
        SUITE,
        "the oldest available revision is after the compacted one",
        oldest > Revision(1),
    );
    let mut stream = check::ok(
        SUITE,
        "watch from the oldest available revision",
        c.watch(WatchFilter::all(), oldest).await,
    );
    let first = next_change(&mut stream, "watch from the oldest available revision").await;
    check::that(
        SUITE,
        &format!(
            "watch from {oldest} must start there, got {}",
            first.revision
        ),
        first.revision == oldest,
    );
}

/// Registers a node and returns its id (for tests composing on the suite's helpers).
pub async fn register_node(c: &dyn Consensus, name: &str) -> NodeId {
    match propose_ok(c, register(name, 0), "register").await.result {
        CommandResult::NodeRegistered { node } => node,
        other => panic!("{SUITE} contract violated: register returned {other:?}"),
    }
}
