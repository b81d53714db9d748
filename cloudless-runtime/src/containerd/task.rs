//! Tasks (running processes): start, the exit waiter, stop with grace.
//!
//! One waiter per started container turns containerd's `Wait` into Cloudless's exit: it deletes
//! the task (which also makes the shim flush the log), writes the exit code into the
//! container's labels, then publishes the exit locally. Only the waiter records exits, so each
//! exit is published exactly once.

use std::collections::HashMap;
use std::sync::{Arc, Weak};
use std::time::Duration;

use cloudless_core::runtime::{ContainerId, ContainerState, RuntimeError};
use containerd_client::services::v1::{
    Container, CreateTaskRequest, DeleteTaskRequest, KillRequest, StartRequest,
    UpdateContainerRequest, WaitRequest,
};
use containerd_client::tonic::Code;
use tokio::sync::watch;

use super::client::{Client, container_error, is_unavailable, status_error};
use super::container::{self, now_ms};
use super::local::Exit;
use super::{
    Inner, LABEL_ADDRESS, LABEL_EXIT_CODE, LABEL_FINISHED_AT, LABEL_OOM_KILLED, LABEL_STARTED_AT,
};

const SIGTERM: u32 = 15;
const SIGKILL: u32 = 9;
/// How long a SIGKILLed container may take to be reported exited.
const KILL_PATIENCE: Duration = Duration::from_secs(30);
/// Longest pause between retries while containerd is unreachable.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// Sets container labels (a masked update: other labels stay).
pub(crate) async fn set_labels(
    client: &Client,
    id: &str,
    labels: &[(&str, String)],
) -> Result<(), containerd_client::tonic::Status> {
    let container = Container {
        id: id.to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect::<HashMap<_, _>>(),
        ..Default::default()
    };
    let paths = labels.iter().map(|(k, _)| format!("labels.{k}")).collect();
    client
        .containers()
        .update(client.req(UpdateContainerRequest {
            container: Some(container),
            update_mask: Some(prost_types::FieldMask { paths }),
        }))
        .await
        .map(|_| ())
}

/// Starts a created container.
pub(crate) async fn start(inner: &Arc<Inner>, id: &ContainerId) -> Result<(), RuntimeError> {
    let st = container::status(inner, id).await?;
    match st.state {
        ContainerState::Created => {}
        other => {
            return Err(RuntimeError::InvalidState(format!(
                "start of {id}: it is {other:?}, not Created"
            )));
        }
    }
    let client = &inner.client;
    let name = id.as_str().to_owned();
    // A task left in Created by a start that failed half-way is replaced.
    if container::task_of(inner, &name).await?.is_some() {
        delete_task(client, &name).await?;
    }
    let rootfs = container::mounts(inner, &name).await?;
    let log = inner.log_path(&name);
    if let Some(dir) = log.parent() {
        super::private_dir(dir).await?;
    }
    let uri = match &inner.cfg.log_limit {
        Some(limit) => super::logger::uri(&limit.logger, &log, limit.max_bytes),
        None => format!("file://{}", log.display()),
    };
    let pid = client
        .tasks()
        .create(client.req(CreateTaskRequest {
            container_id: name.clone(),
            rootfs,
            stdout: uri.clone(),
            stderr: uri,
            ..Default::default()
        }))
        .await
        .map_err(|s| match s.code() {
            Code::AlreadyExists => RuntimeError::InvalidState(format!("{id} already has a task")),
            _ => container_error(s, "task create", id),
        })?
        .into_inner()
        .pid;
    // The network namespace exists once the task is created; the process has not run yet.
    let address = match inner.cni(&name, Some(pid)).await {
        Ok(address) => address,
        Err(e) => {
            let _ = delete_task(client, &name).await;
            let _ = inner.cni(&name, None).await;
            return Err(e);
        }
    };
    let started = client
        .tasks()
        .start(client.req(StartRequest {
            container_id: name.clone(),
            exec_id: String::new(),
        }))
        .await;
    if let Err(s) = started {
        let _ = delete_task(client, &name).await;
        let _ = inner.cni(&name, None).await;
        return Err(container_error(s, "task start", id));
    }
    // The task is only deleted by the waiter, so a fast exit cannot be missed even though the
    // waiter's Wait is issued after Start.
    ensure_waiter(inner, &name);
    let mut labels = vec![(LABEL_STARTED_AT, now_ms().to_string())];
    if let Some(address) = address {
        labels.push((LABEL_ADDRESS, address));
    }
    set_labels(client, &name, &labels)
        .await
        .map_err(|s| status_error(s, "container update"))
}

async fn delete_task(client: &Client, id: &str) -> Result<Option<Exit>, RuntimeError> {
    let deleted = client
        .tasks()
        .delete(client.req(DeleteTaskRequest {
            container_id: id.to_owned(),
        }))
        .await;
    match deleted {
        Ok(resp) => {
            let resp = resp.into_inner();
            Ok(Some(Exit {
                code: resp.exit_status as i32,
                at_ms: resp
                    .exited_at
                    .and_then(|t| u64::try_from(t.seconds).ok())
                    .map_or_else(now_ms, |s| s.saturating_mul(1000)),
            }))
        }
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(status_error(s, "task delete")),
    }
}

/// Starts the waiter of `id` unless one runs.
pub(crate) fn ensure_waiter(inner: &Arc<Inner>, id: &str) {
    if !inner.local.claim_waiter(id) {
        return;
    }
    let weak = Arc::downgrade(inner);
    let client = inner.client.clone();
    let id = id.to_owned();
    tokio::spawn(async move { wait_for_exit(weak, client, id).await });
}

async fn backoff(delay: &mut Duration) {
    tokio::time::sleep(*delay).await;
    *delay = (*delay * 2).min(MAX_BACKOFF);
}

async fn wait_for_exit(weak: Weak<Inner>, client: Client, id: String) {
    let mut delay = Duration::from_millis(50);
    // Wait for the exit, riding out containerd restarts (the shim keeps the task alive).
    loop {
        let waited = client
            .tasks()
            .wait(client.req(WaitRequest {
                container_id: id.clone(),
                exec_id: String::new(),
            }))
            .await;
        match waited {
            Ok(_) => break,
            Err(s) if s.code() == Code::NotFound => break,
            Err(_) if weak.strong_count() == 0 => return,
            Err(_) => backoff(&mut delay).await,
        }
    }
    // The runtime is gone (agent stopping): leave the task for the next agent to adopt.
    let Some(inner) = weak.upgrade() else {
        return;
    };
    // The cgroup still exists while the stopped task does: read its OOM kills first.
    let cgroup = super::exec::cgroup_path(&inner, &id);
    let oom_killed = tokio::task::spawn_blocking(move || {
        super::exec::oom_kills(std::path::Path::new(super::exec::CGROUP_ROOT), &cgroup) > 0
    })
    .await
    .unwrap_or(false);
    let exit = loop {
        match delete_task(&client, &id).await {
            Ok(Some(exit)) => break exit,
            // The task vanished without our record: the code is unknown.
            Ok(None) => {
                break Exit {
                    code: -1,
                    at_ms: now_ms(),
                };
            }
            Err(_) => backoff(&mut delay).await,
        }
    };
    if inner.cfg.log_limit.is_some() {
        // The logger writes the last bytes after the shim closes its pipes.
        let log = inner.log_path(&id);
        let _ = tokio::task::spawn_blocking(move || {
            super::logger::wait_unlocked(&log, Duration::from_secs(5));
        })
        .await;
    }
    // The namespace is gone with the task: release the address (best effort; DEL is
    // idempotent and runs again on the next exit path).
    let _ = inner.cni(&id, None).await;
    let mut labels = vec![
        (LABEL_EXIT_CODE, exit.code.to_string()),
        (LABEL_FINISHED_AT, exit.at_ms.to_string()),
    ];
    if oom_killed {
        labels.push((LABEL_OOM_KILLED, "true".to_owned()));
    }
    loop {
        match set_labels(&client, &id, &labels).await {
            Ok(()) => break,
            Err(s) if s.code() == Code::NotFound => break,
            Err(s) if is_unavailable(&s) => backoff(&mut delay).await,
            Err(_) => break,
        }
    }
    inner.local.record_exit(&id, exit);
}

/// Waits until `rx` holds an exit, at most `within`.
async fn exited_within(rx: &mut watch::Receiver<Option<Exit>>, within: Duration) -> bool {
    matches!(
        tokio::time::timeout(within, rx.wait_for(Option::is_some)).await,
        Ok(Ok(_))
    )
}

async fn kill(
    client: &Client,
    id: &ContainerId,
    signal: u32,
    all: bool,
) -> Result<(), RuntimeError> {
    let killed = client
        .tasks()
        .kill(client.req(KillRequest {
            container_id: id.as_str().to_owned(),
            exec_id: String::new(),
            signal,
            all,
        }))
        .await;
    match killed {
        Ok(_) => Ok(()),
        // Already exited: the waiter reports it.
        Err(s) if matches!(s.code(), Code::NotFound | Code::FailedPrecondition) => Ok(()),
        Err(s) => Err(status_error(s, "task kill")),
    }
}

/// Stops a running container: SIGTERM, up to `grace_ms`, then SIGKILL; returns once the exit
/// is recorded. A container that is not running is left as it is.
pub(crate) async fn stop(
    inner: &Arc<Inner>,
    id: &ContainerId,
    grace_ms: u64,
) -> Result<(), RuntimeError> {
    let st = container::status(inner, id).await?;
    if st.state != ContainerState::Running {
        return Ok(());
    }
    let mut rx = inner.local.exit_watch(id.as_str());
    // Adopted containers have no waiter yet.
    ensure_waiter(inner, id.as_str());
    let client = &inner.client;
    if grace_ms > 0 {
        kill(client, id, SIGTERM, false).await?;
        if exited_within(&mut rx, Duration::from_millis(grace_ms)).await {
            return Ok(());
        }
    }
    kill(client, id, SIGKILL, true).await?;
    if exited_within(&mut rx, KILL_PATIENCE).await {
        Ok(())
    } else {
        Err(RuntimeError::Other(
            format!("{id} did not exit within {KILL_PATIENCE:?} of SIGKILL").into(),
        ))
    }
}

/// For remove: a task that exited waits for its waiter's record; one that never started is
/// deleted.
pub(crate) async fn await_recorded_exit_or_delete(
    inner: &Arc<Inner>,
    id: &ContainerId,
) -> Result<(), RuntimeError> {
    let st = container::status(inner, id).await?;
    if let ContainerState::Exited { .. } = st.state {
        let mut rx = inner.local.exit_watch(id.as_str());
        ensure_waiter(inner, id.as_str());
        if exited_within(&mut rx, KILL_PATIENCE).await {
            return Ok(());
        }
    }
    delete_task(&inner.client, id.as_str()).await.map(|_| ())
}
