//! Pulling images from an OCI distribution registry over HTTP/1.1: HTTPS by default (rustls on
//! ring, trusting the system roots plus the registry's configured CA file), plain HTTP only for
//! registries configured as insecure; anonymous, Basic or bearer-token auth
//! ([`super::registry_auth`]). Every blob is checked against its digest before it goes into the
//! content store (and containerd checks it again on commit); then the image is recorded and
//! unpacked as after an import. Design record: `docs/design/image-pull.md`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use cloudless_core::runtime::{ImageInfo, RuntimeError};
use containerd_client::types::Descriptor;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::StatusCode;
use hyper::header::{
    ACCEPT as ACCEPT_HEADER, AUTHORIZATION, HeaderMap, LOCATION, WWW_AUTHENTICATE,
};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HttpClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use oci_spec::image::{ImageIndex, ImageManifest};
use sha2::{Digest, Sha256};

use super::image::{INDEX_TYPES, host_arch};
use super::import::{Layout, create_image, write_blob, write_manifest};
use super::registry_auth::{
    AuthCache, Challenge, RegistryError, basic_header, parse_challenge, parse_token, token_url,
};
use super::registry_config::{RegistryConfig, RegistryCredentials};
use super::{ContainerdConfig, Inner, client::Client, tls};

/// Largest blob accepted.
const MAX_BLOB_BYTES: usize = 1 << 30;
/// Largest error or token response read.
const MAX_SMALL_BYTES: usize = 1 << 20;
/// Bound on one HTTP exchange.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Bound on establishing a TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Redirects followed for one request (blob stores hand out pre-signed URLs).
const MAX_REDIRECTS: usize = 5;
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

/// An error and its causes, `outer: inner: ...` (hyper's own message is only the outermost).
fn chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = s.source();
    }
    out
}

/// The HTTP client of the registry pulls (HTTPS, and plain HTTP where configured).
pub(crate) type Http = HttpClient<HttpsConnector<HttpConnector>, Empty<Bytes>>;

/// Registry state shared by the pulls of one runtime: one HTTP client (and TLS trust) per
/// registry, and the auth cache.
#[derive(Default)]
pub(crate) struct RegistryState {
    clients: Mutex<HashMap<String, Http>>,
    auth: AuthCache,
}

impl RegistryState {
    /// The client for `host`, built on first use.
    fn client(&self, host: &str, cfg: &RegistryConfig) -> Result<Http, RegistryError> {
        if let Some(c) = self.clients.lock().ok().and_then(|m| m.get(host).cloned()) {
            return Ok(c);
        }
        let tls = tls::client_config(host, cfg.ca_file.as_deref(), !cfg.insecure_http)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_connect_timeout(Some(CONNECT_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = HttpClient::builder(TokioExecutor::new()).build(https);
        if let Ok(mut m) = self.clients.lock() {
            m.insert(host.to_owned(), client.clone());
        }
        Ok(client)
    }
}

/// How `host` is reached under `cfg`: its entry in `registries`, made plain HTTP when it is
/// listed in `plain_http_registries`; HTTPS and anonymous when it is in neither.
pub(crate) fn registry_config(cfg: &ContainerdConfig, host: &str) -> RegistryConfig {
    let mut rc = cfg.registries.get(host).cloned().unwrap_or_default();
    if cfg.plain_http_registries.iter().any(|h| h == host) {
        rc.insecure_http = true;
    }
    rc
}

/// The host serving `registry`'s API: Docker Hub's API is not at `docker.io` itself.
fn endpoint(registry: &str) -> &str {
    match registry {
        "docker.io" | "index.docker.io" => "registry-1.docker.io",
        other => other,
    }
}

/// The scheme and authority of an absolute `http(s)://` URL.
fn origin(url: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    (matches!(scheme, "http" | "https") && !authority.is_empty()).then_some((scheme, authority))
}

/// One response, its body read (bounded).
struct Response {
    status: StatusCode,
    headers: HeaderMap,
    body: Bytes,
}

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// One pull's view of its registry.
struct Registry<'a> {
    http: Http,
    /// Registry host (`host[:port]`).
    host: String,
    /// `https://host` or, for an insecure registry, `http://host`.
    base: String,
    insecure: bool,
    credentials: Option<&'a RegistryCredentials>,
    auth: &'a AuthCache,
    /// `repository:<repo>:pull`: the token scope and cache key.
    scope: String,
    image: String,
}

impl Registry<'_> {
    fn error(&self, e: RegistryError) -> RuntimeError {
        unavailable(&self.image, e)
    }

    fn unauthorized(&self, detail: &str) -> RuntimeError {
        self.error(RegistryError::Unauthorized {
            registry: self.host.clone(),
            detail: detail.to_owned(),
        })
    }

    fn protocol(&self, detail: String) -> RuntimeError {
        self.error(RegistryError::Protocol {
            registry: self.host.clone(),
            detail,
        })
    }

    /// One GET of `url` with `authorization`, following redirects (the header is dropped when
    /// a redirect leaves the registry's origin; a redirect from HTTPS to HTTP is refused).
    async fn send(
        &self,
        url: &str,
        accept: &str,
        authorization: Option<&str>,
        limit: usize,
    ) -> Result<Response, RuntimeError> {
        let exchange = async {
            let mut url = url.to_owned();
            for _ in 0..=MAX_REDIRECTS {
                let Some((scheme, authority)) = origin(&url) else {
                    return Err(self.protocol(format!("cannot follow URL {url:?}")));
                };
                if scheme == "http" && !self.insecure {
                    return Err(self.protocol(format!(
                        "refusing plain HTTP to {authority}: the registry is not configured as \
                         insecure"
                    )));
                }
                let same_origin = authority == endpoint(&self.host);
                let mut req = hyper::Request::get(&url).header(ACCEPT_HEADER, accept);
                if let (Some(a), true) = (authorization, same_origin) {
                    req = req.header(AUTHORIZATION, a);
                }
                let req = req
                    .body(Empty::new())
                    .map_err(|e| self.protocol(format!("request {url}: {e}")))?;
                let resp = self.http.request(req).await.map_err(|e| {
                    self.error(RegistryError::Unreachable {
                        registry: self.host.clone(),
                        detail: chain(&e),
                    })
                })?;
                let status = resp.status();
                if status.is_redirection() {
                    let location = resp
                        .headers()
                        .get(LOCATION)
                        .and_then(|v| v.to_str().ok())
                        .ok_or_else(|| self.protocol(format!("HTTP {status} without Location")))?;
                    url = if location.starts_with('/') {
                        format!("{scheme}://{authority}{location}")
                    } else {
                        location.to_owned()
                    };
                    continue;
                }
                let headers = resp.headers().clone();
                let limit = if status == StatusCode::OK {
                    limit
                } else {
                    MAX_SMALL_BYTES
                };
                let body = Limited::new(resp.into_body(), limit)
                    .collect()
                    .await
                    .map_err(|e| self.protocol(format!("reading {url}: {e}")))?
                    .to_bytes();
                return Ok(Response {
                    status,
                    headers,
                    body,
                });
            }
            Err(self.protocol(format!("more than {MAX_REDIRECTS} redirects")))
        };
        tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                self.error(RegistryError::Unreachable {
                    registry: self.host.clone(),
                    detail: format!("no answer within {} s", REQUEST_TIMEOUT.as_secs()),
                })
            })?
    }

    /// The `Authorization` to send up front: a cached token, or Basic credentials for a
    /// registry that asked for them before.
    fn authorization(&self) -> Option<(String, bool)> {
        if let Some(t) = self.auth.token(&self.host, &self.scope) {
            return Some((format!("Bearer {t}"), true));
        }
        match self.credentials {
            Some(c) if self.auth.wants_basic(&self.host) => Some((basic_header(c), false)),
            _ => None,
        }
    }

    /// The bearer-token flow: GET the realm (with Basic credentials when configured) for a
    /// token scoped to this repository; cached until shortly before it expires.
    async fn token(&self, realm: &str, service: Option<&str>) -> Result<(), RuntimeError> {
        let scheme_ok = match origin(realm) {
            Some(("https", _)) => true,
            Some(("http", _)) => self.insecure,
            _ => false,
        };
        if !scheme_ok {
            return Err(self.error(RegistryError::Config {
                registry: self.host.clone(),
                reason: format!(
                    "token realm {realm:?} is not an HTTPS URL (plain HTTP only for insecure \
                     registries)"
                ),
            }));
        }
        let url = token_url(realm, service, &self.scope);
        let authorization = self.credentials.map(basic_header);
        tracing::debug!(registry = %self.host, realm, scope = %self.scope, "fetching a registry token");
        let req = hyper::Request::get(&url).header(ACCEPT_HEADER, "application/json");
        let req = match &authorization {
            Some(a) => req.header(AUTHORIZATION, a.as_str()),
            None => req,
        }
        .body(Empty::new())
        .map_err(|e| self.protocol(format!("token request: {e}")))?;
        let exchange = async {
            let resp = self.http.request(req).await.map_err(|e| {
                self.error(RegistryError::Unreachable {
                    registry: self.host.clone(),
                    detail: format!("token realm {realm}: {}", chain(&e)),
                })
            })?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_SMALL_BYTES)
                .collect()
                .await
                .map_err(|e| self.protocol(format!("reading the token: {e}")))?
                .to_bytes();
            Ok::<_, RuntimeError>((status, body))
        };
        let (status, body) = tokio::time::timeout(REQUEST_TIMEOUT, exchange)
            .await
            .map_err(|_| {
                self.error(RegistryError::Unreachable {
                    registry: self.host.clone(),
                    detail: format!("token realm {realm}: no answer"),
                })
            })??;
        match status {
            StatusCode::OK => {
                let token = parse_token(&body).map_err(|e| self.protocol(e))?;
                self.auth.store(&self.host, &self.scope, &token);
                Ok(())
            }
            StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => {
                Err(self.unauthorized(if authorization.is_some() {
                    "the token realm refused the configured credentials"
                } else {
                    "the token realm refused an anonymous token; no credentials are configured"
                }))
            }
            other => Err(self.protocol(format!("token realm {realm}: HTTP {other}"))),
        }
    }

    /// GETs `path` with whatever auth the registry asks for; `Ok(None)` on 404.
    async fn get(&self, path: &str, accept: &str) -> Result<Option<(String, Bytes)>, RuntimeError> {
        let url = format!("{}{path}", self.base);
        let mut challenged = false;
        loop {
            let authorization = self.authorization();
            let resp = self
                .send(
                    &url,
                    accept,
                    authorization.as_ref().map(|(a, _)| a.as_str()),
                    MAX_BLOB_BYTES,
                )
                .await?;
            match resp.status {
                StatusCode::OK => {
                    let media_type = resp
                        .headers
                        .get("content-type")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    return Ok(Some((media_type, resp.body)));
                }
                StatusCode::NOT_FOUND => return Ok(None),
                StatusCode::UNAUTHORIZED if !challenged => {
                    challenged = true;
                    if let Some((_, true)) = authorization {
                        self.auth.forget(&self.host, &self.scope);
                    }
                    let challenge = resp
                        .headers
                        .get_all(WWW_AUTHENTICATE)
                        .iter()
                        .filter_map(|v| v.to_str().ok())
                        .find_map(parse_challenge);
                    match challenge {
                        None => {
                            return Err(
                                self.unauthorized("HTTP 401 without a Basic or Bearer challenge")
                            );
                        }
                        Some(Challenge::Basic) => match (self.credentials, &authorization) {
                            (None, _) => {
                                return Err(self.unauthorized(
                                    "the registry requires credentials; none are configured",
                                ));
                            }
                            (Some(_), Some((_, false))) => {
                                return Err(
                                    self.unauthorized("the registry refused the credentials")
                                );
                            }
                            (Some(_), _) => self.auth.set_basic(&self.host),
                        },
                        Some(Challenge::Bearer { realm, service, .. }) => {
                            self.token(&realm, service.as_deref()).await?;
                        }
                    }
                }
                StatusCode::UNAUTHORIZED => {
                    return Err(self.unauthorized(match authorization {
                        Some((_, true)) => "the registry refused its token",
                        Some((_, false)) => "the registry refused the credentials",
                        None => "the registry requires credentials",
                    }));
                }
                StatusCode::FORBIDDEN => {
                    return Err(self.unauthorized("access denied (HTTP 403)"));
                }
                other => return Err(self.protocol(format!("GET {path}: HTTP {other}"))),
            }
        }
    }

    /// Fetches a blob or manifest by digest and checks the digest.
    async fn fetch(&self, kind: &str, repo: &str, digest: &str) -> Result<Vec<u8>, RuntimeError> {
        let (_, body) = self
            .get(&format!("/v2/{repo}/{kind}/{digest}"), ACCEPT)
            .await?
            .ok_or_else(|| self.protocol(format!("{kind} {digest} missing")))?;
        if sha256(&body) != digest {
            return Err(self.protocol(format!("{digest} does not match its content")));
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
    let rc = registry_config(&inner.cfg, &r.registry);
    let http = inner
        .pulls
        .client(&r.registry, &rc)
        .map_err(|e| unavailable(image, e))?;
    let reg = Registry {
        http,
        host: r.registry.clone(),
        base: format!(
            "{}://{}",
            if rc.insecure_http { "http" } else { "https" },
            endpoint(&r.registry)
        ),
        insecure: rc.insecure_http,
        credentials: rc.credentials.as_ref(),
        auth: &inner.pulls.auth,
        scope: format!("repository:{}:pull", r.repository),
        image: image.to_owned(),
    };
    let path = format!("/v2/{}/manifests/{}", r.repository, r.reference);
    let (media_type, top) = reg
        .get(&path, ACCEPT)
        .await?
        .ok_or_else(|| RuntimeError::ImageNotFound(image.to_owned()))?;
    let top_digest = sha256(&top);
    if r.reference.starts_with("sha256:") && r.reference != top_digest {
        return Err(reg.protocol("manifest does not match the requested digest".to_owned()));
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
    use super::{ACCEPT, ImageRef, Registry, RegistryState, endpoint, origin, registry_config};
    use crate::containerd::{ContainerdConfig, RegistryConfig, RegistryCredentials};

    #[test]
    fn origins_and_endpoints() {
        assert_eq!(
            origin("https://r.example:5000/v2/x?y"),
            Some(("https", "r.example:5000"))
        );
        assert_eq!(origin("http://127.0.0.1:1"), Some(("http", "127.0.0.1:1")));
        for bad in ["ftp://x/y", "https:///x", "/v2/x", "x"] {
            assert_eq!(origin(bad), None, "{bad}");
        }
        assert_eq!(endpoint("docker.io"), "registry-1.docker.io");
        assert_eq!(endpoint("127.0.0.1:5000"), "127.0.0.1:5000");
    }

    /// A TLS registry never sends anything over plain HTTP: not a token request to an `http`
    /// realm, not a request after a redirect to `http` (both refused before any connection).
    #[tokio::test]
    async fn tls_registries_refuse_plain_http_realms_and_redirects() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = dir.path().join("ca.pem");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["ca.test".to_owned()])
            .expect("params")
            .self_signed(&key)
            .expect("cert");
        std::fs::write(&ca, cert.pem()).expect("ca file");
        let state = RegistryState::default();
        let cfg = RegistryConfig {
            ca_file: Some(ca),
            credentials: Some(RegistryCredentials::new("u", "secret-pw")),
            ..RegistryConfig::default()
        };
        let http = state.client("127.0.0.1:9", &cfg).expect("client");
        let reg = Registry {
            http,
            host: "127.0.0.1:9".into(),
            base: "https://127.0.0.1:9".into(),
            insecure: false,
            credentials: cfg.credentials.as_ref(),
            auth: &state.auth,
            scope: "repository:a:pull".into(),
            image: "127.0.0.1:9/a:1".into(),
        };
        let err = reg
            .token("http://127.0.0.1:9/token", None)
            .await
            .expect_err("http realm");
        let text = err.to_string();
        assert!(
            text.contains("registry 127.0.0.1:9: configuration"),
            "{text}"
        );
        assert!(!text.contains("secret-pw"), "{text}");
        let err = reg
            .send("http://127.0.0.1:9/v2/", ACCEPT, Some("Basic x"), 1)
            .await
            .err()
            .expect("plain http refused");
        assert!(err.to_string().contains("refusing plain HTTP"), "{err}");
    }

    #[test]
    fn plain_http_registries_stay_an_explicit_opt_in() {
        let mut cfg = ContainerdConfig::new("/s", "ns", "/d");
        cfg.plain_http_registries = vec!["127.0.0.1:5000".into()];
        cfg.registries.insert(
            "r.example".into(),
            RegistryConfig {
                ca_file: Some("/ca.pem".into()),
                ..RegistryConfig::default()
            },
        );
        assert!(registry_config(&cfg, "127.0.0.1:5000").insecure_http);
        let tls = registry_config(&cfg, "r.example");
        assert!(!tls.insecure_http && tls.ca_file.is_some());
        assert_eq!(
            registry_config(&cfg, "other.example"),
            RegistryConfig::default()
        );
    }

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
