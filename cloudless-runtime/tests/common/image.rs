//! Builds a tiny OCI image layout tarball from the host's static busybox, with no network.
//!
//! The layer is deterministic (sorted names, mtime 0, uid/gid 0) so its digests are stable.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// The name the archive gives its image.
pub const IMAGE: &str = "localhost/cloudless/busybox:latest";

fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

fn busybox() -> PathBuf {
    for p in ["/bin/busybox", "/usr/bin/busybox"] {
        if Path::new(p).is_file() {
            return PathBuf::from(p);
        }
    }
    panic!("busybox-static is needed for the test image (apt-get install busybox-static)");
}

fn header(kind: tar::EntryType, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_size(size);
    h.set_mtime(0);
    h.set_uid(0);
    h.set_gid(0);
    h
}

fn layer() -> Vec<u8> {
    let bb = busybox();
    let binary = std::fs::read(&bb).expect("read busybox");
    let list = Command::new(&bb)
        .arg("--list")
        .output()
        .expect("busybox --list");
    let mut applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|a| !a.is_empty() && a != "busybox")
        .collect();
    applets.sort();
    applets.dedup();
    let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    let group = "root:x:0:\nnogroup:x:65534:\n";

    let mut b = tar::Builder::new(Vec::new());
    for (dir, mode) in [
        ("bin", 0o755),
        ("dev", 0o755),
        ("etc", 0o755),
        ("proc", 0o555),
        ("root", 0o700),
        ("sys", 0o555),
        ("tmp", 0o1777),
    ] {
        let mut h = header(tar::EntryType::Directory, mode, 0);
        b.append_data(&mut h, format!("{dir}/"), std::io::empty())
            .expect("dir");
    }
    let mut h = header(tar::EntryType::Regular, 0o755, binary.len() as u64);
    b.append_data(&mut h, "bin/busybox", &binary[..])
        .expect("busybox");
    for applet in &applets {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .expect("applet link");
    }
    for (name, content) in [("etc/group", group), ("etc/passwd", passwd)] {
        let mut h = header(tar::EntryType::Regular, 0o644, content.len() as u64);
        b.append_data(&mut h, name, content.as_bytes())
            .expect("etc file");
    }
    b.into_inner().expect("layer tar")
}

/// The image's blobs.
pub struct Parts {
    /// Config JSON.
    pub config: Vec<u8>,
    /// Manifest JSON.
    pub manifest: Vec<u8>,
    /// Gzipped layer.
    pub layer: Vec<u8>,
}

/// Builds the image's blobs.
pub fn parts() -> Parts {
    let layer = layer();
    let diff_id = sha256(&layer);
    let mut gz = GzEncoder::new(Vec::new(), Compression::default());
    gz.write_all(&layer).expect("gzip");
    let layer_gz = gz.finish().expect("gzip");
    let layer_digest = sha256(&layer_gz);
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": match std::env::consts::ARCH { "aarch64" => "arm64", _ => "amd64" },
        "os": "linux",
        "config": { "Env": ["PATH=/bin"], "Cmd": ["/bin/sh"] },
        "rootfs": { "type": "layers", "diff_ids": [diff_id] },
    }))
    .expect("config");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256(&config), "size": config.len(),
        },
        "layers": [{
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": layer_digest, "size": layer_gz.len(),
        }],
    }))
    .expect("manifest");
    Parts {
        config,
        manifest,
        layer: layer_gz,
    }
}

/// Writes the archive into `dir` and returns its path.
pub fn build(dir: &Path) -> PathBuf {
    let Parts {
        config,
        manifest,
        layer: layer_gz,
    } = parts();
    let index = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": sha256(&manifest), "size": manifest.len(),
            "annotations": {
                "io.containerd.image.name": IMAGE,
                "org.opencontainers.image.ref.name": "latest",
            },
        }],
    }))
    .expect("index");

    let path = dir.join("busybox-oci.tar");
    let file = std::fs::File::create(&path).expect("archive file");
    let mut out = tar::Builder::new(file);
    let mut add = |name: String, data: &[u8]| {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        out.append_data(&mut h, name, data).expect("archive entry");
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#);
    add("index.json".into(), &index);
    for blob in [&config, &manifest, &layer_gz] {
        let hex = sha256(blob).trim_start_matches("sha256:").to_owned();
        add(format!("blobs/sha256/{hex}"), blob);
    }
    out.finish().expect("archive");
    path
}
