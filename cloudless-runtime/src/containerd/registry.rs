//! Pulling images from an OCI distribution registry: anonymous, over plain HTTP/1.1, for the
//! registries the configuration lists (a registry on the node's own network). Every blob is
//! checked against its digest before it goes into the content store (and containerd checks it
//! again on commit); then the image is recorded and unpacked as after an import. HTTPS and
//! authenticated registries are not supported yet and fail with a typed error naming that.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use cloudless_core::runtime::{ImageInfo, RuntimeError};
use containerd_client::types::Descriptor;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::StatusCode;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oci_spec::image::{ImageIndex, ImageManifest};
use sha2::{Digest, Sha256};

use super::image::{INDEX_TYPES, host_arch};
use super::import::{Layout, create_image, write_blob, write_manifest};
use super::{Inner, client::Client};

/// Largest blob accepted.
const MAX_BLOB_BYTES: usize = 1 << 30;
/// Bound on one HTTP exchange.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Manifest media types we accept.
const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, \
                      application/vnd.oci.image.manifest.v1+json, \
                      application/vnd.docker.distribution.manifest.list.v2+json, \
                      application/vnd.docker.distribution.manifest.v2+json";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ImageRef {
    /// Registry host (and port).
    pub(crate) registry: String,
    /// Repository path.
    pub(crate) repository: String,
    /// Tag or `sha256:` digest.
    pub(crate) reference: String,
}

impl ImageRef {
    /// Parses `[registry/]repo[:tag][@digest]`; a first component without `.`, `:` or
    /// `localhost` means Docker Hub.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        let (name, digest) = match s.split_once('@') {
            Some((n, d)) => (n, Some(d)),
            None => (s, None),
        };
        let last_slash = name.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match name[last_slash..].rfind(':') {
            Some(i) => (&name[..last_slash + i], Some(&name[last_slash + i + 1..])),
            None => (name, None),
        };
        let (registry, repository) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ if name.contains('/') => ("docker.io".to_owned(), name.to_owned()),
            _ => ("docker.io".to_owned(), format!("library/{name}")),
        };
        if name.is_empty() {
            return None;
        }
        let reference = digest.or(tag).unwrap_or("latest").to_owned();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-/:".contains(&b))
        };
        (ok(&registry)
            && ok(&repository)
            && ok(&reference)
            && !repository.contains("..")
            && !repository.split('/').any(str::is_empty))
        .then_some(Self {
            registry,
            repository,
            reference,
        })
    }
}

fn unavailable(image: &str, reason: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::ImageUnavailable {
        image: image.to_owned(),
        reason: reason.to_string(),
    }
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

struct Registry {
    http: HttpClient<HttpConnector, Empty<Bytes>>,
    base: String,
    image: String,
}

impl Registry {
    /// GETs `path`; `Ok(None)` on 404.
    async fn get(&self, path: &str, accept: &str) -> Result<Option<(String, Bytes)>, RuntimeError> {
        let req = hyper::Request::get(format!("{}{path}", self.base))
            .header("accept", accept)
            .body(Empty::new())
            .map_err(|e| unavailable(&self.image, e))?;
        let exchange = async {
            let resp = self
                .http
                .request(req)
                .await
                .map_err(|e| unavailable(&self.image, format!("registry unreachable: {e}")))?;
            let status = resp.status();
            let media_type = resp
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            let body = Limited::new(resp.into_body(), MAX_BLOB_BYTES)
                .collect()
                .await
                .map_err(|e| unavailable(&self.image, format!("reading {path}: {e}")))?
                .to_bytes();
            match status {
                StatusCode::OK => Ok(Some((media_type, body))),
                StatusCode::NOT_FOUND => Ok(None),
                StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => Err(unavailable(
                    &self.image,
                    "the registry requires authentication, which is not supported yet",
                )),
                other => Err(unavailable(
                    &self.image,
                    format!("GET {path}: HTTP {other}"),
                )),
            }
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| unavailable(&self.image, format!("GET {path} timed out")))?
    }

    /// Fetches a blob or manifest by digest and checks the digest.
    async fn fetch(&self, kind: &str, repo: &str, digest: &str) -> Result<Vec<u8>, RuntimeError> {
        let (_, body) = self
            .get(&format!("/v2/{repo}/{kind}/{digest}"), ACCEPT)
            .await?
            .ok_or_else(|| unavailable(&self.image, format!("{kind} {digest} missing")))?;
        if sha256(&body) != digest {
            return Err(unavailable(
                &self.image,
                format!("{digest} does not match its content"),
            ));
        }
        Ok(body.to_vec())
    }
}

/// Pulls `image` into the namespace and unpacks it.
pub(crate) async fn pull(
    inner: &Inner,
    image: &str,
    lease: &str,
) -> Result<ImageInfo, RuntimeError> {
    let r = ImageRef::parse(image).ok_or_else(|| RuntimeError::ImageNotFound(image.to_owned()))?;
    if !inner.cfg.plain_http_registries.contains(&r.registry) {
        return Err(unavailable(
            image,
            format!(
                "registry {} is not a configured plain-HTTP registry; HTTPS registries are not \
                 supported yet",
                r.registry
            ),
        ));
    }
    let reg = Registry {
        http: HttpClient::builder(TokioExecutor::new()).build_http(),
        base: format!("http://{}", r.registry),
        image: image.to_owned(),
    };
    let path = format!("/v2/{}/manifests/{}", r.repository, r.reference);
    let (media_type, top) = reg
        .get(&path, ACCEPT)
        .await?
        .ok_or_else(|| RuntimeError::ImageNotFound(image.to_owned()))?;
    let top_digest = sha256(&top);
    if r.reference.starts_with("sha256:") && r.reference != top_digest {
        return Err(unavailable(
            image,
            "manifest does not match the requested digest",
        ));
    }
    let media_type = media_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned();
    let mut blobs = BTreeMap::new();
    let manifest_digest = if INDEX_TYPES.contains(&media_type.as_str()) {
        let index = ImageIndex::from_reader(&top[..]).map_err(|e| unavailable(image, e))?;
        let arch = host_arch();
        let chosen = index
            .manifests()
            .iter()
            .find(|m| {
                m.platform().as_ref().is_some_and(|p| {
                    p.os().to_string() == "linux" && p.architecture().to_string() == arch
                })
            })
            .ok_or_else(|| unavailable(image, format!("no linux/{arch} manifest")))?;
        let digest = chosen.digest().to_string();
        blobs.insert(
            digest.clone(),
            reg.fetch("manifests", &r.repository, &digest).await?,
        );
        digest
    } else {
        top_digest.clone()
    };
    blobs.insert(top_digest.clone(), top.to_vec());
    let manifest = ImageManifest::from_reader(&blobs[&manifest_digest][..])
        .map_err(|e| unavailable(image, e))?;
    let mut wanted = vec![manifest.config().digest().to_string()];
    wanted.extend(manifest.layers().iter().map(|l| l.digest().to_string()));
    for digest in wanted {
        let data = reg.fetch("blobs", &r.repository, &digest).await?;
        blobs.insert(digest, data);
    }

    let layout = Layout {
        index: Vec::new(),
        blobs,
    };
    let client: &Client = &inner.client;
    let label = Path::new(image);
    write_manifest(
        client,
        &inner.cfg.snapshotter,
        &layout,
        label,
        &manifest_digest,
        lease,
    )
    .await?;
    if top_digest != manifest_digest {
        let mut labels = HashMap::new();
        labels.insert(
            "containerd.io/gc.ref.content.m.0".to_owned(),
            manifest_digest.clone(),
        );
        write_blob(
            client,
            &top_digest,
            &layout.blobs[&top_digest],
            labels,
            lease,
        )
        .await?;
    }
    let target = Descriptor {
        media_type,
        digest: top_digest.clone(),
        size: top.len() as i64,
        annotations: HashMap::new(),
    };
    create_image(client, image, target).await?;
    Ok(ImageInfo {
        reference: image.to_owned(),
        digest: top_digest,
        size: top.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::ImageRef;

    fn r(reg: &str, repo: &str, reference: &str) -> Option<ImageRef> {
        Some(ImageRef {
            registry: reg.into(),
            repository: repo.into(),
            reference: reference.into(),
        })
    }

    #[test]
    fn parses_references() {
        assert_eq!(
            ImageRef::parse("busybox"),
            r("docker.io", "library/busybox", "latest")
        );
        assert_eq!(
            ImageRef::parse("org/app:1.2"),
            r("docker.io", "org/app", "1.2")
        );
        assert_eq!(
            ImageRef::parse("127.0.0.1:5000/cloudless/busybox:v1"),
            r("127.0.0.1:5000", "cloudless/busybox", "v1")
        );
        assert_eq!(
            ImageRef::parse("localhost/x@sha256:abcd"),
            r("localhost", "x", "sha256:abcd")
        );
        assert_eq!(
            ImageRef::parse("reg.example:443/a/b"),
            r("reg.example:443", "a/b", "latest")
        );
        for bad in [
            "",
            "a b",
            "reg.example/../x",
            "x:",
            "reg.example/a//b",
            "@sha256:x",
        ] {
            assert_eq!(ImageRef::parse(bad), None, "{bad}");
        }
    }
}
