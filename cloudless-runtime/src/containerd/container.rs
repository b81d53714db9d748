//! Images, container records and their state: import, create, remove, status, list.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use cloudless_core::runtime::{
    ContainerId, ContainerSpec, ContainerState, ContainerStatus, ImageInfo, RuntimeError, Support,
};
use containerd_client::services::v1::container::Runtime as ContainerRuntimeName;
use containerd_client::services::v1::snapshots::{
    MountsRequest, PrepareSnapshotRequest, RemoveSnapshotRequest,
};
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateRequest, DeleteContainerRequest, DeleteRequest,
    GetContainerRequest, GetImageRequest, ListContainersRequest, ListTasksRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::v1::{Process, Status as TaskStatus};

use super::client::{container_error, status_error};
use super::{
    Inner, LABEL_ADDRESS, LABEL_ATTEMPT, LABEL_EXIT_CODE, LABEL_FINISHED_AT, LABEL_MANAGED,
    LABEL_REPLICA, LABEL_STARTED_AT, LABEL_WORKLOAD, image, import as import_mod, support, task,
    valid_id, volumes,
};
use crate::oci::{self, NetworkMode, SpecContext};

/// The type URL containerd expects for an OCI runtime spec.
pub(crate) const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// The lease holding a container's snapshot.
pub(crate) fn lease_id(id: &str) -> String {
    format!("{id}.lease")
}

/// The image as present locally (Cloudless does not pull from registries yet).
pub(crate) async fn local_image(inner: &Inner, name: &str) -> Result<ImageInfo, RuntimeError> {
    let client = &inner.client;
    if name.is_empty() {
        return Err(RuntimeError::ImageNotFound(String::new()));
    }
    let got = client
        .images()
        .get(client.req(GetImageRequest {
            name: name.to_owned(),
        }))
        .await;
    match got {
        Ok(resp) => {
            let target = resp.into_inner().image.and_then(|i| i.target);
            let target = target.ok_or_else(|| RuntimeError::ImageNotFound(name.to_owned()))?;
            Ok(ImageInfo {
                reference: name.to_owned(),
                digest: target.digest,
                size: u64::try_from(target.size).unwrap_or(0),
            })
        }
        Err(s) if s.code() == Code::NotFound => Err(RuntimeError::ImageUnavailable {
            image: name.to_owned(),
            reason: "not present locally, and pulling from a registry is not implemented yet \
                     (import an OCI archive instead)"
                .to_owned(),
        }),
        Err(s) => Err(status_error(s, "image get")),
    }
}

/// Imports an OCI layout archive and unpacks its images.
pub(crate) async fn import(inner: &Inner, archive: &Path) -> Result<Vec<ImageInfo>, RuntimeError> {
    let client = &inner.client;
    let lease = format!("import-{}-{}", std::process::id(), now_ms());
    client
        .leases()
        .create(client.req(CreateRequest {
            id: lease.clone(),
            labels: HashMap::new(),
        }))
        .await
        .map_err(|s| status_error(s, "lease create"))?;
    let result = async {
        let imported = import_mod::import(client, &inner.cfg.snapshotter, archive, &lease).await?;
        for (info, _) in &imported {
            let resolved = image::resolve(client, &info.reference).await?;
            image::unpack(client, &inner.cfg.snapshotter, &resolved, &lease).await?;
        }
        Ok(imported.into_iter().map(|(info, _)| info).collect())
    }
    .await;
    // The image record and GC labels keep everything; the lease only covered the writes.
    let _ = client
        .leases()
        .delete(client.req(DeleteRequest {
            id: lease,
            sync: false,
        }))
        .await;
    result
}

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn labels_for(spec: &ContainerSpec) -> HashMap<String, String> {
    let mut labels: HashMap<String, String> = spec
        .labels
        .iter()
        .filter(|(k, _)| !k.starts_with("cloudless.io/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(LABEL_MANAGED.to_owned(), "true".to_owned());
    labels.insert(LABEL_WORKLOAD.to_owned(), spec.workload.0.to_string());
    labels.insert(LABEL_REPLICA.to_owned(), spec.replica.get().to_string());
    labels.insert(LABEL_ATTEMPT.to_owned(), spec.attempt.to_string());
    labels
}

/// Creates the container: resolve and unpack the image, build the hardened spec, prepare the
/// snapshot under the container's lease, create the record.
pub(crate) async fn create(inner: &Inner, spec: &ContainerSpec) -> Result<(), RuntimeError> {
    let id = spec.id.as_str();
    if !valid_id(id) {
        return Err(RuntimeError::InvalidSpec(format!(
            "container id {id:?} must be letters and digits separated by . _ or -, at most 64 \
             characters"
        )));
    }
    if let Support::No(why) = support(&inner.cfg, spec) {
        return Err(RuntimeError::Unsupported(why));
    }
    match get(inner, &spec.id).await {
        Ok(_) => return Err(RuntimeError::AlreadyExists(spec.id.clone())),
        Err(RuntimeError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    if spec.image.is_empty() {
        return Err(RuntimeError::ImageNotFound(String::new()));
    }
    let client = &inner.client;
    let resolved = image::resolve(client, &spec.image).await?;
    let ctx = SpecContext {
        image: resolved.defaults.clone(),
        cgroups_path: format!("{}/{}/{id}", inner.cfg.cgroup_parent, inner.cfg.namespace),
        network: inner.cfg.network,
        host: inner.host.clone(),
        volume_dirs: volumes::plan(inner, spec)?,
    };
    let oci_spec = oci::build(spec, &ctx).map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
    let (uid, gid) = oci_spec
        .process()
        .as_ref()
        .map_or((0, 0), |p| (p.user().uid(), p.user().gid()));
    let dirs = ctx.volume_dirs.clone();
    tokio::task::spawn_blocking(move || volumes::prepare(&dirs, uid, gid))
        .await
        .map_err(|e| RuntimeError::Other(Box::new(e)))??;
    let spec_json = serde_json::to_vec(&oci_spec).map_err(|e| RuntimeError::Other(Box::new(e)))?;

    let lease = lease_id(id);
    client
        .leases()
        .create(client.req(CreateRequest {
            id: lease.clone(),
            labels: HashMap::new(),
        }))
        .await
        .map(|_| ())
        .or_else(|s| match s.code() {
            // Left over from a create that failed half-way: reuse it.
            Code::AlreadyExists => Ok(()),
            _ => Err(status_error(s, "lease create")),
        })?;
    let result = async {
        image::unpack(client, &inner.cfg.snapshotter, &resolved, &lease).await?;
        let prepare = PrepareSnapshotRequest {
            snapshotter: inner.cfg.snapshotter.clone(),
            key: id.to_owned(),
            parent: resolved.chain_id.clone(),
            labels: HashMap::new(),
        };
        let prepared = client
            .snapshots()
            .prepare(client.leased(prepare.clone(), &lease))
            .await;
        if let Err(s) = prepared {
            if s.code() != Code::AlreadyExists {
                return Err(status_error(s, "snapshot prepare"));
            }
            // A stale snapshot from a failed create: replace it.
            remove_snapshot(inner, id).await?;
            client
                .snapshots()
                .prepare(client.leased(prepare, &lease))
                .await
                .map_err(|s| status_error(s, "snapshot prepare"))?;
        }
        let container = Container {
            id: id.to_owned(),
            labels: labels_for(spec),
            image: spec.image.clone(),
            runtime: Some(ContainerRuntimeName {
                name: inner.cfg.runtime.clone(),
                options: None,
            }),
            spec: Some(prost_types::Any {
                type_url: SPEC_TYPE_URL.to_owned(),
                value: spec_json,
            }),
            snapshotter: inner.cfg.snapshotter.clone(),
            snapshot_key: id.to_owned(),
            ..Default::default()
        };
        client
            .containers()
            .create(client.leased(
                CreateContainerRequest {
                    container: Some(container),
                },
                &lease,
            ))
            .await
            .map_err(|s| container_error(s, "container create", &spec.id))?;
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = remove_snapshot(inner, id).await;
        delete_lease(inner, id).await;
    }
    result
}

async fn remove_snapshot(inner: &Inner, id: &str) -> Result<(), RuntimeError> {
    let client = &inner.client;
    match client
        .snapshots()
        .remove(client.req(RemoveSnapshotRequest {
            snapshotter: inner.cfg.snapshotter.clone(),
            key: id.to_owned(),
        }))
        .await
    {
        Ok(_) => Ok(()),
        Err(s) if s.code() == Code::NotFound => Ok(()),
        Err(s) => Err(status_error(s, "snapshot remove")),
    }
}

async fn delete_lease(inner: &Inner, id: &str) {
    let client = &inner.client;
    let _ = client
        .leases()
        .delete(client.req(DeleteRequest {
            id: lease_id(id),
            sync: false,
        }))
        .await;
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
    let _ = tokio::fs::remove_file(inner.log_path(id.as_str())).await;
    inner.local.forget(id.as_str());
    volumes::release(
        inner,
        record.labels.get(LABEL_WORKLOAD),
        record.labels.get(LABEL_REPLICA),
    )
    .await
}
