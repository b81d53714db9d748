//! The busybox test image: an OCI image layout tarball built from the host's static busybox,
//! with no network, by `cloudless_runtime::busybox` (the library the local demo fabric uses too).

use std::path::{Path, PathBuf};

pub use cloudless_runtime::busybox::IMAGE;
/// The image's blobs (config, manifest, layer).
pub use cloudless_runtime::busybox::ImageParts as Parts;

fn busybox() -> PathBuf {
    cloudless_runtime::busybox::find_busybox().unwrap_or_else(|e| panic!("test image: {e}"))
}

/// Builds the image's blobs.
pub fn parts() -> Parts {
    cloudless_runtime::busybox::image_parts(&busybox())
        .unwrap_or_else(|e| panic!("test image: {e}"))
}

/// Writes the archive into `dir` and returns its path.
pub fn build(dir: &Path) -> PathBuf {
    let path = dir.join("busybox-oci.tar");
    cloudless_runtime::busybox::write_oci_layout(&busybox(), &path)
        .unwrap_or_else(|e| panic!("test image: {e}"));
    path
}
