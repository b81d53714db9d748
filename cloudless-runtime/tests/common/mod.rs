//! Shared test support: a private containerd and the busybox image fixture.
#![allow(dead_code, unreachable_pub, missing_docs)]

pub mod ctd;
pub mod fixture;
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
    runtime_with(ctd, network, |_| {}).await
}

/// Like [`runtime`], with `tweak` applied to the configuration.
pub async fn runtime_with(
    ctd: &ctd::Containerd,
    network: NetworkMode,
    tweak: impl FnOnce(&mut ContainerdConfig),
) -> ContainerdRuntime {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    let ns = format!(
        "t{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    );
    let mut cfg = ContainerdConfig::new(ctd.socket(), &ns, ctd.dir().join("data"));
    cfg.network = network;
    cfg.cgroup_parent = ctd.cgroup_parent();
    tweak(&mut cfg);
    let rt = ContainerdRuntime::connect(cfg).await.expect("connect");
    let archive = archive(ctd);
    cloudless_core::runtime::Runtime::import_image(&rt, &archive)
        .await
        .expect("import the busybox image");
    rt
}

use bytes::BytesMut;
use cloudless_core::runtime::{ContainerId, ContainerSpec, Runtime, RuntimeEvent};
use futures::StreamExt;

/// How long any single wait in these tests may take.
pub const PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// A busybox spec running `script` under `sh -c`.
pub fn sh(id: &str, script: &str) -> ContainerSpec {
    let mut spec =
        cloudless_core::testing::runtime::basic_spec(ContainerId(id.into()), image::IMAGE);
    spec.command = vec!["/bin/sh".into(), "-c".into(), script.into()];
    spec
}

/// Waits for the exit event of `id` on `events`.
pub async fn exit_of(
    events: &mut futures::stream::BoxStream<'static, RuntimeEvent>,
    id: &ContainerId,
) -> i32 {
    loop {
        let ev = tokio::time::timeout(PATIENCE, events.next())
            .await
            .expect("exit event in time")
            .expect("event stream open");
        let RuntimeEvent::Exited { id: got, code } = ev;
        if &got == id {
            return code;
        }
    }
}

/// The whole log of `id` as text.
pub async fn log_text(rt: &impl Runtime, id: &ContainerId) -> String {
    let mut stream = rt.logs(id, 0, false).await.expect("logs");
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        buf.extend_from_slice(&chunk.expect("log chunk").data);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// Creates and starts `spec`, waits for its exit; returns the exit code and the log.
pub async fn run_to_exit(rt: &impl Runtime, spec: &ContainerSpec) -> (i32, String) {
    let mut events = rt.events().await.expect("events");
    rt.create(spec).await.expect("create");
    rt.start(&spec.id).await.expect("start");
    let code = exit_of(&mut events, &spec.id).await;
    let log = log_text(rt, &spec.id).await;
    rt.remove(&spec.id).await.expect("remove");
    (code, log)
}
