//! Pulling from a registry (Debian's `docker-registry` on loopback, anonymous, plain HTTP): the
//! pulled image runs; with the registry stopped the cached image still runs; a missing image
//! gives an error naming the image; a registry not configured as insecure is only spoken to
//! over TLS.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use cloudless_core::runtime::{Runtime, RuntimeError};
use cloudless_runtime::{ContainerdConfig, ContainerdRuntime};
use sha2::{Digest, Sha256};

/// A private registry process, killed on drop.
struct Registry {
    child: Child,
    addr: String,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 exchange; returns the status, the response head and the body.
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

fn start_registry(dir: &std::path::Path) -> Registry {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
        .port();
    let addr = format!("127.0.0.1:{port}");
    let config = dir.join("registry.yml");
    std::fs::write(
        &config,
        format!(
            "version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {addr}\n",
            dir.join("registry").display()
        ),
    )
    .expect("registry config");
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start docker-registry");
    let reg = Registry { child, addr };
    let deadline = Instant::now() + common::PATIENCE;
    while !matches!(http(&reg.addr, "GET", "/v2/", &[], b""), Ok((200, _, _))) {
        assert!(Instant::now() < deadline, "registry did not come up");
        std::thread::sleep(Duration::from_millis(20));
    }
    reg
}

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Pushes the busybox image as `<repo>:<tag>` through the registry's HTTP API.
fn push(reg: &Registry, repo: &str, tag: &str) {
    let parts = common::image::parts();
    for blob in [&parts.config, &parts.layer] {
        let (status, head, _) = http(
            &reg.addr,
            "POST",
            &format!("/v2/{repo}/blobs/uploads/"),
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
                    .then(|| l["location:".len()..].to_owned())
            })
            .expect("upload location")
            .trim()
            .to_owned();
        let path = location
            .split_once(&reg.addr)
            .map_or(location.as_str(), |(_, p)| p);
        let sep = if path.contains('?') { '&' } else { '?' };
        let (status, head, _) = http(
            &reg.addr,
            "PUT",
            &format!("{path}{sep}digest={}", digest(blob)),
            &[("Content-Type", "application/octet-stream")],
            blob,
        )
        .expect("upload");
        assert_eq!(status, 201, "{head}");
    }
    let (status, head, body) = http(
        &reg.addr,
        "PUT",
        &format!("/v2/{repo}/manifests/{tag}"),
        &[("Content-Type", "application/vnd.oci.image.manifest.v1+json")],
        &parts.manifest,
    )
    .expect("manifest");
    assert_eq!(status, 201, "{head} {}", String::from_utf8_lossy(&body));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pulls_runs_and_falls_back_to_the_cached_image() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    if Command::new("docker-registry")
        .arg("--version")
        .output()
        .is_err()
    {
        let msg = "pull tests need Debian's docker-registry (apt-get install docker-registry)";
        assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("SKIPPED outside CI: {msg}");
        return;
    }
    let dir = ctd.dir().join(format!("pull-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let reg = start_registry(&dir);
    push(&reg, "cloudless/busybox", "v1");
    let image = format!("{}/cloudless/busybox:v1", reg.addr);

    let mut cfg = ContainerdConfig::new(
        ctd.socket(),
        &format!("t{}-pull", std::process::id()),
        ctd.dir().join("data"),
    );
    cfg.cgroup_parent = ctd.cgroup_parent();
    cfg.plain_http_registries = vec![reg.addr.clone()];
    let rt = ContainerdRuntime::connect(cfg).await.expect("connect");

    let info = rt.pull_image(&image, None).await.expect("pull");
    assert_eq!(info.digest, digest(&common::image::parts().manifest));
    let mut spec = common::sh("pulled", "echo pulled");
    spec.image = image.clone();
    let (code, log) = common::run_to_exit(&rt, &spec).await;
    assert_eq!((code, log.as_str()), (0, "pulled\n"));

    let missing = format!("{}/cloudless/missing:v1", reg.addr);
    match rt.pull_image(&missing, None).await {
        Err(RuntimeError::ImageNotFound(name)) => assert_eq!(name, missing),
        other => panic!("missing image: {other:?}"),
    }
    // Plain HTTP only where configured: another runtime without that entry speaks TLS to the
    // same registry and fails, naming the image and the registry.
    let mut tls_only = rt.config().clone();
    tls_only.namespace = format!("t{}-pull-tls", std::process::id());
    tls_only.plain_http_registries.clear();
    let strict = ContainerdRuntime::connect(tls_only).await.expect("connect");
    match strict.pull_image(&image, None).await {
        Err(e @ RuntimeError::ImageUnavailable { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&image), "{text}");
            assert!(
                text.contains(&format!("registry {}: unreachable", reg.addr)),
                "{text}"
            );
        }
        other => panic!("plain HTTP without opt-in: {other:?}"),
    }

    // Registry gone: the cached image still pulls (locally) and runs; a new one is unavailable.
    drop(reg);
    rt.pull_image(&image, None).await.expect("cached image");
    spec.id = cloudless_core::runtime::ContainerId("cached".into());
    let (code, log) = common::run_to_exit(&rt, &spec).await;
    assert_eq!((code, log.as_str()), (0, "pulled\n"));
    match rt.pull_image(&missing, None).await {
        Err(e @ RuntimeError::ImageUnavailable { .. }) => {
            assert!(e.to_string().contains(&missing), "{e}")
        }
        other => panic!("registry down: {other:?}"),
    }
}
