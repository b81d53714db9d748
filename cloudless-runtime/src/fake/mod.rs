//! `FakeRuntime`: an in-memory [`Runtime`](cloudless_core::runtime::Runtime) with scripted
//! behaviour, for tests and simulations (design record: `docs/design/fake-runtime.md`).
//!
//! Every container plays an [`Attempt`] chosen at `create` from a [`Script`] registered for its
//! id or its image. Time is tokio time, so under `tokio::time::pause()` crash loops, slow
//! shutdowns and exec timeouts play out deterministically and instantly.

mod lifecycle;
mod logs;
mod script;
mod state;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use cloudless_core::clock::Clock;
use cloudless_core::runtime::{ContainerId, ContainerSpec, Support};

pub use script::{
    Attempt, ExecScript, FakeError, LogLine, PullFailure, SIGKILL_EXIT, SIGTERM_EXIT, Script,
    ScriptedError, StartOutcome, StopBehaviour,
};
use state::{State, TokioClock, image_info};

/// Wall-clock time the default clock shows when the fake is made (2023-11-14T22:13:20Z).
pub const DEFAULT_ORIGIN_MS: u64 = 1_700_000_000_000;

/// A call the fake received, recorded in order for assertions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// `pull_image(image)`.
    PullImage(String),
    /// `import_image(archive)`.
    ImportImage(PathBuf),
    /// `create(spec)`.
    Create(ContainerId),
    /// `start(id)`.
    Start(ContainerId),
    /// `stop(id, grace_ms)`.
    Stop(ContainerId, u64),
    /// `remove(id)`.
    Remove(ContainerId),
    /// `logs(id, from, follow)`.
    Logs(ContainerId, u64, bool),
    /// `exec(id, command)`.
    Exec(ContainerId, Vec<String>),
}

type SupportRule = dyn Fn(&ContainerSpec) -> Support + Send + Sync;

/// The scripted in-memory runtime. Cheap to clone; clones share containers and scripts.
#[derive(Clone)]
pub struct FakeRuntime {
    name: Arc<str>,
    clock: Arc<dyn Clock>,
    support: Option<Arc<SupportRule>>,
    state: Arc<Mutex<State>>,
}

impl Default for FakeRuntime {
    fn default() -> Self {
        Self::new()
    }
}

impl FakeRuntime {
    /// A fake named `fake` with no containers, no local images and a registry that serves every
    /// image; timestamps start at [`DEFAULT_ORIGIN_MS`] and follow tokio time.
    pub fn new() -> Self {
        Self {
            name: Arc::from("fake"),
            clock: Arc::new(TokioClock::new(DEFAULT_ORIGIN_MS)),
            support: None,
            state: Arc::new(Mutex::new(State::default())),
        }
    }

    /// Answers `name()` with `name` (to tell chained fakes apart).
    pub fn with_name(mut self, name: &str) -> Self {
        self.name = Arc::from(name);
        self
    }

    /// Takes timestamps from `clock` instead of tokio time.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Decides `supports` with `rule` instead of the refused runtime classes.
    pub fn with_support_rule(
        mut self,
        rule: impl Fn(&ContainerSpec) -> Support + Send + Sync + 'static,
    ) -> Self {
        self.support = Some(Arc::new(rule));
        self
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        lifecycle::lock_state(&self.state)
    }

    /// Answers `No` to specs asking for runtime class `class` (to test runtime chaining).
    pub fn refuse_runtime_class(&self, class: &str) {
        self.lock().refused_classes.insert(class.to_owned());
    }

    /// Containers of `image` play `script` (by attempt number).
    pub fn script_image(&self, image: &str, script: Script) {
        self.lock().image_scripts.insert(image.to_owned(), script);
    }

    /// Container `id` plays `script`, whatever its image.
    pub fn script_container(&self, id: ContainerId, script: Script) {
        self.lock().container_scripts.insert(id, script);
    }

    /// `exec` of exactly `command` answers `result`; other commands exit 127.
    pub fn script_exec(&self, command: &[&str], result: ExecScript) {
        let command = command.iter().map(|s| (*s).to_owned()).collect();
        self.lock().exec_scripts.insert(command, result);
    }

    /// Pulls of `image` fail with `failure` (`None` heals them).
    pub fn set_pull_failure(&self, image: &str, failure: Option<PullFailure>) {
        let mut state = self.lock();
        match failure {
            Some(f) => state.pull_failures.insert(image.to_owned(), f),
            None => state.pull_failures.remove(image),
        };
    }

    /// A registry outage: every pull fails with `ImageUnavailable(reason)` until `None`.
    pub fn set_registry_down(&self, reason: Option<&str>) {
        self.lock().registry_down = reason.map(str::to_owned);
    }

    /// Makes `image` local without a pull (as if pre-loaded on the device).
    pub fn preload_image(&self, image: &str) {
        self.lock()
            .images
            .insert(image.to_owned(), image_info(image));
    }

    /// `import_image(path)` makes `images` local.
    pub fn add_archive(&self, path: impl Into<PathBuf>, images: &[&str]) {
        let images = images.iter().map(|s| (*s).to_owned()).collect();
        self.lock().archives.insert(path.into(), images);
    }

    /// Whether `image` is local.
    pub fn has_image(&self, image: &str) -> bool {
        self.lock().images.contains_key(image)
    }

    /// The calls received so far (status, list, stats and events are not recorded).
    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }
}

impl fmt::Debug for FakeRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.lock();
        f.debug_struct("FakeRuntime")
            .field("name", &self.name)
            .field("containers", &state.containers.len())
            .field("images", &state.images.len())
            .finish_non_exhaustive()
    }
}
