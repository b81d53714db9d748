//! Ephemeral volumes on disk (CLD-REQ-052): one private host directory per replica and volume,
//! `<data_dir>/volumes/<namespace>/w<workload>-r<replica>/<name>`, bind-mounted into that
//! replica's containers only. Attempts of one replica share it (a restart keeps its scratch
//! data); it is deleted when the replica's last container is removed. Memory volumes are tmpfs
//! mounts made by the spec and need nothing here. Disk size limits are not enforced yet.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use cloudless_core::runtime::{ContainerSpec, RuntimeError};
use cloudless_core::workload::VolumeMedium;
use containerd_client::services::v1::ListContainersRequest;

use super::client::status_error;
use super::{Inner, LABEL_REPLICA, LABEL_WORKLOAD};

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The replica's volume directory.
fn replica_dir(inner: &Inner, workload: &str, replica: &str) -> PathBuf {
    inner
        .cfg
        .data_dir
        .join("volumes")
        .join(&inner.cfg.namespace)
        .join(format!("w{workload}-r{replica}"))
}

/// The host directory of each disk volume of `spec`, by name.
pub(crate) fn plan(
    inner: &Inner,
    spec: &ContainerSpec,
) -> Result<BTreeMap<String, PathBuf>, RuntimeError> {
    let base = replica_dir(
        inner,
        &spec.workload.0.to_string(),
        &spec.replica.get().to_string(),
    );
    let mut dirs = BTreeMap::new();
    for v in &spec.volumes {
        if !valid_name(&v.name) {
            return Err(RuntimeError::InvalidSpec(format!(
                "volume name {:?} must be a DNS-1123 label",
                v.name
            )));
        }
        if v.medium == VolumeMedium::Disk
            && dirs.insert(v.name.clone(), base.join(&v.name)).is_some()
        {
            return Err(RuntimeError::InvalidSpec(format!(
                "volume {:?} twice",
                v.name
            )));
        }
    }
    Ok(dirs)
}

fn io_err(e: std::io::Error) -> RuntimeError {
    RuntimeError::Other(Box::new(e))
}

/// Creates the directories: parents root-only (0700), each volume owned by the container's
/// user so a non-root container can write it.
pub(crate) fn prepare(
    dirs: &BTreeMap<String, PathBuf>,
    uid: u32,
    gid: u32,
) -> Result<(), RuntimeError> {
    for dir in dirs.values() {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(io_err)?;
            for p in [parent, parent.parent().unwrap_or(parent)] {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
                    .map_err(io_err)?;
            }
        }
        std::fs::create_dir_all(dir).map_err(io_err)?;
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(io_err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).map_err(io_err)?;
    }
    Ok(())
}

/// After a container of (`workload`, `replica`) is removed: deletes the replica's volumes if no
/// container of that replica remains.
pub(crate) async fn release(
    inner: &Inner,
    workload: Option<&String>,
    replica: Option<&String>,
) -> Result<(), RuntimeError> {
    let (Some(workload), Some(replica)) = (workload, replica) else {
        return Ok(());
    };
    let client = &inner.client;
    let left = client
        .containers()
        .list(client.req(ListContainersRequest {
            filters: vec![format!(
                "labels.\"{LABEL_WORKLOAD}\"=={workload},labels.\"{LABEL_REPLICA}\"=={replica}"
            )],
        }))
        .await
        .map_err(|s| status_error(s, "container list"))?
        .into_inner()
        .containers;
    if left.is_empty() {
        let dir = replica_dir(inner, workload, replica);
        remove_dir(&dir).await?;
    }
    Ok(())
}

async fn remove_dir(dir: &Path) -> Result<(), RuntimeError> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(e)),
    }
}
