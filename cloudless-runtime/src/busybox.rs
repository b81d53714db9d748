//! A tiny OCI image built from the host's static busybox, with no network: the image of the
//! local demo fabric (`examples/local_fabric.rs`) and of the containerd tests.
//!
//! ```text
//!  /bin/busybox (static) ──▶ layer tar: bin/busybox + one symlink per applet, /etc/passwd,
//!                            /etc/group, empty /dev /proc /sys /tmp /root (sorted, mtime 0)
//!                       ──▶ config + manifest JSON ──▶ OCI layout tarball (oci-layout,
//!                            index.json naming the image, blobs/sha256/<digest>)
//! ```
//!
//! The layer is deterministic (sorted names, mtime 0, uid/gid 0) and stored uncompressed
//! (`application/vnd.oci.image.layer.v1.tar`), so its digests depend only on the busybox
//! binary. A dynamically linked busybox is refused: the image has no libc.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

/// The name the archive gives its image.
pub const IMAGE: &str = "localhost/cloudless/busybox:latest";

/// Where [`find_busybox`] looks, in order.
pub const BUSYBOX_PATHS: [&str; 2] = ["/bin/busybox", "/usr/bin/busybox"];

/// Why the busybox image could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BusyboxImageError {
    /// No busybox binary at any of [`BUSYBOX_PATHS`].
    #[error("no busybox at {searched:?}: install busybox-static (apt-get install busybox-static)")]
    NotFound {
        /// The paths looked at.
        searched: Vec<PathBuf>,
    },
    /// The binary is dynamically linked (or not an ELF file), so it cannot run in the image.
    #[error(
        "{path}: {reason}; the image has no libc, install busybox-static (apt-get install busybox-static)"
    )]
    NotStatic {
        /// The binary.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// Reading the binary, running `busybox --list` or writing the archive failed.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// `busybox --list` failed or listed no applets.
    #[error("{path} --list: {reason}")]
    Applets {
        /// The binary.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A JSON document of the image could not be encoded.
    #[error("encoding the image {what}: {source}")]
    Json {
        /// Which document.
        what: &'static str,
        /// The error.
        source: serde_json::Error,
    },
}

/// The image's blobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageParts {
    /// Config JSON.
    pub config: Vec<u8>,
    /// Manifest JSON.
    pub manifest: Vec<u8>,
    /// The layer (an uncompressed tar).
    pub layer: Vec<u8>,
}

/// `sha256:<hex>` of `data`.
pub fn digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// The first busybox of [`BUSYBOX_PATHS`] that is a file.
pub fn find_busybox() -> Result<PathBuf, BusyboxImageError> {
    BUSYBOX_PATHS
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| BusyboxImageError::NotFound {
            searched: BUSYBOX_PATHS.iter().map(PathBuf::from).collect(),
        })
}

/// Why an ELF file is not static, if it is not (`None`: statically linked).
fn not_static_reason(elf: &[u8]) -> Option<String> {
    if elf.len() < 64 || &elf[..4] != b"\x7fELF" {
        return Some("not an ELF executable".into());
    }
    let is64 = elf[4] == 2;
    let le = elf[5] == 1;
    let num = |off: usize, len: usize| -> Option<u64> {
        let bytes = elf.get(off..off.checked_add(len)?)?;
        let mut v = 0u64;
        for i in 0..len {
            let b = if le { bytes[len - 1 - i] } else { bytes[i] };
            v = (v << 8) | u64::from(b);
        }
        Some(v)
    };
    let header = if is64 {
        (num(32, 8), num(54, 2), num(56, 2))
    } else {
        (num(28, 4), num(42, 2), num(44, 2))
    };
    let (Some(phoff), Some(phentsize), Some(phnum)) = header else {
        return Some("truncated ELF header".into());
    };
    for i in 0..phnum {
        let Some(off) = i
            .checked_mul(phentsize)
            .and_then(|o| o.checked_add(phoff))
            .and_then(|o| usize::try_from(o).ok())
        else {
            return Some("ELF program headers out of range".into());
        };
        match num(off, 4) {
            // PT_INTERP: the binary asks for a dynamic loader.
            Some(3) => return Some("dynamically linked".into()),
            Some(_) => {}
            None => return Some("ELF program headers out of range".into()),
        }
    }
    None
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

fn layer(busybox: &Path) -> Result<Vec<u8>, BusyboxImageError> {
    let binary = std::fs::read(busybox).map_err(|source| BusyboxImageError::Io {
        what: "reading",
        path: busybox.to_owned(),
        source,
    })?;
    if let Some(reason) = not_static_reason(&binary) {
        return Err(BusyboxImageError::NotStatic {
            path: busybox.to_owned(),
            reason,
        });
    }
    let list = Command::new(busybox)
        .arg("--list")
        .output()
        .map_err(|source| BusyboxImageError::Io {
            what: "running",
            path: busybox.to_owned(),
            source,
        })?;
    if !list.status.success() {
        return Err(BusyboxImageError::Applets {
            path: busybox.to_owned(),
            reason: format!("exited with {}", list.status),
        });
    }
    let mut applets: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(str::trim)
        .filter(|a| {
            !a.is_empty()
                && *a != "busybox"
                && a.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.[".contains(&b))
        })
        .map(str::to_owned)
        .collect();
    applets.sort();
    applets.dedup();
    if applets.is_empty() {
        return Err(BusyboxImageError::Applets {
            path: busybox.to_owned(),
            reason: "no applets listed".into(),
        });
    }
    let passwd = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
    let group = "root:x:0:\nnogroup:x:65534:\n";

    let io = |source| BusyboxImageError::Io {
        what: "building the layer of",
        path: busybox.to_owned(),
        source,
    };
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
            .map_err(io)?;
    }
    let mut h = header(tar::EntryType::Regular, 0o755, binary.len() as u64);
    b.append_data(&mut h, "bin/busybox", &binary[..])
        .map_err(io)?;
    for applet in &applets {
        let mut h = header(tar::EntryType::Symlink, 0o777, 0);
        b.append_link(&mut h, format!("bin/{applet}"), "busybox")
            .map_err(io)?;
    }
    for (name, content) in [("etc/group", group), ("etc/passwd", passwd)] {
        let mut h = header(tar::EntryType::Regular, 0o644, content.len() as u64);
        b.append_data(&mut h, name, content.as_bytes())
            .map_err(io)?;
    }
    b.into_inner().map_err(io)
}

fn json(what: &'static str, value: &serde_json::Value) -> Result<Vec<u8>, BusyboxImageError> {
    serde_json::to_vec(value).map_err(|source| BusyboxImageError::Json { what, source })
}

/// Builds the image's blobs from the static busybox at `busybox`.
pub fn image_parts(busybox: &Path) -> Result<ImageParts, BusyboxImageError> {
    let layer = layer(busybox)?;
    let layer_digest = digest(&layer);
    let config = json(
        "config",
        &serde_json::json!({
            "architecture": match std::env::consts::ARCH {
                "aarch64" => "arm64",
                "arm" => "arm",
                "x86" => "386",
                "riscv64" => "riscv64",
                _ => "amd64",
            },
            "os": "linux",
            "config": { "Env": ["PATH=/bin"], "Cmd": ["/bin/sh"] },
            // Uncompressed: the layer's digest is its diff id.
            "rootfs": { "type": "layers", "diff_ids": [&layer_digest] },
        }),
    )?;
    let manifest = json(
        "manifest",
        &serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {
                "mediaType": "application/vnd.oci.image.config.v1+json",
                "digest": digest(&config), "size": config.len(),
            },
            "layers": [{
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest, "size": layer.len(),
            }],
        }),
    )?;
    Ok(ImageParts {
        config,
        manifest,
        layer,
    })
}

/// Writes an OCI image layout tarball of the busybox at `busybox` to `out`, naming the image
/// [`IMAGE`]; `Runtime::import_image` takes it.
pub fn write_oci_layout(busybox: &Path, out: &Path) -> Result<(), BusyboxImageError> {
    let ImageParts {
        config,
        manifest,
        layer,
    } = image_parts(busybox)?;
    let index = json(
        "index",
        &serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest(&manifest), "size": manifest.len(),
                "annotations": {
                    "io.containerd.image.name": IMAGE,
                    "org.opencontainers.image.ref.name": "latest",
                },
            }],
        }),
    )?;
    let io = |source| BusyboxImageError::Io {
        what: "writing",
        path: out.to_owned(),
        source,
    };
    let file = std::fs::File::create(out).map_err(io)?;
    let mut archive = tar::Builder::new(file);
    let mut add = |name: String, data: &[u8]| {
        let mut h = header(tar::EntryType::Regular, 0o644, data.len() as u64);
        archive.append_data(&mut h, name, data)
    };
    add("oci-layout".into(), br#"{"imageLayoutVersion":"1.0.0"}"#).map_err(io)?;
    add("index.json".into(), &index).map_err(io)?;
    for blob in [&config, &manifest, &layer] {
        let hex = digest(blob).trim_start_matches("sha256:").to_owned();
        add(format!("blobs/sha256/{hex}"), blob).map_err(io)?;
    }
    archive.into_inner().map_err(io)?.sync_all().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn elf64(interp: bool) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 2 * 56];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2; // 64-bit
        e[5] = 1; // little endian
        e[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        e[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
        e[56..58].copy_from_slice(&2u16.to_le_bytes()); // e_phnum
        e[64..68].copy_from_slice(&1u32.to_le_bytes()); // PT_LOAD
        let second: u32 = if interp { 3 } else { 1 };
        e[120..124].copy_from_slice(&second.to_le_bytes());
        e
    }

    #[test]
    fn static_and_dynamic_elf_files_are_told_apart() {
        assert_eq!(not_static_reason(&elf64(false)), None);
        assert_eq!(
            not_static_reason(&elf64(true)).as_deref(),
            Some("dynamically linked")
        );
        assert_eq!(
            not_static_reason(b"#!/bin/sh\n").as_deref(),
            Some("not an ELF executable")
        );
        let mut truncated = elf64(false);
        truncated.truncate(100);
        assert_eq!(
            not_static_reason(&truncated).as_deref(),
            Some("ELF program headers out of range")
        );
    }

    #[test]
    fn a_missing_busybox_is_named() {
        let dir = std::env::temp_dir().join(format!("cld-no-busybox-{}", std::process::id()));
        let e = image_parts(&dir.join("busybox"))
            .err()
            .map(|e| e.to_string());
        assert!(
            e.as_deref().is_some_and(|e| e.contains("cld-no-busybox")),
            "{e:?}"
        );
    }
}
