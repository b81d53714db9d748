//! Image garbage collection under disk pressure against a real containerd, with a fake
//! free-space source that follows the real size of containerd's content store: the least
//! recently used unused images go first, only until the high watermark, and their content is
//! freed; an image a container uses or the caller keeps is never removed; the periodic task
//! collects on its own.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use cloudless_core::runtime::{ContainerId, Runtime};
use cloudless_runtime::containerd::{DiskGcPolicy, FsUsage, ImageGc, Watermark};
use cloudless_runtime::oci::NetworkMode;
use sha2::{Digest, Sha256};

const MIB: u64 = 1 << 20;
const LAYER_BYTES: usize = 2 << 20;

fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// `n` pseudo-random (incompressible, distinct per seed) bytes.
fn noise(seed: &str, n: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 32);
    let mut counter = 0u64;
    while out.len() < n {
        out.extend_from_slice(&Sha256::digest(format!("{seed}/{counter}").as_bytes()));
        counter += 1;
    }
    out.truncate(n);
    out
}

fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        b.append_data(&mut h, name, *data).expect("tar entry");
    }
    b.into_inner().expect("tar")
}

/// An OCI layout tarball of image `name` with one layer holding `LAYER_BYTES` of noise;
/// returns the archive's path and the layer's digest.
fn layout(dir: &Path, name: &str) -> (PathBuf, String) {
    let data = noise(name, LAYER_BYTES);
    let layer = tar_of(&[("data", &data)]);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": match std::env::consts::ARCH { "aarch64" => "arm64", _ => "amd64" },
        "os": "linux",
        "config": {},
        "rootfs": { "type": "layers", "diff_ids": [digest(&layer)] },
    }))
    .expect("config");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json",
                    "digest": digest(&config), "size": config.len() },
        "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar",
                     "digest": digest(&layer), "size": layer.len() }],
    }))
    .expect("manifest");
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": digest(&manifest), "size": manifest.len(),
            "annotations": { "io.containerd.image.name": name },
        }],
    }))
    .expect("index");
    let blob = |b: &[u8]| format!("blobs/sha256/{}", &digest(b)["sha256:".len()..]);
    let archive = tar_of(&[
        ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#),
        ("index.json", &index),
        (&blob(&config), &config),
        (&blob(&manifest), &manifest),
        (&blob(&layer), &layer),
    ]);
    let path = dir.join(format!("{}.tar", name.replace(['/', ':'], "_")));
    std::fs::write(&path, archive).expect("write layout");
    (path, digest(&layer))
}

/// Bytes in containerd's content store.
fn content_bytes(blobs: &Path) -> u64 {
    std::fs::read_dir(blobs)
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn has_blob(blobs: &Path, digest: &str) -> bool {
    blobs.join(&digest["sha256:".len()..]).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removes_least_recently_used_images_until_the_high_watermark() {
    let Some(ctd) = common::ctd::shared() else {
        return;
    };
    let rt = common::runtime(ctd, NetworkMode::Host).await;
    let dir = ctd.dir().join(format!("gc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let blobs = ctd
        .dir()
        .join("root/io.containerd.content.v1.content/blobs/sha256");

    let mut layers = std::collections::BTreeMap::new();
    for name in ["a", "b", "c", "kept"] {
        let image = format!("localhost/gc/{name}:1");
        let (archive, layer) = layout(&dir, &image);
        rt.import_image(&archive).await.expect("import");
        layers.insert(name, layer);
        // Distinct creation times (ms) give a deterministic LRU order.
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let image = |n: &str| format!("localhost/gc/{n}:1");
    let keep: BTreeSet<String> = [image("kept")].into();

    // `a` was used recently (a collection stamps it while a container references it), so it
    // is no longer the least recently used; the busybox image stays in use throughout.
    let mut user_of_a = common::sh("gc-user-a", "true");
    user_of_a.image = image("a");
    rt.create(&user_of_a).await.expect("create on a");
    let in_use = common::sh("gc-busybox", "sleep 1000");
    rt.create(&in_use).await.expect("create on busybox");

    // The fake filesystem: 1 GiB, free = base - content store size.
    let base = Arc::new(AtomicU64::new(u64::MAX));
    let space = {
        let base = base.clone();
        let blobs = blobs.clone();
        move || {
            Ok(FsUsage {
                total_bytes: 1 << 30,
                free_bytes: base
                    .load(Ordering::SeqCst)
                    .saturating_sub(content_bytes(&blobs)),
            })
        }
    };
    let policy = DiskGcPolicy {
        low: Watermark {
            percent: 100,
            bytes: 3 * MIB,
        },
        high: Watermark {
            percent: 100,
            bytes: 9 * MIB / 2,
        },
    };
    let gc = ImageGc::new(rt.clone(), policy, Arc::new(space)).expect("policy");

    // No pressure: nothing removed, but the images in use are stamped.
    let report = gc.run_once(&keep).await.expect("collect");
    assert!(report.removed.is_empty(), "{report:?}");
    let usage = rt.image_usage(&BTreeSet::new()).await.expect("usage");
    assert_eq!(usage.len(), 5, "{usage:?}");
    rt.remove(&ContainerId("gc-user-a".into()))
        .await
        .expect("remove user of a");

    // 1 MiB free: under pressure (3 MiB); b then c (the least recently used unused images)
    // bring it to about 5 MiB, above the high watermark (4.5 MiB), so `a` stays.
    base.store(content_bytes(&blobs) + MIB, Ordering::SeqCst);
    let report = gc.run_once(&keep).await.expect("collect");
    assert_eq!(report.removed, vec![image("b"), image("c")], "{report:?}");
    assert_eq!(report.before.free_bytes, MIB);
    assert!(
        report.after.free_bytes >= 9 * MIB / 2,
        "content freed: {report:?}"
    );
    assert!(!has_blob(&blobs, &layers["b"]) && !has_blob(&blobs, &layers["c"]));
    assert!(has_blob(&blobs, &layers["a"]) && has_blob(&blobs, &layers["kept"]));

    // Again: no longer under pressure.
    assert!(
        gc.run_once(&keep)
            .await
            .expect("collect")
            .removed
            .is_empty()
    );

    // Far below: every unused image goes, but never the kept one or the one in use.
    base.store(content_bytes(&blobs), Ordering::SeqCst);
    let report = gc.run_once(&keep).await.expect("collect");
    assert_eq!(report.removed, vec![image("a")], "{report:?}");
    assert!(!has_blob(&blobs, &layers["a"]) && has_blob(&blobs, &layers["kept"]));
    let mut left: Vec<String> = rt
        .image_usage(&BTreeSet::new())
        .await
        .expect("usage")
        .into_iter()
        .map(|i| i.name)
        .collect();
    left.sort();
    assert_eq!(left, vec![common::image::IMAGE.to_owned(), image("kept")]);
    let stamped = rt.image_usage(&keep).await.expect("usage");
    assert!(stamped.iter().all(|i| i.last_used_ms > 0), "{stamped:?}");

    // The periodic task: a new unused image under pressure is collected on the next tick.
    let (archive, layer_d) = layout(&dir, &image("d"));
    rt.import_image(&archive).await.expect("import d");
    assert!(has_blob(&blobs, &layer_d));
    let task = gc.clone().spawn(std::time::Duration::from_millis(20), {
        let keep = keep.clone();
        move || keep.clone()
    });
    let deadline = std::time::Instant::now() + common::PATIENCE;
    while has_blob(&blobs, &layer_d) {
        assert!(std::time::Instant::now() < deadline, "periodic collection");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    task.abort();
    let names: Vec<String> = rt
        .image_usage(&BTreeSet::new())
        .await
        .expect("usage")
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert!(
        !names.contains(&image("d")) && names.contains(&image("kept")),
        "{names:?}"
    );
    rt.remove(&in_use.id).await.expect("remove");
}
