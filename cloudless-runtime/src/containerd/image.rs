//! Images in containerd's content store: reading manifests and configs, chain IDs, and
//! unpacking layers into snapshots through the diff service.

use std::collections::HashMap;

use cloudless_core::runtime::RuntimeError;
use containerd_client::services::v1::snapshots::{
    CommitSnapshotRequest, PrepareSnapshotRequest, RemoveSnapshotRequest, StatSnapshotRequest,
};
use containerd_client::services::v1::{ApplyRequest, GetImageRequest, ReadContentRequest};
use containerd_client::tonic::Code;
use containerd_client::types::Descriptor;
use futures::StreamExt;
use oci_spec::image::{ImageConfiguration, ImageIndex, ImageManifest};
use sha2::{Digest, Sha256};

use super::client::{Client, status_error};
use crate::oci::ImageDefaults;

/// Largest manifest, index or config read into memory.
const MAX_METADATA_BYTES: usize = 4 << 20;
/// OCI and Docker media types of image indexes.
pub(crate) const INDEX_TYPES: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// What creating a container needs from an image.
#[derive(Debug, Clone)]
pub(crate) struct ResolvedImage {
    /// The image's run defaults.
    pub(crate) defaults: ImageDefaults,
    /// Chain ID of the top layer: the snapshot containers are prepared from.
    pub(crate) chain_id: String,
    /// Layer descriptors, bottom first, with their diff IDs.
    pub(crate) layers: Vec<(Descriptor, String)>,
}

/// The OCI architecture name of this host.
pub(crate) fn host_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    }
}

/// Chain IDs of `diff_ids`: chain(0) = diff(0), chain(n) = sha256("chain(n-1) diff(n)").
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff in diff_ids {
        let next = match out.last() {
            None => diff.clone(),
            Some(parent) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{parent} {diff}").as_bytes()))
            ),
        };
        out.push(next);
    }
    out
}

/// Reads a whole (small) blob from the content store.
pub(crate) async fn read_blob(client: &Client, digest: &str) -> Result<Vec<u8>, RuntimeError> {
    let req = ReadContentRequest {
        digest: digest.to_owned(),
        offset: 0,
        size: 0,
    };
    let mut stream = client
        .content()
        .read(client.req(req))
        .await
        .map_err(|s| status_error(s, "content read"))?
        .into_inner();
    let mut buf = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|s| status_error(s, "content read"))?;
        buf.extend_from_slice(&chunk.data);
        if buf.len() > MAX_METADATA_BYTES {
            return Err(RuntimeError::Other(
                format!("blob {digest} is larger than {MAX_METADATA_BYTES} bytes").into(),
            ));
        }
    }
    Ok(buf)
}

fn bad_image(image: &str, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::ImageUnavailable {
        image: image.to_owned(),
        reason: reason.to_string(),
    }
}

/// Resolves `image` (a name in the namespace) to its run defaults and layers.
pub(crate) async fn resolve(client: &Client, image: &str) -> Result<ResolvedImage, RuntimeError> {
    let got = client
        .images()
        .get(client.req(GetImageRequest {
            name: image.to_owned(),
        }))
        .await;
    let target = match got {
        Ok(resp) => resp.into_inner().image.and_then(|i| i.target),
        Err(s) if s.code() == Code::NotFound => None,
        Err(s) => return Err(status_error(s, "image get")),
    }
    .ok_or_else(|| RuntimeError::ImageNotFound(image.to_owned()))?;

    let mut manifest_digest = target.digest.clone();
    if INDEX_TYPES.contains(&target.media_type.as_str()) {
        let index = ImageIndex::from_reader(&read_blob(client, &target.digest).await?[..])
            .map_err(|e| bad_image(image, e))?;
        let arch = host_arch();
        let chosen = index
            .manifests()
            .iter()
            .find(|m| {
                m.platform().as_ref().is_none_or(|p| {
                    p.os().to_string() == "linux" && p.architecture().to_string() == arch
                })
            })
            .ok_or_else(|| bad_image(image, format!("no linux/{arch} manifest in the index")))?;
        manifest_digest = chosen.digest().to_string();
    }
    let manifest = ImageManifest::from_reader(&read_blob(client, &manifest_digest).await?[..])
        .map_err(|e| bad_image(image, e))?;
    let config_digest = manifest.config().digest().to_string();
    let config = ImageConfiguration::from_reader(&read_blob(client, &config_digest).await?[..])
        .map_err(|e| bad_image(image, e))?;
    let diff_ids = config.rootfs().diff_ids().clone();
    if diff_ids.len() != manifest.layers().len() || diff_ids.is_empty() {
        return Err(bad_image(image, "layer count and diff_ids disagree"));
    }
    let chain = chain_ids(&diff_ids);
    let layers = manifest
        .layers()
        .iter()
        .zip(diff_ids)
        .map(|(l, diff)| {
            let desc = Descriptor {
                media_type: l.media_type().to_string(),
                digest: l.digest().to_string(),
                size: l.size() as i64,
                annotations: HashMap::new(),
            };
            (desc, diff)
        })
        .collect();
    let cfg = config.config().clone().unwrap_or_default();
    let defaults = ImageDefaults {
        entrypoint: cfg.entrypoint().clone().unwrap_or_default(),
        cmd: cfg.cmd().clone().unwrap_or_default(),
        env: cfg.env().clone().unwrap_or_default(),
        working_dir: cfg.working_dir().clone().filter(|d| !d.is_empty()),
        user: cfg.user().clone().filter(|u| !u.is_empty()),
    };
    Ok(ResolvedImage {
        defaults,
        chain_id: chain.last().cloned().unwrap_or_default(),
        layers,
    })
}

/// Unpacks every layer of `image` that is not yet a committed snapshot, under `lease`.
pub(crate) async fn unpack(
    client: &Client,
    snapshotter: &str,
    image: &ResolvedImage,
    lease: &str,
) -> Result<(), RuntimeError> {
    let diff_ids: Vec<String> = image.layers.iter().map(|(_, d)| d.clone()).collect();
    let chain = chain_ids(&diff_ids);
    let mut parent = String::new();
    for ((layer, diff_id), chain_id) in image.layers.iter().zip(&chain) {
        let stat = client
            .snapshots()
            .stat(client.req(StatSnapshotRequest {
                snapshotter: snapshotter.to_owned(),
                key: chain_id.clone(),
            }))
            .await;
        match stat {
            Ok(_) => {
                parent = chain_id.clone();
                continue;
            }
            Err(s) if s.code() == Code::NotFound => {}
            Err(s) => return Err(status_error(s, "snapshot stat")),
        }
        let key = format!("extract-{} {chain_id}", std::process::id());
        let mounts = client
            .snapshots()
            .prepare(client.leased(
                PrepareSnapshotRequest {
                    snapshotter: snapshotter.to_owned(),
                    key: key.clone(),
                    parent: parent.clone(),
                    labels: HashMap::new(),
                },
                lease,
            ))
            .await
            .map_err(|s| status_error(s, "snapshot prepare"))?
            .into_inner()
            .mounts;
        let applied = client
            .diff()
            .apply(client.leased(
                ApplyRequest {
                    diff: Some(layer.clone()),
                    mounts,
                    payloads: HashMap::new(),
                    sync_fs: false,
                },
                lease,
            ))
            .await;
        let outcome = match applied {
            Ok(resp) => match resp.into_inner().applied {
                Some(d) if &d.digest == diff_id => Ok(()),
                other => Err(RuntimeError::Other(
                    format!(
                        "layer {} unpacked to {:?}, expected {diff_id}",
                        layer.digest,
                        other.map(|d| d.digest)
                    )
                    .into(),
                )),
            },
            Err(s) => Err(status_error(s, "diff apply")),
        };
        let outcome = match outcome {
            Ok(()) => client
                .snapshots()
                .commit(client.leased(
                    CommitSnapshotRequest {
                        snapshotter: snapshotter.to_owned(),
                        name: chain_id.clone(),
                        key: key.clone(),
                        labels: HashMap::new(),
                    },
                    lease,
                ))
                .await
                .map(|_| ())
                .or_else(|s| match s.code() {
                    // Another unpack committed the same layer meanwhile.
                    Code::AlreadyExists => Ok(()),
                    _ => Err(status_error(s, "snapshot commit")),
                }),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            let _ = client
                .snapshots()
                .remove(client.req(RemoveSnapshotRequest {
                    snapshotter: snapshotter.to_owned(),
                    key,
                }))
                .await;
            return Err(e);
        }
        parent = chain_id.clone();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chain_ids_follow_the_oci_rule() {
        let diffs = vec!["sha256:aa".to_owned(), "sha256:bb".to_owned()];
        let chain = chain_ids(&diffs);
        assert_eq!(chain[0], "sha256:aa");
        let expect = hex::encode(Sha256::digest(b"sha256:aa sha256:bb"));
        assert_eq!(chain[1], format!("sha256:{expect}"));
        assert!(chain_ids(&[]).is_empty());
    }
}
