//! The fake's mutable state: containers, local images, scripts, event subscribers, recorded
//! calls. One mutex guards it all and is never held across an `.await`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use cloudless_core::clock::Clock;
use cloudless_core::runtime::{
    ContainerId, ContainerSpec, ContainerState, ContainerStatus, ImageInfo, RuntimeEvent,
};
use futures::channel::mpsc::UnboundedSender;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::Call;
use super::logs::LogBuffer;
use super::script::{Attempt, ExecScript, PullFailure, Script};

/// One container the fake manages.
pub(crate) struct Container {
    pub(crate) spec: ContainerSpec,
    pub(crate) attempt: Attempt,
    pub(crate) state: ContainerState,
    pub(crate) address: Option<String>,
    pub(crate) started_at_ms: Option<u64>,
    pub(crate) finished_at_ms: Option<u64>,
    pub(crate) log: Arc<LogBuffer>,
    // The task playing the attempt's timeline (log lines, exit), while it runs.
    pub(crate) task: Option<JoinHandle<()>>,
}

impl Container {
    pub(crate) fn status(&self) -> ContainerStatus {
        ContainerStatus {
            id: self.spec.id.clone(),
            state: self.state,
            address: self.address.clone(),
            started_at_ms: self.started_at_ms,
            finished_at_ms: self.finished_at_ms,
            oom_killed: self.attempt.oom_killed
                && matches!(self.state, ContainerState::Exited { .. }),
        }
    }
}

/// Everything the fake knows.
#[derive(Default)]
pub(crate) struct State {
    pub(crate) containers: BTreeMap<ContainerId, Container>,
    pub(crate) images: BTreeMap<String, ImageInfo>,
    pub(crate) archives: BTreeMap<PathBuf, Vec<String>>,
    pub(crate) image_scripts: BTreeMap<String, Script>,
    pub(crate) container_scripts: BTreeMap<ContainerId, Script>,
    pub(crate) exec_scripts: BTreeMap<Vec<String>, ExecScript>,
    pub(crate) pull_failures: BTreeMap<String, PullFailure>,
    pub(crate) registry_down: Option<String>,
    pub(crate) refused_classes: BTreeSet<String>,
    pub(crate) subscribers: Vec<UnboundedSender<RuntimeEvent>>,
    pub(crate) calls: Vec<Call>,
    pub(crate) addresses_assigned: u32,
}

impl State {
    /// The attempt a new container plays: its own script first, then its image's, else it
    /// runs until stopped.
    pub(crate) fn attempt_for(&self, spec: &ContainerSpec) -> Attempt {
        self.container_scripts
            .get(&spec.id)
            .or_else(|| self.image_scripts.get(&spec.image))
            .and_then(|script| script.attempt(spec.attempt))
            .cloned()
            .unwrap_or_else(Attempt::runs_until_stopped)
    }

    /// The next container address in 10.88.0.0/16, deterministic in start order.
    pub(crate) fn next_address(&mut self) -> String {
        let n = self.addresses_assigned % (254 * 256);
        self.addresses_assigned = self.addresses_assigned.wrapping_add(1);
        format!("10.88.{}.{}", n / 254, n % 254 + 1)
    }

    /// Records the exit of a running container: state, time, log end, one event to every open
    /// subscriber. Does nothing (and returns false) if it is not running.
    pub(crate) fn exit(&mut self, id: &ContainerId, code: i32, now_ms: u64) -> bool {
        let Some(c) = self.containers.get_mut(id) else {
            return false;
        };
        if c.state != ContainerState::Running {
            return false;
        }
        c.state = ContainerState::Exited { code };
        c.finished_at_ms = Some(now_ms);
        c.log.close();
        if let Some(task) = c.task.take() {
            task.abort();
        }
        tracing::debug!(container = %id, code, "fake container exited");
        let event = RuntimeEvent::Exited {
            id: id.clone(),
            code,
        };
        // Status is updated above, before any subscriber can see the event.
        self.subscribers
            .retain(|tx| tx.unbounded_send(event.clone()).is_ok());
        true
    }
}

/// Image metadata the fake reports: a digest derived from the reference, so it is stable.
pub(crate) fn image_info(reference: &str) -> ImageInfo {
    let digest = hex::encode(Sha256::digest(reference.as_bytes()));
    ImageInfo {
        reference: reference.to_owned(),
        digest: format!("sha256:{digest}"),
        size: 1 << 20,
    }
}

/// Wall-clock time derived from tokio's clock, so that timestamps advance with
/// `tokio::time::advance` in paused tests: `origin_ms` plus the tokio time elapsed since the
/// fake was made.
pub(crate) struct TokioClock {
    origin_ms: u64,
    origin: Instant,
}

impl TokioClock {
    /// A clock showing `origin_ms` now.
    pub(crate) fn new(origin_ms: u64) -> Self {
        Self {
            origin_ms,
            origin: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now_ms(&self) -> u64 {
        let elapsed = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.origin_ms.saturating_add(elapsed)
    }
}
