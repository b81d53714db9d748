//! Container records and their state: get, status, list, remove.

use std::collections::HashMap;
use std::sync::Arc;

use cloudless_core::runtime::{ContainerId, ContainerState, ContainerStatus, RuntimeError};
use containerd_client::services::v1::snapshots::MountsRequest;
use containerd_client::services::v1::{
    Container, DeleteContainerRequest, GetContainerRequest, ListContainersRequest, ListTasksRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::v1::{Process, Status as TaskStatus};

use super::client::{container_error, status_error};
use super::create::{delete_lease, remove_snapshot};
use super::{
    Inner, LABEL_ADDRESS, LABEL_EXIT_CODE, LABEL_FINISHED_AT, LABEL_MANAGED, LABEL_OOM_KILLED,
    LABEL_REPLICA, LABEL_STARTED_AT, LABEL_WORKLOAD, task, valid_id, volumes,
};
use crate::oci::NetworkMode;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// The container record; `NotFound` for unknown or invalid ids.
pub(crate) async fn get(inner: &Inner, id: &ContainerId) -> Result<Container, RuntimeError> {
    if !valid_id(id.as_str()) {
        return Err(RuntimeError::NotFound(id.clone()));
    }
    let client = &inner.client;
    client
        .containers()
        .get(client.req(GetContainerRequest {
            id: id.as_str().to_owned(),
        }))
        .await
        .map_err(|s| container_error(s, "container get", id))?
        .into_inner()
        .container
        .ok_or_else(|| RuntimeError::NotFound(id.clone()))
}

/// The container's task (init process), if it has one.
pub(crate) async fn task_of(inner: &Inner, id: &str) -> Result<Option<Process>, RuntimeError> {
    let client = &inner.client;
    let got = client
        .tasks()
        .get(client.req(containerd_client::services::v1::GetRequest {
            container_id: id.to_owned(),
            exec_id: String::new(),
        }))
        .await;
    match got {
        Ok(resp) => Ok(resp.into_inner().process),
        Err(s) if s.code() == Code::NotFound => Ok(None),
        Err(s) => Err(status_error(s, "task get")),
    }
}

fn timestamp_ms(ts: Option<&prost_types::Timestamp>) -> Option<u64> {
    let ts = ts?;
    let ms = ts.seconds.checked_mul(1000)? + i64::from(ts.nanos / 1_000_000);
    u64::try_from(ms).ok().filter(|&ms| ms > 0)
}

/// The status from the container record and its task.
pub(crate) fn status_of(inner: &Inner, c: &Container, task: Option<&Process>) -> ContainerStatus {
    let label = |k: &str| c.labels.get(k).and_then(|v| v.parse::<i64>().ok());
    let started_at_ms = label(LABEL_STARTED_AT).and_then(|v| u64::try_from(v).ok());
    let mut finished_at_ms = label(LABEL_FINISHED_AT).and_then(|v| u64::try_from(v).ok());
    let mut oom_killed = c.labels.get(LABEL_OOM_KILLED).is_some_and(|v| v == "true");
    let state = if let Some(code) = label(LABEL_EXIT_CODE) {
        ContainerState::Exited {
            code: i32::try_from(code).unwrap_or(-1),
        }
    } else {
        match task {
            None => ContainerState::Created,
            Some(p) => match TaskStatus::try_from(p.status) {
                Ok(TaskStatus::Created) => ContainerState::Created,
                Ok(TaskStatus::Stopped) => {
                    finished_at_ms = timestamp_ms(p.exited_at.as_ref());
                    // Exited, but the waiter has not recorded it yet: the cgroup is still there
                    // (until the task is deleted) and tells whether the OOM killer struck.
                    oom_killed = super::exec::oom_kills(
                        std::path::Path::new(super::exec::CGROUP_ROOT),
                        &super::exec::cgroup_path(inner, &c.id),
                    ) > 0;
                    ContainerState::Exited {
                        code: p.exit_status as i32,
                    }
                }
                _ => ContainerState::Running,
            },
        }
    };
    let address = match (state, inner.cfg.network) {
        (ContainerState::Running, NetworkMode::Host) => Some("127.0.0.1".to_owned()),
        (ContainerState::Running, NetworkMode::Isolated) => c.labels.get(LABEL_ADDRESS).cloned(),
        _ => None,
    };
    ContainerStatus {
        id: ContainerId(c.id.clone()),
        state,
        address,
        started_at_ms,
        finished_at_ms,
        oom_killed: oom_killed && matches!(state, ContainerState::Exited { .. }),
    }
}

/// A container's status.
pub(crate) async fn status(
    inner: &Inner,
    id: &ContainerId,
) -> Result<ContainerStatus, RuntimeError> {
    let c = get(inner, id).await?;
    let task = task_of(inner, id.as_str()).await?;
    Ok(status_of(inner, &c, task.as_ref()))
}

/// Every container this runtime manages in its namespace, by id.
pub(crate) async fn list(inner: &Inner) -> Result<Vec<ContainerStatus>, RuntimeError> {
    let client = &inner.client;
    let containers = client
        .containers()
        .list(client.req(ListContainersRequest {
            filters: vec![format!("labels.\"{LABEL_MANAGED}\"==true")],
        }))
        .await
        .map_err(|s| status_error(s, "container list"))?
        .into_inner()
        .containers;
    let tasks: HashMap<String, Process> = client
        .tasks()
        .list(client.req(ListTasksRequest {
            filter: String::new(),
        }))
        .await
        .map_err(|s| status_error(s, "task list"))?
        .into_inner()
        .tasks
        .into_iter()
        .map(|t| (t.id.clone(), t))
        .collect();
    let mut out: Vec<ContainerStatus> = containers
        .iter()
        .map(|c| status_of(inner, c, tasks.get(&c.id)))
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// The mounts of the container's prepared snapshot.
pub(crate) async fn mounts(
    inner: &Inner,
    id: &str,
) -> Result<Vec<containerd_client::types::Mount>, RuntimeError> {
    let client = &inner.client;
    Ok(client
        .snapshots()
        .mounts(client.req(MountsRequest {
            snapshotter: inner.cfg.snapshotter.clone(),
            key: id.to_owned(),
        }))
        .await
        .map_err(|s| status_error(s, "snapshot mounts"))?
        .into_inner()
        .mounts)
}

/// Removes the container: stop it if running, then delete task, record, snapshot and lease.
pub(crate) async fn remove(inner: &Arc<Inner>, id: &ContainerId) -> Result<(), RuntimeError> {
    let record = get(inner, id).await?;
    let st = status_of(inner, &record, task_of(inner, id.as_str()).await?.as_ref());
    if st.state == ContainerState::Running {
        task::stop(inner, id, inner.cfg.remove_grace_ms).await?;
    }
    // A task left in Created (a start that failed half-way) or Stopped: delete it.
    if task_of(inner, id.as_str()).await?.is_some() {
        task::await_recorded_exit_or_delete(inner, id).await?;
    }
    let client = &inner.client;
    client
        .containers()
        .delete(client.req(DeleteContainerRequest {
            id: id.as_str().to_owned(),
        }))
        .await
        .map_err(|s| container_error(s, "container delete", id))?;
    remove_snapshot(inner, id.as_str()).await?;
    delete_lease(inner, id.as_str()).await;
    let log = inner.log_path(id.as_str());
    let _ = tokio::task::spawn_blocking(move || crate::capped_log::remove_all(&log)).await;
    inner.local.forget(id.as_str());
    volumes::release(
        inner,
        record.labels.get(LABEL_WORKLOAD),
        record.labels.get(LABEL_REPLICA),
    )
    .await
}
