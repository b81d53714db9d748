//! `impl Runtime for FakeRuntime`: the container lifecycle, played from scripts.

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use cloudless_core::node::Platform;
use cloudless_core::runtime::{
    ContainerId, ContainerSpec, ContainerState, ContainerStats, ContainerStatus, ExecOutput,
    ImageInfo, LogChunk, Runtime, RuntimeError, RuntimeEvent, Support,
};
use futures::StreamExt;
use futures::stream::BoxStream;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep, sleep_until};

use super::logs::LogBuffer;
use super::script::{PullFailure, SIGKILL_EXIT, StartOutcome, StopBehaviour};
use super::state::{Container, State, image_info};
use super::{Call, FakeRuntime};

fn not_found(id: &ContainerId) -> RuntimeError {
    RuntimeError::NotFound(id.clone())
}

impl FakeRuntime {
    /// Exits container `id` with `code` if it is still running.
    fn exit(&self, id: &ContainerId, code: i32) {
        let now = self.clock.now_ms();
        self.lock().exit(id, code, now);
    }

    /// Plays the timeline of a started attempt: log lines at their times, then the exit.
    /// Holds only a weak reference, so a dropped fake does not live on in its timers.
    fn spawn_timeline(&self, id: ContainerId, started: Instant) -> JoinHandle<()> {
        let weak: Weak<Mutex<State>> = Arc::downgrade(&self.state);
        let clock = Arc::clone(&self.clock);
        let (mut steps, exit) = {
            let state = self.lock();
            let Some(c) = state.containers.get(&id) else {
                return tokio::spawn(async {});
            };
            let steps: Vec<(u64, Bytes)> = c
                .attempt
                .logs
                .iter()
                .filter(|l| l.at_ms > 0)
                .map(|l| (l.at_ms, l.data.clone()))
                .collect();
            let exit = match c.attempt.outcome {
                StartOutcome::Exit { code, after_ms } => Some((after_ms, code)),
                _ => None,
            };
            (steps, exit)
        };
        // Stable sort: lines written at the same time keep their script order.
        steps.sort_by_key(|(at, _)| *at);
        tokio::spawn(async move {
            for (at_ms, data) in steps {
                if exit.is_some_and(|(after, _)| at_ms > after) {
                    break;
                }
                sleep_until(started + Duration::from_millis(at_ms)).await;
                let Some(state) = weak.upgrade() else { return };
                let log = lock_state(&state)
                    .containers
                    .get(&id)
                    .map(|c| c.log.clone());
                if let Some(log) = log {
                    log.append(&data);
                }
            }
            if let Some((after_ms, code)) = exit {
                sleep_until(started + Duration::from_millis(after_ms)).await;
                let Some(state) = weak.upgrade() else { return };
                let now = clock.now_ms();
                lock_state(&state).exit(&id, code, now);
            }
        })
    }
}

pub(super) fn lock_state(state: &Mutex<State>) -> MutexGuard<'_, State> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[async_trait]
impl Runtime for FakeRuntime {
    fn name(&self) -> &str {
        &self.name
    }

    fn supports(&self, spec: &ContainerSpec) -> Support {
        if let Some(rule) = &self.support {
            return rule(spec);
        }
        match &spec.security.runtime_class {
            Some(class) if self.lock().refused_classes.contains(class) => Support::No(format!(
                "runtime class {class} is not handled by {}",
                self.name
            )),
            _ => Support::Yes,
        }
    }

    async fn pull_image(
        &self,
        image: &str,
        _platform: Option<&Platform>,
    ) -> Result<ImageInfo, RuntimeError> {
        let mut state = self.lock();
        state.calls.push(Call::PullImage(image.to_owned()));
        if image.is_empty() {
            return Err(RuntimeError::ImageNotFound(String::new()));
        }
        if let Some(reason) = &state.registry_down {
            return Err(RuntimeError::ImageUnavailable {
                image: image.to_owned(),
                reason: reason.clone(),
            });
        }
        match state.pull_failures.get(image) {
            Some(PullFailure::Missing) => Err(RuntimeError::ImageNotFound(image.to_owned())),
            Some(PullFailure::Unavailable(reason)) => Err(RuntimeError::ImageUnavailable {
                image: image.to_owned(),
                reason: reason.clone(),
            }),
            None => {
                let info = image_info(image);
                state.images.insert(image.to_owned(), info.clone());
                Ok(info)
            }
        }
    }

    async fn import_image(&self, archive: &Path) -> Result<Vec<ImageInfo>, RuntimeError> {
        let mut state = self.lock();
        state.calls.push(Call::ImportImage(archive.to_owned()));
        let Some(images) = state.archives.get(archive).cloned() else {
            let image = archive.display().to_string();
            return Err(RuntimeError::ImageUnavailable {
                image,
                reason: "no such archive".into(),
            });
        };
        let infos: Vec<ImageInfo> = images.iter().map(|i| image_info(i)).collect();
        for info in &infos {
            state.images.insert(info.reference.clone(), info.clone());
        }
        Ok(infos)
    }

    async fn create(&self, spec: &ContainerSpec) -> Result<(), RuntimeError> {
        if let Support::No(reason) = self.supports(spec) {
            self.lock().calls.push(Call::Create(spec.id.clone()));
            return Err(RuntimeError::Unsupported(reason));
        }
        let mut state = self.lock();
        state.calls.push(Call::Create(spec.id.clone()));
        if state.containers.contains_key(&spec.id) {
            return Err(RuntimeError::AlreadyExists(spec.id.clone()));
        }
        if spec.security.run_as_non_root && spec.security.run_as_user == Some(0) {
            return Err(RuntimeError::InvalidSpec(
                "runAsNonRoot with runAsUser 0".into(),
            ));
        }
        if !state.images.contains_key(&spec.image) {
            return Err(RuntimeError::ImageNotFound(spec.image.clone()));
        }
        let container = Container {
            spec: spec.clone(),
            attempt: state.attempt_for(spec),
            state: ContainerState::Created,
            address: None,
            started_at_ms: None,
            finished_at_ms: None,
            log: LogBuffer::new(),
            task: None,
        };
        state.containers.insert(spec.id.clone(), container);
        Ok(())
    }

    async fn start(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        state.calls.push(Call::Start(id.clone()));
        let address = state.next_address();
        let c = state.containers.get_mut(id).ok_or_else(|| not_found(id))?;
        if c.state != ContainerState::Created {
            return Err(RuntimeError::InvalidState(format!(
                "{id} is {:?}, not created",
                c.state
            )));
        }
        if let StartOutcome::FailStart(error) = &c.attempt.outcome {
            return Err(error.to_runtime_error());
        }
        c.state = ContainerState::Running;
        c.address = Some(address);
        c.started_at_ms = Some(now);
        // Output scripted at 0 ms is there as soon as start returns.
        for line in c.attempt.logs.iter().filter(|l| l.at_ms == 0) {
            c.log.append(&line.data);
        }
        drop(state);
        let task = self.spawn_timeline(id.clone(), Instant::now());
        match self.lock().containers.get_mut(id) {
            Some(c) if c.state == ContainerState::Running => c.task = Some(task),
            _ => task.abort(),
        }
        Ok(())
    }

    async fn stop(&self, id: &ContainerId, grace_ms: u64) -> Result<(), RuntimeError> {
        let behaviour = {
            let mut state = self.lock();
            state.calls.push(Call::Stop(id.clone(), grace_ms));
            let c = state.containers.get(id).ok_or_else(|| not_found(id))?;
            if c.state != ContainerState::Running {
                return Ok(());
            }
            c.attempt.on_stop
        };
        let (wait_ms, code) = match behaviour {
            StopBehaviour::ExitOnTerm { code, after_ms } if after_ms <= grace_ms => {
                (after_ms, code)
            }
            _ => (grace_ms, SIGKILL_EXIT),
        };
        if wait_ms > 0 {
            sleep(Duration::from_millis(wait_ms)).await;
        }
        // If it exited on its own meanwhile, this changes nothing and emits nothing.
        self.exit(id, code);
        Ok(())
    }

    async fn remove(&self, id: &ContainerId) -> Result<(), RuntimeError> {
        let now = self.clock.now_ms();
        let mut state = self.lock();
        state.calls.push(Call::Remove(id.clone()));
        if !state.containers.contains_key(id) {
            return Err(not_found(id));
        }
        state.exit(id, SIGKILL_EXIT, now);
        if let Some(c) = state.containers.remove(id) {
            c.log.close();
        }
        Ok(())
    }

    async fn status(&self, id: &ContainerId) -> Result<ContainerStatus, RuntimeError> {
        self.lock()
            .containers
            .get(id)
            .map(Container::status)
            .ok_or_else(|| not_found(id))
    }

    async fn list(&self) -> Result<Vec<ContainerStatus>, RuntimeError> {
        Ok(self
            .lock()
            .containers
            .values()
            .map(Container::status)
            .collect())
    }

    async fn events(&self) -> Result<BoxStream<'static, RuntimeEvent>, RuntimeError> {
        let (tx, rx) = futures::channel::mpsc::unbounded();
        self.lock().subscribers.push(tx);
        Ok(rx.boxed())
    }

    async fn logs(
        &self,
        id: &ContainerId,
        from: u64,
        follow: bool,
    ) -> Result<BoxStream<'static, Result<LogChunk, RuntimeError>>, RuntimeError> {
        let mut state = self.lock();
        state.calls.push(Call::Logs(id.clone(), from, follow));
        let log = state
            .containers
            .get(id)
            .map(|c| c.log.clone())
            .ok_or_else(|| not_found(id))?;
        Ok(log.stream(from, follow))
    }

    async fn exec(
        &self,
        id: &ContainerId,
        command: &[String],
        timeout_ms: u64,
    ) -> Result<ExecOutput, RuntimeError> {
        let script = {
            let mut state = self.lock();
            state.calls.push(Call::Exec(id.clone(), command.to_vec()));
            let c = state.containers.get(id).ok_or_else(|| not_found(id))?;
            if c.state != ContainerState::Running {
                return Err(RuntimeError::InvalidState(format!("{id} is not running")));
            }
            let Some(program) = command.first() else {
                return Err(RuntimeError::InvalidSpec("exec needs a command".into()));
            };
            state
                .exec_scripts
                .get(command)
                .cloned()
                .unwrap_or_else(|| super::ExecScript {
                    exit_code: 127,
                    stdout: Bytes::new(),
                    stderr: Bytes::from(format!("fake: {program}: command not found\n")),
                    takes_ms: 0,
                })
        };
        if script.takes_ms > timeout_ms {
            sleep(Duration::from_millis(timeout_ms)).await;
            return Err(RuntimeError::Timeout);
        }
        if script.takes_ms > 0 {
            sleep(Duration::from_millis(script.takes_ms)).await;
        }
        Ok(ExecOutput {
            exit_code: script.exit_code,
            stdout: script.stdout,
            stderr: script.stderr,
        })
    }

    async fn stats(&self, id: &ContainerId) -> Result<ContainerStats, RuntimeError> {
        let state = self.lock();
        let c = state.containers.get(id).ok_or_else(|| not_found(id))?;
        Ok(match c.state {
            ContainerState::Running => c.attempt.stats,
            _ => ContainerStats::default(),
        })
    }
}
