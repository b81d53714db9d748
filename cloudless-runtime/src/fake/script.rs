//! The scripting vocabulary of [`FakeRuntime`](super::FakeRuntime): what a start does, what an
//! exec answers, how a pull fails.

use bytes::Bytes;
use cloudless_core::runtime::{ContainerStats, RuntimeError};

/// Exit code of a container that honours SIGTERM by default (128 + 15).
pub const SIGTERM_EXIT: i32 = 143;
/// Exit code of a container killed with SIGKILL (128 + 9).
pub const SIGKILL_EXIT: i32 = 137;

/// An error a script makes the fake return. Cloneable, unlike [`RuntimeError`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptedError {
    /// `RuntimeError::InvalidSpec` (e.g. the entrypoint does not exist in the image).
    InvalidSpec(String),
    /// `RuntimeError::Unavailable` (the backend is down).
    Unavailable(String),
    /// `RuntimeError::Other` carrying this message.
    Other(String),
}

/// The error behind `RuntimeError::Other` when a script asks for [`ScriptedError::Other`].
#[derive(Debug, thiserror::Error)]
#[error("scripted failure: {0}")]
pub struct FakeError(pub String);

impl ScriptedError {
    pub(crate) fn to_runtime_error(&self) -> RuntimeError {
        match self {
            Self::InvalidSpec(m) => RuntimeError::InvalidSpec(m.clone()),
            Self::Unavailable(m) => RuntimeError::Unavailable(m.clone()),
            Self::Other(m) => RuntimeError::Other(Box::new(FakeError(m.clone()))),
        }
    }
}

/// What a started container does on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartOutcome {
    /// Runs, then exits with `code` `after_ms` after the start.
    Exit {
        /// Exit code.
        code: i32,
        /// Run time in milliseconds (tokio time).
        after_ms: u64,
    },
    /// Runs until stopped or removed.
    RunUntilStopped,
    /// `start` fails with this error; the container stays `Created`.
    FailStart(ScriptedError),
}

/// How a running container reacts to `stop`'s graceful signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopBehaviour {
    /// Exits with `code` `after_ms` after the signal (killed with 137 if that is past the grace).
    ExitOnTerm {
        /// Exit code.
        code: i32,
        /// Shutdown time in milliseconds.
        after_ms: u64,
    },
    /// Ignores the signal; killed with 137 when the grace period ends.
    IgnoreTerm,
}

/// A chunk of output the container writes `at_ms` after its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Milliseconds after the start.
    pub at_ms: u64,
    /// Bytes appended to the log.
    pub data: Bytes,
}

/// What one start of a container does: its outcome, its output, its stats, its stop reaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    /// The outcome of `start`.
    pub outcome: StartOutcome,
    /// Output, written at the given times while the container runs.
    pub logs: Vec<LogLine>,
    /// What `stats` reports while it runs.
    pub stats: ContainerStats,
    /// Reaction to `stop`.
    pub on_stop: StopBehaviour,
    /// Its exit is reported as an OOM kill (`ContainerStatus::oom_killed`).
    pub oom_killed: bool,
}

impl Attempt {
    fn with_outcome(outcome: StartOutcome) -> Self {
        Self {
            outcome,
            logs: Vec::new(),
            stats: ContainerStats {
                cpu_usage_ns: 1_000_000,
                memory_bytes: 4 << 20,
                pids: 1,
            },
            on_stop: StopBehaviour::ExitOnTerm {
                code: SIGTERM_EXIT,
                after_ms: 0,
            },
            oom_killed: false,
        }
    }

    /// Killed by the OOM killer `after_ms` after the start: exits 137 and its status says
    /// `oom_killed`.
    pub fn oom_killed_after(after_ms: u64) -> Self {
        Self {
            oom_killed: true,
            ..Self::with_outcome(StartOutcome::Exit {
                code: SIGKILL_EXIT,
                after_ms,
            })
        }
    }

    /// Exits with `code` as soon as it starts (see [`Attempt::after_ms`]).
    pub fn exits(code: i32) -> Self {
        Self::with_outcome(StartOutcome::Exit { code, after_ms: 0 })
    }

    /// Runs until stopped or removed.
    pub fn runs_until_stopped() -> Self {
        Self::with_outcome(StartOutcome::RunUntilStopped)
    }

    /// `start` fails with `error`.
    pub fn fails_to_start(error: ScriptedError) -> Self {
        Self::with_outcome(StartOutcome::FailStart(error))
    }

    /// For an exiting attempt, exits `ms` after the start instead of at once.
    pub fn after_ms(mut self, ms: u64) -> Self {
        if let StartOutcome::Exit { after_ms, .. } = &mut self.outcome {
            *after_ms = ms;
        }
        self
    }

    /// Writes `data` to the log `at_ms` after the start.
    pub fn log_at(mut self, at_ms: u64, data: impl Into<Bytes>) -> Self {
        self.logs.push(LogLine {
            at_ms,
            data: data.into(),
        });
        self
    }

    /// Reports `stats` while running.
    pub fn with_stats(mut self, stats: ContainerStats) -> Self {
        self.stats = stats;
        self
    }

    /// Reacts to `stop` with `behaviour`.
    pub fn on_stop(mut self, behaviour: StopBehaviour) -> Self {
        self.on_stop = behaviour;
        self
    }
}

/// Attempts for successive containers of one image (or one container id): a container with
/// `spec.attempt == n` plays attempt `n`, and the last attempt repeats forever after. So
/// `Script::new([Attempt::exits(1)])` is a crash loop, and
/// `Script::new([Attempt::exits(1), Attempt::runs_until_stopped()])` crashes once then runs.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Script {
    attempts: Vec<Attempt>,
}

impl Script {
    /// A script of `attempts`, played in order by attempt number.
    pub fn new(attempts: impl IntoIterator<Item = Attempt>) -> Self {
        Self {
            attempts: attempts.into_iter().collect(),
        }
    }

    /// The attempt a container with attempt number `attempt` plays, if the script has any.
    pub fn attempt(&self, attempt: u32) -> Option<&Attempt> {
        let i = usize::try_from(attempt).unwrap_or(usize::MAX);
        self.attempts.get(i).or_else(|| self.attempts.last())
    }
}

/// The scripted answer to an exec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecScript {
    /// Exit code.
    pub exit_code: i32,
    /// Standard output.
    pub stdout: Bytes,
    /// Standard error.
    pub stderr: Bytes,
    /// How long the command runs (tokio time); past the caller's timeout, exec times out.
    pub takes_ms: u64,
}

impl ExecScript {
    /// Exits 0 at once printing `stdout`.
    pub fn prints(stdout: impl Into<Bytes>) -> Self {
        Self {
            exit_code: 0,
            stdout: stdout.into(),
            stderr: Bytes::new(),
            takes_ms: 0,
        }
    }

    /// Exits with `code` at once, printing nothing.
    pub fn exits(code: i32) -> Self {
        Self {
            exit_code: code,
            stdout: Bytes::new(),
            stderr: Bytes::new(),
            takes_ms: 0,
        }
    }

    /// Runs for `ms` before answering.
    pub fn taking_ms(mut self, ms: u64) -> Self {
        self.takes_ms = ms;
        self
    }
}

/// How pulling an image fails.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PullFailure {
    /// The registry does not have it: `ImageNotFound`.
    Missing,
    /// The registry cannot be reached or refuses: `ImageUnavailable` with this reason.
    Unavailable(String),
}

#[cfg(test)]
mod tests {
    use cloudless_core::runtime::{ContainerId, ContainerState, Runtime};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_scripted_oom_kill_is_in_the_status() {
        let rt = crate::FakeRuntime::new();
        rt.preload_image("img");
        rt.script_image(
            "img",
            Script::new([Attempt::oom_killed_after(50), Attempt::exits(1)]),
        );
        for (attempt, code, oom) in [(0, SIGKILL_EXIT, true), (1, 1, false)] {
            let mut spec = cloudless_core::testing::runtime::basic_spec(
                ContainerId(format!("r1-a{attempt}")),
                "img",
            );
            spec.attempt = attempt;
            rt.create(&spec).await.expect("create");
            rt.start(&spec.id).await.expect("start");
            let running = rt.status(&spec.id).await.expect("status");
            assert!(!running.oom_killed, "only once exited");
            tokio::time::sleep(std::time::Duration::from_millis(60)).await;
            let st = rt.status(&spec.id).await.expect("status");
            assert_eq!(
                (st.state, st.oom_killed),
                (ContainerState::Exited { code }, oom)
            );
        }
    }
}
