//! Pulling from Debian's `docker-registry` over TLS with Basic auth (an htpasswd file) and with
//! the bearer-token flow (the registry verifies JWTs this test's token endpoint signs):
//! the right credentials pull an image that runs; a wrong password, missing credentials or an
//! untrusted certificate give typed errors naming the registry; tokens are cached per scope.
//!
//! Images are pushed through a second, anonymous plain-HTTP registry process on the same
//! storage directory, so the push needs neither TLS nor auth.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use cloudless_core::runtime::{ContainerId, Runtime, RuntimeError};
use cloudless_runtime::containerd::{RegistryConfig, RegistryCredentials};
use cloudless_runtime::{ContainerdConfig, ContainerdRuntime};
use sha2::{Digest, Sha256};

const USER: &str = "robot";
const PASSWORD: &str = "correct horse";
const SERVICE: &str = "cloudless-test-registry";
const ISSUER: &str = "cloudless-test-issuer";
const REPO: &str = "cloudless/busybox";

/// A registry process, killed on drop.
struct Registry {
    child: Child,
    addr: String,
    log: PathBuf,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Registry {
    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn free_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    format!("127.0.0.1:{port}")
}

/// Starts `docker-registry` on the storage under `dir` with the extra YAML `extra` (top-level
/// sections) and `http_extra` (indented under `http:`); waits until it listens.
fn start_registry(dir: &Path, name: &str, http_extra: &str, extra: &str) -> Registry {
    let addr = free_addr();
    let config = dir.join(format!("{name}.yml"));
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: debug\nstorage:\n  filesystem:\n    rootdirectory: {}\n\
             http:\n  addr: {addr}\n{http_extra}{extra}",
            dir.join("storage").display()
        ),
    )
    .expect("registry config");
    let log = dir.join(format!("{name}.log"));
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"))
        .spawn()
        .expect("start docker-registry");
    let reg = Registry { child, addr, log };
    let deadline = Instant::now() + common::PATIENCE;
    while TcpStream::connect(&reg.addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "registry {name} did not come up: {}",
            reg.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    reg
}

/// One plain HTTP/1.1 exchange; returns the status, the response head and the body.
fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<(u16, String, Vec<u8>)> {
    let mut s = TcpStream::connect(addr)?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or(resp.len());
    let head = String::from_utf8_lossy(&resp[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, head, resp[(split + 4).min(resp.len())..].to_vec()))
}

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Pushes the busybox image as `REPO:<tag>` through an anonymous plain-HTTP registry.
fn push(addr: &str, tag: &str) -> String {
    let parts = common::image::parts();
    for blob in [&parts.config, &parts.layer] {
        let (status, head, _) = http(
            addr,
            "POST",
            &format!("/v2/{REPO}/blobs/uploads/"),
            &[],
            b"",
        )
        .expect("start upload");
        assert_eq!(status, 202, "{head}");
        let location = head
            .lines()
            .find_map(|l| {
                l.to_ascii_lowercase()
                    .starts_with("location:")
                    .then(|| l["location:".len()..].trim().to_owned())
            })
            .expect("upload location");
        let path = location
            .split_once(addr)
            .map_or(location.as_str(), |(_, p)| p);
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, head, _) = http(
            addr,
            "PUT",
            &format!("{path}{sep}digest={}", digest(blob)),
            &[("Content-Type", "application/octet-stream")],
            blob,
        )
        .expect("upload");
        assert_eq!(status, 201, "{head}");
    }
    let (status, head, body) = http(
        addr,
        "PUT",
        &format!("/v2/{REPO}/manifests/{tag}"),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        &parts.manifest,
    )
    .expect("manifest");
    assert_eq!(status, 201, "{head} {}", String::from_utf8_lossy(&body));
    digest(&parts.manifest)
}

/// Skips (outside CI) when a prerequisite is missing; the shared containerd otherwise.
fn prerequisites() -> Option<&'static common::ctd::Containerd> {
    let ctd = common::ctd::shared()?;
    if Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_err()
    {
        let msg = "registry tests need Debian's docker-registry (apt-get install docker-registry)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("SKIPPED outside CI: {msg}");
        return None;
    }
    Some(ctd)
}

fn test_dir(ctd: &common::ctd::Containerd, name: &str) -> PathBuf {
    let dir = ctd.dir().join(format!("{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

/// A runtime on namespace `t<pid>-<ns>` with `registry` configured as `rc`.
async fn runtime(
    ctd: &common::ctd::Containerd,
    ns: &str,
    registry: &str,
    rc: RegistryConfig,
) -> ContainerdRuntime {
    let mut cfg = ContainerdConfig::new(
        ctd.socket(),
        &format!("t{}-{ns}", std::process::id()),
        ctd.dir().join("data"),
    );
    cfg.cgroup_parent = ctd.cgroup_parent();
    cfg.registries.insert(registry.to_owned(), rc);
    ContainerdRuntime::connect(cfg).await.expect("connect")
}

/// The reason of an `ImageUnavailable` for `image`.
fn unavailable_reason(got: Result<impl std::fmt::Debug, RuntimeError>, image: &str) -> String {
    match got {
        Err(RuntimeError::ImageUnavailable { image: i, reason }) => {
            assert_eq!(i, image);
            reason
        }
        other => panic!("expected ImageUnavailable for {image}: {other:?}"),
    }
}

async fn runs(rt: &ContainerdRuntime, image: &str, id: &str) {
    let mut spec = common::sh(id, "echo pulled");
    spec.image = image.to_owned();
    spec.id = ContainerId(id.into());
    let (code, log) = common::run_to_exit(rt, &spec).await;
    assert_eq!((code, log.as_str()), (0, "pulled\n"));
}

/// A CA and a server certificate for 127.0.0.1 signed by it, as PEM files in `dir`; returns
/// (CA file, certificate file, key file).
fn tls_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose, SanType,
    };
    let ca_key = KeyPair::generate().expect("ca key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca.distinguished_name
        .push(DnType::CommonName, "cloudless test registry CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca.self_signed(&ca_key).expect("ca cert");
    let issuer = Issuer::new(ca, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut leaf = CertificateParams::new(Vec::<String>::new()).expect("leaf params");
    leaf.subject_alt_names = vec![SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST))];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = leaf.signed_by(&key, &issuer).expect("server cert");
    let paths = (
        dir.join("ca.pem"),
        dir.join("server.pem"),
        dir.join("server.key"),
    );
    std::fs::write(&paths.0, ca_cert.pem()).expect("ca file");
    std::fs::write(&paths.1, cert.pem()).expect("cert file");
    std::fs::write(&paths.2, key.serialize_pem()).expect("key file");
    (paths.0, paths.1, paths.2)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_basic_auth() {
    let Some(ctd) = prerequisites() else {
        return;
    };
    let dir = test_dir(ctd, "tls-basic");
    let plain = start_registry(&dir, "plain", "", "");
    let pushed = push(&plain.addr, "v1");
    let (ca, cert, key) = tls_files(&dir);
    let hash = bcrypt::hash(PASSWORD, 4).expect("bcrypt");
    std::fs::write(dir.join("htpasswd"), format!("{USER}:{hash}\n")).expect("htpasswd");
    let reg = start_registry(
        &dir,
        "tls",
        &format!(
            "  tls:\n    certificate: {}\n    key: {}\n",
            cert.display(),
            key.display()
        ),
        &format!(
            "auth:\n  htpasswd:\n    realm: cloudless-test\n    path: {}\n",
            dir.join("htpasswd").display()
        ),
    );
    let image = format!("{}/{REPO}:v1", reg.addr);
    let good = RegistryConfig {
        insecure_http: false,
        ca_file: Some(ca.clone()),
        credentials: Some(RegistryCredentials::new(USER, PASSWORD)),
    };

    // Wrong password: unauthorized, naming the registry; the password appears nowhere.
    let mut wrong = good.clone();
    wrong.credentials = Some(RegistryCredentials::new(USER, "wrong-password"));
    let rt = runtime(ctd, "basic-wrong", &reg.addr, wrong).await;
    let reason = unavailable_reason(rt.pull_image(&image, None).await, &image);
    assert!(
        reason.starts_with(&format!("registry {}: unauthorized", reg.addr)),
        "{reason}"
    );
    assert!(!reason.contains("wrong-password"), "{reason}");

    // No credentials at all.
    let mut anonymous = good.clone();
    anonymous.credentials = None;
    let rt = runtime(ctd, "basic-anon", &reg.addr, anonymous).await;
    let reason = unavailable_reason(rt.pull_image(&image, None).await, &image);
    assert!(
        reason.contains(&format!("registry {}: unauthorized", reg.addr))
            && reason.contains("none are configured"),
        "{reason}"
    );

    // The registry's certificate is not trusted without its CA file.
    let mut untrusted = good.clone();
    untrusted.ca_file = None;
    let rt = runtime(ctd, "basic-untrusted", &reg.addr, untrusted).await;
    let reason = unavailable_reason(rt.pull_image(&image, None).await, &image);
    assert!(
        reason.starts_with(&format!("registry {}: unreachable", reg.addr))
            && reason.contains("certificate"),
        "{reason}"
    );

    // Right credentials and CA: pulled (digest verified) and runs; still runs with the
    // registry gone.
    let rt = runtime(ctd, "basic-good", &reg.addr, good).await;
    let info = rt.pull_image(&image, None).await.expect("pull over TLS");
    assert_eq!(info.digest, pushed);
    runs(&rt, &image, "tls-basic").await;
    drop(reg);
    drop(plain);
    rt.pull_image(&image, None).await.expect("cached image");
    runs(&rt, &image, "tls-basic-cached").await;
    // A registry nothing listens on: unreachable, naming the image and the registry.
    let nowhere = format!("{}/{REPO}:v1", free_addr());
    let reason = unavailable_reason(rt.pull_image(&nowhere, None).await, &nowhere);
    assert!(reason.contains("unreachable"), "{reason}");
}

/// The test's token endpoint: checks Basic credentials, signs ES256 JWTs the registry trusts
/// (the signing certificate travels in the `x5c` header and is the registry's root bundle).
struct TokenServer {
    addr: String,
    issued: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Signer {
    key: ring::signature::EcdsaKeyPair,
    cert_der: Vec<u8>,
}

impl Signer {
    fn token(&self, scope: &str) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_secs();
        let header = serde_json::json!({
            "typ": "JWT",
            "alg": "ES256",
            "x5c": [STANDARD.encode(&self.cert_der)],
        });
        let mut parts = scope.splitn(3, ':');
        let (kind, name, actions) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": USER,
            "aud": SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": format!("t{now}"),
            "access": [{"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}],
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let sig = self
            .key
            .sign(&ring::rand::SystemRandom::new(), signing_input.as_bytes())
            .expect("sign");
        format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }
}

/// Starts the token endpoint; writes the signing certificate to `bundle`.
async fn token_server(bundle: &Path) -> TokenServer {
    use axum::extract::{Query, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use std::collections::HashMap;

    let key = rcgen::KeyPair::generate().expect("token key");
    let cert = rcgen::CertificateParams::new(vec!["cloudless-token-signer".to_owned()])
        .expect("params")
        .self_signed(&key)
        .expect("token cert");
    std::fs::write(bundle, cert.pem()).expect("bundle");
    let signer = Arc::new(Signer {
        key: ring::signature::EcdsaKeyPair::from_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.serialize_der(),
            &ring::rand::SystemRandom::new(),
        )
        .expect("ring key"),
        cert_der: cert.der().to_vec(),
    });
    let issued = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    type St = (Arc<Signer>, Arc<AtomicUsize>, Arc<AtomicUsize>);
    async fn handle(
        State((signer, issued, refused)): State<St>,
        Query(q): Query<HashMap<String, String>>,
        headers: HeaderMap,
    ) -> Response {
        let expected = format!("Basic {}", STANDARD.encode(format!("{USER}:{PASSWORD}")));
        let authorized = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == expected);
        let scope_ok =
            q.get("scope").map(String::as_str) == Some("repository:cloudless/busybox:pull");
        if !authorized || q.get("service").map(String::as_str) != Some(SERVICE) || !scope_ok {
            refused.fetch_add(1, Ordering::SeqCst);
            return (StatusCode::UNAUTHORIZED, "{}").into_response();
        }
        issued.fetch_add(1, Ordering::SeqCst);
        let token = signer.token(&q["scope"]);
        axum::Json(serde_json::json!({"access_token": token, "expires_in": 300})).into_response()
    }
    let app = axum::Router::new()
        .route("/token", axum::routing::get(handle))
        .with_state((signer, issued.clone(), refused.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind token endpoint");
    let addr = listener.local_addr().expect("addr").to_string();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    TokenServer {
        addr,
        issued,
        refused,
        task,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_flow() {
    let Some(ctd) = prerequisites() else {
        return;
    };
    let dir = test_dir(ctd, "bearer");
    let plain = start_registry(&dir, "plain", "", "");
    let pushed = push(&plain.addr, "v1");
    push(&plain.addr, "v2");
    let bundle = dir.join("token-root.pem");
    let tokens = token_server(&bundle).await;
    let reg = start_registry(
        &dir,
        "bearer",
        "",
        &format!(
            "auth:\n  token:\n    realm: http://{}/token\n    service: {SERVICE}\n    issuer: \
             {ISSUER}\n    rootcertbundle: {}\n",
            tokens.addr,
            bundle.display()
        ),
    );
    // The registry itself demands a token.
    let (status, head, _) = http(
        &reg.addr,
        "GET",
        &format!("/v2/{REPO}/manifests/v1"),
        &[],
        b"",
    )
    .expect("probe");
    assert_eq!(status, 401, "{head}");
    assert!(head.contains("Bearer realm="), "{head}");

    let creds = |password: &str| RegistryConfig {
        insecure_http: true,
        ca_file: None,
        credentials: Some(RegistryCredentials::new(USER, password)),
    };
    let image = format!("{}/{REPO}:v1", reg.addr);

    // Wrong password: the realm refuses; typed error naming the registry.
    let rt = runtime(ctd, "bearer-wrong", &reg.addr, creds("nope")).await;
    let reason = unavailable_reason(rt.pull_image(&image, None).await, &image);
    assert!(
        reason.starts_with(&format!("registry {}: unauthorized", reg.addr)),
        "{reason}"
    );
    assert_eq!(tokens.issued.load(Ordering::SeqCst), 0);
    assert_eq!(tokens.refused.load(Ordering::SeqCst), 1);

    // Right password: one token serves every request of the pull (manifest, config, layer)
    // and the next pull of the same repository.
    let rt = runtime(ctd, "bearer-good", &reg.addr, creds(PASSWORD)).await;
    let info = rt
        .pull_image(&image, None)
        .await
        .unwrap_or_else(|e| panic!("pull with a token: {e}; registry log: {}", reg.log()));
    assert_eq!(info.digest, pushed);
    assert_eq!(tokens.issued.load(Ordering::SeqCst), 1);
    runs(&rt, &image, "bearer").await;
    let v2 = format!("{}/{REPO}:v2", reg.addr);
    rt.pull_image(&v2, None).await.expect("second pull");
    assert_eq!(tokens.issued.load(Ordering::SeqCst), 1, "token reused");

    // Missing image: named in the error, after a successful token exchange.
    let missing = format!("{}/{REPO}:missing", reg.addr);
    match rt.pull_image(&missing, None).await {
        Err(RuntimeError::ImageNotFound(name)) => assert_eq!(name, missing),
        other => panic!("missing image: {other:?}"),
    }

    // Registry and token endpoint gone: the cached image still runs.
    drop(reg);
    drop(tokens);
    drop(plain);
    rt.pull_image(&image, None).await.expect("cached image");
    runs(&rt, &image, "bearer-cached").await;
}
