//! Ephemeral volumes on disk (CLD-REQ-052): one private host directory per replica and volume,
//! `<data_dir>/volumes/<namespace>/w<workload>-r<replica>/<name>`, bind-mounted into that
//! replica's containers only. Attempts of one replica share it (a restart keeps its scratch
//! data); it is deleted when the replica's last container is removed. Memory volumes are tmpfs
//! mounts made by the spec (sized by their limit) and need nothing here.
//!
//! A disk volume with a `sizeLimit` is a filesystem of its own: a sparse file `<name>.img` of
//! that size next to the directory, formatted ext4 (no journal, no reserved blocks) and
//! loop-mounted `nosuid,nodev` on the directory, so writing past the limit fails with `ENOSPC`
//! inside the container rather than filling the node's disk (the usable space is the limit minus
//! a little filesystem metadata). It is unmounted before the replica's directory is deleted.

use std::collections::BTreeMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use cloudless_core::runtime::{ContainerSpec, RuntimeError};
use cloudless_core::workload::VolumeMedium;
use containerd_client::services::v1::ListContainersRequest;

use super::client::status_error;
use super::{Inner, LABEL_REPLICA, LABEL_WORKLOAD};

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// The replica's volume directory.
fn replica_dir(inner: &Inner, workload: &str, replica: &str) -> PathBuf {
    inner
        .cfg
        .data_dir
        .join("volumes")
        .join(&inner.cfg.namespace)
        .join(format!("w{workload}-r{replica}"))
}

/// The host directory of each disk volume of `spec`, by name.
pub(crate) fn plan(
    inner: &Inner,
    spec: &ContainerSpec,
) -> Result<BTreeMap<String, PathBuf>, RuntimeError> {
    let base = replica_dir(
        inner,
        &spec.workload.0.to_string(),
        &spec.replica.get().to_string(),
    );
    let mut dirs = BTreeMap::new();
    for v in &spec.volumes {
        if !valid_name(&v.name) {
            return Err(RuntimeError::InvalidSpec(format!(
                "volume name {:?} must be a DNS-1123 label",
                v.name
            )));
        }
        if v.medium == VolumeMedium::Disk
            && dirs.insert(v.name.clone(), base.join(&v.name)).is_some()
        {
            return Err(RuntimeError::InvalidSpec(format!(
                "volume {:?} twice",
                v.name
            )));
        }
    }
    Ok(dirs)
}

fn io_err(e: std::io::Error) -> RuntimeError {
    RuntimeError::Other(Box::new(e))
}

/// The size limit in bytes of each disk volume of `spec` that has one, by name.
pub(crate) fn limits(spec: &ContainerSpec) -> BTreeMap<String, u64> {
    spec.volumes
        .iter()
        .filter(|v| v.medium == VolumeMedium::Disk)
        .filter_map(|v| Some((v.name.clone(), v.size_limit?.mib().saturating_mul(1 << 20))))
        .collect()
}

/// `path` as `/proc/self/mountinfo` writes it (space, tab, newline and backslash octal-escaped).
fn mountinfo_escape(path: &Path) -> String {
    path.to_string_lossy()
        .chars()
        .map(|c| match c {
            ' ' => "\\040".to_owned(),
            '\t' => "\\011".to_owned(),
            '\n' => "\\012".to_owned(),
            '\\' => "\\134".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// Mount points (escaped as in `mountinfo`) at or below `dir` in the `mountinfo` text, deepest
/// first.
fn mounts_under(mountinfo: &str, dir: &Path) -> Vec<String> {
    let want = mountinfo_escape(dir);
    let below = format!("{want}/");
    let mut out: Vec<String> = mountinfo
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| *m == want || m.starts_with(&below))
        .map(str::to_owned)
        .collect();
    out.sort_by_key(|m| std::cmp::Reverse(m.len()));
    out.dedup();
    out
}

fn mountinfo() -> Result<String, RuntimeError> {
    std::fs::read_to_string("/proc/self/mountinfo").map_err(io_err)
}

/// Runs a host tool; an error names the volume and the tool's complaint.
fn run_tool(volume: &Path, program: &str, args: &[&std::ffi::OsStr]) -> Result<(), RuntimeError> {
    let out = std::process::Command::new(program)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            RuntimeError::Other(format!("volume {}: {program}: {e}", volume.display()).into())
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(RuntimeError::Other(
            format!(
                "volume {}: {program} failed: {}",
                volume.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into(),
        ))
    }
}

/// Makes `dir` the mount point of a `limit`-byte ext4 filesystem in `<dir>.img` (created and
/// formatted the first time), unless it is mounted already (an earlier attempt of the replica).
/// True if this call mounted it.
fn mount_limited(dir: &Path, limit: u64) -> Result<bool, RuntimeError> {
    if mounts_under(&mountinfo()?, dir)
        .iter()
        .any(|m| *m == mountinfo_escape(dir))
    {
        return Ok(false);
    }
    let image = dir.with_extension("img");
    if !image.exists() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&image)
            .map_err(io_err)?;
        file.set_len(limit).map_err(io_err)?;
        drop(file);
        let formatted = run_tool(
            dir,
            "mkfs.ext4",
            &["-q", "-F", "-m", "0", "-O", "^has_journal"]
                .map(std::ffi::OsStr::new)
                .iter()
                .copied()
                .chain([image.as_os_str()])
                .collect::<Vec<_>>(),
        );
        if let Err(e) = formatted {
            let _ = std::fs::remove_file(&image);
            return Err(e);
        }
    }
    run_tool(
        dir,
        "mount",
        &[
            std::ffi::OsStr::new("-o"),
            std::ffi::OsStr::new("loop,nosuid,nodev"),
            image.as_os_str(),
            dir.as_os_str(),
        ],
    )?;
    // mkfs leaves lost+found; the volume starts empty like any other.
    let _ = std::fs::remove_dir(dir.join("lost+found"));
    Ok(true)
}

/// Unmounts every mount at or below `dir` (a busy one lazily).
fn unmount_under(dir: &Path) -> Result<(), RuntimeError> {
    for m in mounts_under(&mountinfo()?, dir) {
        let path = PathBuf::from(
            m.replace("\\040", " ")
                .replace("\\011", "\t")
                .replace("\\012", "\n")
                .replace("\\134", "\\"),
        );
        if run_tool(dir, "umount", &[path.as_os_str()]).is_err() {
            run_tool(
                dir,
                "umount",
                &[std::ffi::OsStr::new("-l"), path.as_os_str()],
            )?;
        }
    }
    Ok(())
}

/// Creates the directories: parents root-only (0700), each volume owned by the container's
/// user so a non-root container can write it; a volume with a size limit is mounted first.
/// On failure the volumes this call mounted are unmounted again (one an earlier attempt of the
/// replica mounted stays: its container still uses it).
pub(crate) fn prepare(
    dirs: &BTreeMap<String, PathBuf>,
    limits: &BTreeMap<String, u64>,
    uid: u32,
    gid: u32,
) -> Result<(), RuntimeError> {
    let mut mounted = Vec::new();
    let result = prepare_each(dirs, limits, uid, gid, &mut mounted);
    if result.is_err() {
        for dir in mounted.iter().rev() {
            if let Err(e) = unmount_under(dir) {
                tracing::warn!(volume = %dir.display(), "unmounting after a failed prepare: {e}");
            }
        }
    }
    result
}

fn prepare_each(
    dirs: &BTreeMap<String, PathBuf>,
    limits: &BTreeMap<String, u64>,
    uid: u32,
    gid: u32,
    mounted: &mut Vec<PathBuf>,
) -> Result<(), RuntimeError> {
    for (name, dir) in dirs {
        if let Some(parent) = dir.parent() {
            std::fs::create_dir_all(parent).map_err(io_err)?;
            for p in [parent, parent.parent().unwrap_or(parent)] {
                std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
                    .map_err(io_err)?;
            }
        }
        std::fs::create_dir_all(dir).map_err(io_err)?;
        if let Some(&limit) = limits.get(name)
            && mount_limited(dir, limit)?
        {
            mounted.push(dir.clone());
        }
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(io_err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o750)).map_err(io_err)?;
    }
    Ok(())
}

/// After a container of (`workload`, `replica`) is removed: deletes the replica's volumes if no
/// container of that replica remains.
pub(crate) async fn release(
    inner: &Inner,
    workload: Option<&String>,
    replica: Option<&String>,
) -> Result<(), RuntimeError> {
    let (Some(workload), Some(replica)) = (workload, replica) else {
        return Ok(());
    };
    let client = &inner.client;
    let left = client
        .containers()
        .list(client.req(ListContainersRequest {
            filters: vec![format!(
                "labels.\"{LABEL_WORKLOAD}\"=={workload},labels.\"{LABEL_REPLICA}\"=={replica}"
            )],
        }))
        .await
        .map_err(|s| status_error(s, "container list"))?
        .into_inner()
        .containers;
    if left.is_empty() {
        let dir = replica_dir(inner, workload, replica);
        let unmount = dir.clone();
        tokio::task::spawn_blocking(move || unmount_under(&unmount))
            .await
            .map_err(|e| RuntimeError::Other(Box::new(e)))??;
        remove_dir(&dir).await?;
    }
    Ok(())
}

async fn remove_dir(dir: &Path) -> Result<(), RuntimeError> {
    match tokio::fs::remove_dir_all(dir).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_below_a_directory_deepest_first() {
        let info = "22 1 0:21 / /proc rw - proc proc rw\n\
                    90 30 7:0 / /d/vol/w1-r2/scratch rw - ext4 /dev/loop0 rw\n\
                    91 30 7:1 / /d/vol/w1-r2/a\\040b rw - ext4 /dev/loop1 rw\n\
                    92 30 7:2 / /d/vol/w1-r22/x rw - ext4 /dev/loop2 rw\n\
                    93 90 0:5 / /d/vol/w1-r2/scratch/in rw - tmpfs t rw\n";
        assert_eq!(
            mounts_under(info, Path::new("/d/vol/w1-r2")),
            [
                "/d/vol/w1-r2/scratch/in",
                "/d/vol/w1-r2/scratch",
                "/d/vol/w1-r2/a\\040b"
            ]
        );
        assert_eq!(mountinfo_escape(Path::new("/a b\\c")), "/a\\040b\\134c");
        assert!(mounts_under("garbage\n\n", Path::new("/d")).is_empty());
    }

    #[test]
    fn only_disk_volumes_with_a_limit_get_one() {
        use cloudless_core::quantity::Memory;
        use cloudless_core::workload::EphemeralVolume;
        let mut spec = cloudless_core::testing::runtime::basic_spec(
            cloudless_core::runtime::ContainerId("c".into()),
            "img",
        );
        let vol = |name: &str, limit: Option<&str>, medium| EphemeralVolume {
            name: name.into(),
            mount_path: format!("/{name}"),
            size_limit: limit.map(|l| Memory::parse(l).expect("quantity")),
            medium,
        };
        spec.volumes = vec![
            vol("a", Some("8Mi"), VolumeMedium::Disk),
            vol("b", None, VolumeMedium::Disk),
            vol("c", Some("8Mi"), VolumeMedium::Memory),
        ];
        assert_eq!(limits(&spec), BTreeMap::from([("a".to_owned(), 8 << 20)]));
    }
}
