//! The kernel filesystems every container gets.

use std::collections::BTreeMap;
use std::path::PathBuf;

use cloudless_core::workload::{EphemeralVolume, VolumeMedium};
use oci_spec::OciSpecError;
use oci_spec::runtime::{Mount, MountBuilder};

use super::{NetworkMode, SpecError};

fn mount(dest: &str, typ: &str, source: &str, options: &[&str]) -> Result<Mount, OciSpecError> {
    MountBuilder::default()
        .destination(dest)
        .typ(typ)
        .source(source)
        .options(options.iter().map(|o| (*o).to_owned()).collect::<Vec<_>>())
        .build()
}

/// `/proc`, a small `/dev`, `/dev/pts`, a non-executable `/dev/shm`, `/dev/mqueue`, and `/sys`
/// and its cgroup tree read-only.
pub(super) fn default_mounts(network: NetworkMode) -> Result<Vec<Mount>, OciSpecError> {
    let sys = match network {
        NetworkMode::Isolated => mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        // sysfs shows the network namespace it was mounted in; with the host's namespace a
        // read-only bind of the host's /sys is what runc can mount.
        NetworkMode::Host => mount(
            "/sys",
            "bind",
            "/sys",
            &["rbind", "nosuid", "noexec", "nodev", "ro"],
        )?,
    };
    Ok(vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        sys,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
    ])
}

/// Whether `path` is an absolute container path without `.`/`..` components, other than `/`.
fn valid_mount_path(path: &str) -> bool {
    path.starts_with('/')
        && path != "/"
        && !path.contains('\0')
        && path
            .split('/')
            .skip(1)
            .all(|c| !c.is_empty() && c != "." && c != "..")
}

/// The mounts of the workload's ephemeral volumes (CLD-REQ-052): a bind of the replica's private
/// host directory for disk volumes, a size-limited tmpfs for memory volumes. Both are `nosuid`
/// and `nodev`.
pub(super) fn volume_mounts(
    volumes: &[EphemeralVolume],
    dirs: &BTreeMap<String, PathBuf>,
) -> Result<Vec<Mount>, SpecError> {
    let mut out = Vec::with_capacity(volumes.len());
    for v in volumes {
        if !valid_mount_path(&v.mount_path) {
            return Err(SpecError::BadVolume(format!(
                "{:?}: mount path {:?} must be absolute, without . or ..",
                v.name, v.mount_path
            )));
        }
        let mount = match v.medium {
            VolumeMedium::Memory => {
                let size = v
                    .size_limit
                    .map_or_else(|| "size=64m".to_owned(), |m| format!("size={}m", m.mib()));
                mount(
                    &v.mount_path,
                    "tmpfs",
                    "tmpfs",
                    &["nosuid", "nodev", "mode=1777", &size],
                )?
            }
            VolumeMedium::Disk => {
                let dir = dirs.get(&v.name).ok_or_else(|| {
                    SpecError::BadVolume(format!("{:?} has no host directory", v.name))
                })?;
                let source = dir.to_str().ok_or_else(|| {
                    SpecError::BadVolume(format!("{:?}: host path is not UTF-8", v.name))
                })?;
                mount(
                    &v.mount_path,
                    "bind",
                    source,
                    &["rbind", "rprivate", "nosuid", "nodev", "rw"],
                )?
            }
        };
        out.push(mount);
    }
    Ok(out)
}
