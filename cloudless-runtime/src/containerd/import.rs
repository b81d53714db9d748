//! Importing an OCI image layout tarball with no registry: blobs go through the content
//! service (containerd checks each digest on commit), the image record through the images
//! service, and the layers are unpacked through the diff service.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

use cloudless_core::runtime::{ImageInfo, RuntimeError};
use containerd_client::services::v1::{
    CreateImageRequest, Image, UpdateImageRequest, WriteAction, WriteContentRequest,
};
use containerd_client::tonic::Code;
use containerd_client::types::Descriptor;
use futures::StreamExt;
use oci_spec::image::{ImageIndex, ImageManifest};

use super::client::{Client, status_error};
use super::image::{INDEX_TYPES, chain_ids};

/// Largest archive member read into memory.
const MAX_BLOB_BYTES: u64 = 1 << 30;
/// Size of one content write message.
const CHUNK: usize = 1 << 20;
/// Annotation naming the image in an index (containerd's convention).
const NAME_ANNOTATION: &str = "io.containerd.image.name";
/// The OCI annotation with the reference (or just its tag).
const REF_ANNOTATION: &str = "org.opencontainers.image.ref.name";

fn bad(archive: &Path, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::ImageUnavailable {
        image: archive.display().to_string(),
        reason: reason.to_string(),
    }
}

/// The archive's `index.json` and blobs (by digest).
pub(crate) struct Layout {
    /// The raw `index.json`.
    pub(crate) index: Vec<u8>,
    /// Blobs by digest.
    pub(crate) blobs: BTreeMap<String, Vec<u8>>,
}

fn read_layout(path: PathBuf) -> Result<Layout, RuntimeError> {
    let file = std::fs::File::open(&path).map_err(|e| bad(&path, e))?;
    let mut archive = tar::Archive::new(file);
    let mut index = None;
    let mut blobs = BTreeMap::new();
    for entry in archive.entries().map_err(|e| bad(&path, e))? {
        let mut entry = entry.map_err(|e| bad(&path, e))?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let name = entry
            .path()
            .map_err(|e| bad(&path, e))?
            .to_string_lossy()
            .into_owned();
        let name = name.trim_start_matches("./").to_owned();
        if entry.size() > MAX_BLOB_BYTES {
            return Err(bad(
                &path,
                format!("{name} is larger than {MAX_BLOB_BYTES} bytes"),
            ));
        }
        let mut data = Vec::new();
        entry.read_to_end(&mut data).map_err(|e| bad(&path, e))?;
        if name == "index.json" {
            index = Some(data);
        } else if let Some(hex) = name.strip_prefix("blobs/sha256/") {
            blobs.insert(format!("sha256:{hex}"), data);
        }
    }
    let index = index.ok_or_else(|| bad(&path, "no index.json: not an OCI image layout"))?;
    Ok(Layout { index, blobs })
}

/// Writes one blob, with GC labels, under `lease`; an existing blob is success.
pub(crate) async fn write_blob(
    client: &Client,
    digest: &str,
    data: &[u8],
    labels: HashMap<String, String>,
    lease: &str,
) -> Result<(), RuntimeError> {
    let total = data.len() as i64;
    let reference = format!("cloudless-import-{digest}");
    let mut msgs = Vec::new();
    for (i, chunk) in data.chunks(CHUNK).enumerate() {
        msgs.push(WriteContentRequest {
            action: WriteAction::Write as i32,
            r#ref: reference.clone(),
            total,
            expected: digest.to_owned(),
            offset: (i * CHUNK) as i64,
            data: chunk.to_vec(),
            labels: HashMap::new(),
        });
    }
    msgs.push(WriteContentRequest {
        action: WriteAction::Commit as i32,
        r#ref: reference,
        total,
        expected: digest.to_owned(),
        offset: total,
        data: Vec::new(),
        labels,
    });
    let req = client.leased(futures::stream::iter(msgs), lease);
    let result = async {
        let mut responses = client.content().write(req).await?.into_inner();
        while let Some(resp) = responses.next().await {
            resp?;
        }
        Ok::<(), containerd_client::tonic::Status>(())
    }
    .await;
    match result {
        Ok(()) => Ok(()),
        Err(s) if s.code() == Code::AlreadyExists => Ok(()),
        Err(s) => Err(status_error(s, &format!("content write {digest}"))),
    }
}

fn blob<'a>(layout: &'a Layout, archive: &Path, digest: &str) -> Result<&'a [u8], RuntimeError> {
    layout
        .blobs
        .get(digest)
        .map(Vec::as_slice)
        .ok_or_else(|| bad(archive, format!("blob {digest} missing from the archive")))
}

/// Writes a manifest's config and layers, then the manifest with GC references to them.
pub(crate) async fn write_manifest(
    client: &Client,
    snapshotter: &str,
    layout: &Layout,
    archive: &Path,
    digest: &str,
    lease: &str,
) -> Result<(), RuntimeError> {
    let raw = blob(layout, archive, digest)?;
    let manifest = ImageManifest::from_reader(raw).map_err(|e| bad(archive, e))?;
    let config_digest = manifest.config().digest().to_string();
    let config_raw = blob(layout, archive, &config_digest)?;
    let config = oci_spec::image::ImageConfiguration::from_reader(config_raw)
        .map_err(|e| bad(archive, e))?;
    let diff_ids = config.rootfs().diff_ids().clone();
    if diff_ids.len() != manifest.layers().len() {
        return Err(bad(archive, "layer count and diff_ids disagree"));
    }
    let mut manifest_labels = HashMap::new();
    manifest_labels.insert(
        "containerd.io/gc.ref.content.config".to_owned(),
        config_digest.clone(),
    );
    for (i, (layer, diff_id)) in manifest.layers().iter().zip(&diff_ids).enumerate() {
        let d = layer.digest().to_string();
        let mut labels = HashMap::new();
        labels.insert("containerd.io/uncompressed".to_owned(), diff_id.clone());
        write_blob(client, &d, blob(layout, archive, &d)?, labels, lease).await?;
        manifest_labels.insert(format!("containerd.io/gc.ref.content.l.{i}"), d);
    }
    let mut config_labels = HashMap::new();
    if let Some(top) = chain_ids(&diff_ids).last() {
        config_labels.insert(
            format!("containerd.io/gc.ref.snapshot.{snapshotter}"),
            top.clone(),
        );
    }
    write_blob(client, &config_digest, config_raw, config_labels, lease).await?;
    write_blob(client, digest, raw, manifest_labels, lease).await
}

/// Imports the archive's images; returns them. Unpacking is left to the caller.
pub(crate) async fn import(
    client: &Client,
    snapshotter: &str,
    archive: &Path,
    lease: &str,
) -> Result<Vec<(ImageInfo, Descriptor)>, RuntimeError> {
    let path = archive.to_path_buf();
    let layout = tokio::task::spawn_blocking(move || read_layout(path))
        .await
        .map_err(|e| RuntimeError::Other(Box::new(e)))??;
    let index = ImageIndex::from_reader(&layout.index[..]).map_err(|e| bad(archive, e))?;
    let mut out = Vec::new();
    for desc in index.manifests() {
        let annotations = desc.annotations().clone().unwrap_or_default();
        let name = annotations
            .get(NAME_ANNOTATION)
            .or_else(|| annotations.get(REF_ANNOTATION).filter(|r| r.contains(':')))
            .cloned()
            .ok_or_else(|| {
                bad(
                    archive,
                    format!("manifest {} has no image name", desc.digest()),
                )
            })?;
        let digest = desc.digest().to_string();
        let media_type = desc.media_type().to_string();
        if INDEX_TYPES.contains(&media_type.as_str()) {
            let nested = ImageIndex::from_reader(blob(&layout, archive, &digest)?)
                .map_err(|e| bad(archive, e))?;
            let mut labels = HashMap::new();
            for (i, m) in nested.manifests().iter().enumerate() {
                let md = m.digest().to_string();
                // Only the platforms the archive carries are written; the others stay absent.
                if layout.blobs.contains_key(&md) {
                    write_manifest(client, snapshotter, &layout, archive, &md, lease).await?;
                    labels.insert(format!("containerd.io/gc.ref.content.m.{i}"), md);
                }
            }
            write_blob(
                client,
                &digest,
                blob(&layout, archive, &digest)?,
                labels,
                lease,
            )
            .await?;
        } else {
            write_manifest(client, snapshotter, &layout, archive, &digest, lease).await?;
        }
        let target = Descriptor {
            media_type,
            digest: digest.clone(),
            size: desc.size() as i64,
            annotations: HashMap::new(),
        };
        create_image(client, &name, target.clone()).await?;
        out.push((
            ImageInfo {
                reference: name,
                digest,
                size: desc.size(),
            },
            target,
        ));
    }
    Ok(out)
}

/// Creates the image record, or points an existing one at the new target.
pub(crate) async fn create_image(
    client: &Client,
    name: &str,
    target: Descriptor,
) -> Result<(), RuntimeError> {
    let image = Image {
        name: name.to_owned(),
        labels: HashMap::new(),
        target: Some(target),
        created_at: None,
        updated_at: None,
    };
    let created = client
        .images()
        .create(client.req(CreateImageRequest {
            image: Some(image.clone()),
            source_date_epoch: None,
        }))
        .await;
    match created {
        Ok(_) => Ok(()),
        Err(s) if s.code() == Code::AlreadyExists => client
            .images()
            .update(client.req(UpdateImageRequest {
                image: Some(image),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["target".to_owned()],
                }),
                source_date_epoch: None,
            }))
            .await
            .map(|_| ())
            .map_err(|s| status_error(s, "image update")),
        Err(s) => Err(status_error(s, "image create")),
    }
}
