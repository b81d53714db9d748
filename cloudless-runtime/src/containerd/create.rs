//! Creating containers (image check, hardened spec, volumes, snapshot under a lease, record)
//! and importing images.

use std::collections::HashMap;
use std::path::Path;

use cloudless_core::runtime::{ContainerSpec, ImageInfo, RuntimeError, Support};
use containerd_client::services::v1::container::Runtime as ContainerRuntimeName;
use containerd_client::services::v1::snapshots::{
    PrepareSnapshotRequest, RemoveSnapshotRequest, ViewSnapshotRequest,
};
use containerd_client::services::v1::{
    Container, CreateContainerRequest, CreateRequest, DeleteRequest, GetImageRequest,
};
use containerd_client::tonic::Code;

use super::client::{container_error, status_error};
use super::container::get;
use super::{
    Inner, LABEL_ATTEMPT, LABEL_MANAGED, LABEL_REPLICA, LABEL_WORKLOAD, image,
    import as import_mod, registry, support, valid_id, volumes,
};
use crate::oci::{self, Accounts, NetworkMode, SpecContext};

/// The type URL containerd expects for an OCI runtime spec.
pub(crate) const SPEC_TYPE_URL: &str = "types.containerd.io/opencontainers/runtime-spec/1/Spec";

/// The lease holding a container's snapshot.
pub(crate) fn lease_id(id: &str) -> String {
    format!("{id}.lease")
}

/// The image as present locally, else pulled from its registry.
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
        // Not here: pull it (F4: a local image is used without asking the registry).
        Err(s) if s.code() == Code::NotFound => {
            with_lease(inner, "pull", |lease| async move {
                let info = registry::pull(inner, name, &lease).await?;
                let resolved = image::resolve(&inner.client, name).await?;
                image::unpack(&inner.client, &inner.cfg.snapshotter, &resolved, &lease).await?;
                Ok(info)
            })
            .await
        }
        Err(s) => Err(status_error(s, "image get")),
    }
}

/// Runs `work` under a fresh lease, deleted afterwards (the image record and GC labels keep
/// what it wrote).
async fn with_lease<T, F, Fut>(inner: &Inner, what: &str, work: F) -> Result<T, RuntimeError>
where
    F: FnOnce(String) -> Fut,
    Fut: std::future::Future<Output = Result<T, RuntimeError>>,
{
    let client = &inner.client;
    let lease = format!(
        "{what}-{}-{}",
        std::process::id(),
        super::container::now_ms()
    );
    client
        .leases()
        .create(client.req(CreateRequest {
            id: lease.clone(),
            labels: HashMap::new(),
        }))
        .await
        .map_err(|s| status_error(s, "lease create"))?;
    let result = work(lease.clone()).await;
    let _ = client
        .leases()
        .delete(client.req(DeleteRequest {
            id: lease,
            sync: false,
        }))
        .await;
    result
}

/// Imports an OCI layout archive and unpacks its images.
pub(crate) async fn import(inner: &Inner, archive: &Path) -> Result<Vec<ImageInfo>, RuntimeError> {
    with_lease(inner, "import", |lease| async move {
        let client = &inner.client;
        let imported = import_mod::import(client, &inner.cfg.snapshotter, archive, &lease).await?;
        for (info, _) in &imported {
            let resolved = image::resolve(client, &info.reference).await?;
            image::unpack(client, &inner.cfg.snapshotter, &resolved, &lease).await?;
        }
        Ok(imported.into_iter().map(|(info, _)| info).collect())
    })
    .await
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
    if let Some(ports) = super::cni::host_ports_label(&spec.ports) {
        labels.insert(super::LABEL_HOST_PORTS.to_owned(), ports);
    }
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
    if let Some(p) = spec.ports.iter().find(|p| {
        p.host_port.is_some_and(|h| match inner.cfg.network {
            // The host's network: the container's port is the node's port.
            NetworkMode::Host => h != p.container_port,
            NetworkMode::Isolated => inner.bridge().is_none(),
        })
    }) {
        return Err(RuntimeError::InvalidSpec(format!(
            "port {:?} publishes hostPort {}: that needs the bridge network (or, on the host's \
             network, hostPort equal to containerPort)",
            p.name,
            p.host_port.unwrap_or(0)
        )));
    }
    let client = &inner.client;
    let resolved = image::resolve(client, &spec.image).await?;
    let ctx = SpecContext {
        image: resolved.defaults.clone(),
        cgroups_path: format!("{}/{}/{id}", inner.cfg.cgroup_parent, inner.cfg.namespace),
        network: inner.cfg.network,
        host: inner.host.clone(),
        volume_dirs: volumes::plan(inner, spec)?,
        accounts: if oci::needs_accounts(&spec.security, resolved.defaults.user.as_deref()) {
            Some(image_accounts(inner, &resolved, id, &spec.image).await?)
        } else {
            None
        },
    };
    let oci_spec = oci::build(spec, &ctx).map_err(|e| RuntimeError::InvalidSpec(e.to_string()))?;
    let (uid, gid) = oci_spec
        .process()
        .as_ref()
        .map_or((0, 0), |p| (p.user().uid(), p.user().gid()));
    let dirs = ctx.volume_dirs.clone();
    let limits = volumes::limits(spec);
    let result =
        match tokio::task::spawn_blocking(move || volumes::prepare(&dirs, &limits, uid, gid)).await
        {
            Ok(Ok(())) => record(inner, spec, &resolved, &oci_spec).await,
            Ok(Err(e)) => Err(e),
            Err(e) => Err(RuntimeError::Other(Box::new(e))),
        };
    if result.is_err() && !ctx.volume_dirs.is_empty() {
        // No container of this create exists: unless another attempt of the replica holds them,
        // unmount (size-limited) and delete the replica's volumes as `remove` would, so a failed
        // create leaves no loop mount behind.
        let (workload, replica) = (spec.workload.0.to_string(), spec.replica.get().to_string());
        if let Err(e) = volumes::release(inner, Some(&workload), Some(&replica)).await {
            tracing::warn!(container = %id, "volumes of a failed create: {e}");
        }
    }
    result
}

/// The snapshot under the container's lease and the container record, after its volumes are
/// prepared; on failure the snapshot and lease are removed again.
async fn record(
    inner: &Inner,
    spec: &ContainerSpec,
    resolved: &image::ResolvedImage,
    oci_spec: &oci_spec::runtime::Spec,
) -> Result<(), RuntimeError> {
    let id = spec.id.as_str();
    let client = &inner.client;
    let spec_json = serde_json::to_vec(oci_spec).map_err(|e| RuntimeError::Other(Box::new(e)))?;

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
        image::unpack(client, &inner.cfg.snapshotter, resolved, &lease).await?;
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

/// The directories a snapshot's mounts stack, top-most first: a bind mount's source, or an
/// overlay's upper then lower directories.
fn layer_dirs(mounts: &[containerd_client::types::Mount]) -> Vec<std::path::PathBuf> {
    let mut dirs = Vec::new();
    for m in mounts {
        match m.r#type.as_str() {
            "bind" | "rbind" => dirs.push(m.source.clone().into()),
            "overlay" => {
                let opt = |key: &str| {
                    m.options
                        .iter()
                        .find_map(|o| o.strip_prefix(key))
                        .map(str::to_owned)
                };
                if let Some(upper) = opt("upperdir=") {
                    dirs.push(upper.into());
                }
                if let Some(lower) = opt("lowerdir=") {
                    dirs.extend(lower.split(':').filter(|d| !d.is_empty()).map(Into::into));
                }
            }
            _ => {}
        }
    }
    dirs
}

/// The image's user and group names, from `/etc/passwd` and `/etc/group` of a read-only view of
/// its unpacked layers (removed afterwards).
async fn image_accounts(
    inner: &Inner,
    resolved: &image::ResolvedImage,
    id: &str,
    image_name: &str,
) -> Result<Accounts, RuntimeError> {
    with_lease(inner, "accounts", |lease| async move {
        let client = &inner.client;
        image::unpack(client, &inner.cfg.snapshotter, resolved, &lease).await?;
        let key = format!("{id}.accounts");
        // Left over from an interrupted create.
        remove_snapshot(inner, &key).await?;
        let mounts = client
            .snapshots()
            .view(client.leased(
                ViewSnapshotRequest {
                    snapshotter: inner.cfg.snapshotter.clone(),
                    key: key.clone(),
                    parent: resolved.chain_id.clone(),
                    labels: HashMap::new(),
                },
                &lease,
            ))
            .await
            .map_err(|s| status_error(s, "snapshot view"))?
            .into_inner()
            .mounts;
        let dirs = layer_dirs(&mounts);
        let read = if dirs.is_empty() {
            Err(format!(
                "snapshotter {} mounts cannot be read without mounting",
                inner.cfg.snapshotter
            ))
        } else {
            tokio::task::spawn_blocking(move || Accounts::read_layers(&dirs))
                .await
                .map_err(|e| e.to_string())
                .and_then(|r| r)
        };
        let _ = remove_snapshot(inner, &key).await;
        read.map_err(|e| {
            RuntimeError::InvalidSpec(format!(
                "the User of image {image_name} is a name, but its accounts cannot be read: {e}"
            ))
        })
    })
    .await
}

pub(crate) async fn remove_snapshot(inner: &Inner, id: &str) -> Result<(), RuntimeError> {
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

pub(crate) async fn delete_lease(inner: &Inner, id: &str) {
    let client = &inner.client;
    let _ = client
        .leases()
        .delete(client.req(DeleteRequest {
            id: lease_id(id),
            sync: false,
        }))
        .await;
}

#[cfg(test)]
mod tests {
    use super::layer_dirs;
    use containerd_client::types::Mount;

    fn mount(kind: &str, source: &str, options: &[&str]) -> Mount {
        Mount {
            r#type: kind.into(),
            source: source.into(),
            options: options.iter().map(|o| (*o).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn layer_directories_of_snapshot_mounts() {
        let overlay = mount(
            "overlay",
            "overlay",
            &["index=off", "workdir=/w", "upperdir=/u", "lowerdir=/l2:/l1"],
        );
        assert_eq!(
            layer_dirs(&[overlay]),
            ["/u", "/l2", "/l1"].map(std::path::PathBuf::from)
        );
        let view = mount("overlay", "overlay", &["lowerdir=/only"]);
        assert_eq!(layer_dirs(&[view]), [std::path::PathBuf::from("/only")]);
        let bind = mount("bind", "/snap/fs", &["ro", "rbind"]);
        assert_eq!(layer_dirs(&[bind]), [std::path::PathBuf::from("/snap/fs")]);
        assert!(layer_dirs(&[mount("zfs", "pool/x", &[])]).is_empty());
    }
}
