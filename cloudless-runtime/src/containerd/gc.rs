//! Removing images no container uses, so containerd's garbage collector frees their content and
//! snapshots (small devices under disk pressure; when to prune is the agent's policy).

use std::collections::BTreeSet;

use cloudless_core::runtime::RuntimeError;
use containerd_client::services::v1::{
    DeleteImageRequest, Image, ListContainersRequest, ListImagesRequest,
};
use containerd_client::tonic::Code;

use super::Inner;
use super::client::status_error;

/// Deletes image `name`; the last deletion of a prune waits for the collector (`sync`).
pub(crate) async fn delete(inner: &Inner, name: &str, sync: bool) -> Result<bool, RuntimeError> {
    let client = &inner.client;
    match client
        .images()
        .delete(client.req(DeleteImageRequest {
            name: name.to_owned(),
            sync,
            target: None,
        }))
        .await
    {
        Ok(_) => Ok(true),
        Err(s) if s.code() == Code::NotFound => Ok(false),
        Err(s) => Err(status_error(s, "image delete")),
    }
}

/// The namespace's images, and the names of the images some container (of any state)
/// references.
pub(crate) async fn images_and_users(
    inner: &Inner,
) -> Result<(Vec<Image>, BTreeSet<String>), RuntimeError> {
    let client = &inner.client;
    let images = client
        .images()
        .list(client.req(ListImagesRequest {
            filters: Vec::new(),
        }))
        .await
        .map_err(|s| status_error(s, "image list"))?
        .into_inner()
        .images;
    let used: BTreeSet<String> = client
        .containers()
        .list(client.req(ListContainersRequest {
            filters: Vec::new(),
        }))
        .await
        .map_err(|s| status_error(s, "container list"))?
        .into_inner()
        .containers
        .into_iter()
        .map(|c| c.image)
        .collect();
    Ok((images, used))
}

/// Removes every image of the namespace that no container (of any state) references, then
/// lets the collector run; returns the removed names, sorted.
pub(crate) async fn prune_images(inner: &Inner) -> Result<Vec<String>, RuntimeError> {
    let (images, used) = images_and_users(inner).await?;
    let unused: BTreeSet<String> = images
        .into_iter()
        .map(|i| i.name)
        .filter(|n| !used.contains(n))
        .collect();
    let mut removed = Vec::new();
    let last = unused.len();
    for (i, name) in unused.into_iter().enumerate() {
        if delete(inner, &name, i + 1 == last).await? {
            removed.push(name);
        }
    }
    Ok(removed)
}
