//! Conformance suite for the [`Runtime`] contract.
//!
//! A runtime needs real images to run real processes, so the suite asks a [`RuntimeFixture`] how
//! to build specs that exit with a code, run until stopped, or print a text, and which exec
//! commands print or exit. A containerd fixture answers with a busybox image and `sh -c`; the
//! fake runtime's fixture scripts the fake.
//!
//! ```text
//! #[tokio::test]
//! async fn my_runtime_conforms() {
//!     cloudless_core::testing::runtime::conformance(&MyFixture::new()).await;
//! }
//! ```
//!
//! `cloudless-runtime/tests/conformance.rs` runs it on `FakeRuntime`.
//!
//! Core has no timers: the fixture's `sleep` bounds every wait, so a broken runtime fails the
//! suite with a message instead of hanging it. Each check runs on a fresh runtime.

use async_trait::async_trait;
use futures::future::BoxFuture;
use futures::stream::BoxStream;

use super::runtime_checks;
use crate::ids::{ReplicaId, WorkloadId};
use crate::runtime::{ContainerId, ContainerSpec, Runtime};

/// How to make containers with known behaviour on one runtime implementation.
#[async_trait]
pub trait RuntimeFixture: Send + Sync {
    /// The runtime under test.
    type Runtime: Runtime;

    /// A fresh runtime with no containers from earlier checks.
    async fn runtime(&self) -> Self::Runtime;

    /// A spec for container `id` that exits with `code` soon after it starts.
    fn exits_with(&self, runtime: &Self::Runtime, id: ContainerId, code: i32) -> ContainerSpec;

    /// A spec for container `id` that runs until stopped.
    fn runs_until_stopped(&self, runtime: &Self::Runtime, id: ContainerId) -> ContainerSpec;

    /// A spec for container `id` that writes exactly `text` to its output, then exits 0.
    fn prints(&self, runtime: &Self::Runtime, id: ContainerId, text: &str) -> ContainerSpec;

    /// An exec command that writes exactly `text` to stdout and exits 0.
    fn exec_prints(&self, runtime: &Self::Runtime, text: &str) -> Vec<String>;

    /// An exec command that exits with `code`.
    fn exec_exits_with(&self, runtime: &Self::Runtime, code: i32) -> Vec<String>;

    /// Completes after `ms` milliseconds (e.g. `Box::pin(tokio::time::sleep(..))`).
    fn sleep(&self, ms: u64) -> BoxFuture<'static, ()>;

    /// How long any single wait may take before the suite fails, in milliseconds.
    fn patience_ms(&self) -> u64 {
        30_000
    }

    /// The grace period the suite passes to `stop`.
    fn stop_grace_ms(&self) -> u64 {
        2_000
    }
}

/// A spec with every optional field empty: the base fixtures build on.
pub fn basic_spec(id: ContainerId, image: &str) -> ContainerSpec {
    ContainerSpec {
        id,
        workload: WorkloadId(1),
        replica: ReplicaId(1),
        attempt: 0,
        image: image.to_owned(),
        platform: None,
        command: Vec::new(),
        args: Vec::new(),
        env: Vec::new(),
        working_dir: None,
        requests: Default::default(),
        limits: Default::default(),
        security: Default::default(),
        ports: Vec::new(),
        volumes: Vec::new(),
        labels: Default::default(),
    }
}

/// Runs every check of the [`Runtime`] contract, each on a fresh runtime from `fixture`.
pub async fn conformance<F: RuntimeFixture>(fixture: &F) {
    runtime_checks::lifecycle_errors(fixture).await;
    runtime_checks::exit_events(fixture).await;
    runtime_checks::stop_and_remove(fixture).await;
    runtime_checks::logs(fixture).await;
    runtime_checks::exec(fixture).await;
    runtime_checks::odd_input(fixture).await;
}

pub(crate) const SUITE: &str = "Runtime";

/// Awaits `fut`, failing the suite with `what` if it takes longer than the fixture's patience.
pub(crate) async fn within<F: RuntimeFixture, T>(
    fixture: &F,
    what: &str,
    fut: impl std::future::Future<Output = T>,
) -> T {
    let timeout = fixture.sleep(fixture.patience_ms());
    futures::pin_mut!(fut);
    match futures::future::select(fut, timeout).await {
        futures::future::Either::Left((value, _)) => value,
        futures::future::Either::Right(((), _)) => {
            panic!(
                "{SUITE} contract violated: {what}: no answer within {} ms",
                fixture.patience_ms()
            )
        }
    }
}

/// The next item of `stream`, failing the suite if it ends or takes too long.
pub(crate) async fn next_item<F: RuntimeFixture, T>(
    fixture: &F,
    what: &str,
    stream: &mut BoxStream<'static, T>,
) -> T {
    use futures::StreamExt;
    let item = within(fixture, what, stream.next()).await;
    match item {
        Some(item) => item,
        None => panic!("{SUITE} contract violated: {what}: the stream ended"),
    }
}
