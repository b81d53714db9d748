//! Shared test support: a private containerd and the busybox image fixture.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod ctd;
pub mod image;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};

use cloudless_runtime::oci::NetworkMode;
use cloudless_runtime::{ContainerdConfig, ContainerdRuntime};

/// The busybox archive, built once per test process into the shared containerd's directory.
pub fn archive(ctd: &ctd::Containerd) -> PathBuf {
    static ARCHIVE: OnceLock<PathBuf> = OnceLock::new();
    ARCHIVE.get_or_init(|| image::build(ctd.dir())).clone()
}

/// A runtime on a fresh namespace of `ctd`, with the busybox image imported.
pub async fn runtime(ctd: &ctd::Containerd, network: NetworkMode) -> ContainerdRuntime {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let ns = format!(
        "t{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let mut cfg = ContainerdConfig::new(ctd.socket(), &ns, ctd.dir().join("data"));
    cfg.network = network;
    cfg.cgroup_parent = ctd.cgroup_parent();
    let rt = ContainerdRuntime::connect(cfg).await.expect("connect");
    let archive = archive(ctd);
    cloudless_core::runtime::Runtime::import_image(&rt, &archive)
        .await
        .expect("import the busybox image");
    rt
}
