//! A cgroup per replica for the process runtime: CPU quota/period, memory and pids limits, in
//! the cgroup v1 layout (a directory per controller) or the v2 one (one unified directory).
//!
//! ```text
//! v1: <root>/cpu/<parent>/<id>/cpu.cfs_period_us, cpu.cfs_quota_us
//!     <root>/cpuacct/<parent>/<id>/cpuacct.usage               (stats)
//!     <root>/memory/<parent>/<id>/memory.limit_in_bytes
//!     <root>/pids/<parent>/<id>/pids.max
//! v2: <root>/<parent>/<id>/cpu.max ("<quota> <period>"), memory.max, pids.max
//!     (+cpu +memory +pids enabled in cgroup.subtree_control of <root> and of each parent level)
//! ```
//!
//! The process joins by writing its pid to `cgroup.procs` of each directory before it executes
//! the workload, so everything it starts is inside from the first instruction.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use cloudless_core::workload::ResourceLimits;
use serde::{Deserialize, Serialize};

use crate::oci::CPU_PERIOD_US;

/// Which cgroup hierarchy the process runtime puts replicas in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CgroupMode {
    /// Detect at `/sys/fs/cgroup`: v2 when `cgroup.controllers` is there, else v1 when a
    /// `memory` controller directory is, else none.
    Auto,
    /// No cgroups: processes run without limits (stats come from `/proc`).
    Off,
    /// cgroup v1, each controller mounted at `<root>/<controller>`.
    V1 {
        /// Usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
    /// cgroup v2, the unified hierarchy mounted at `root`.
    V2 {
        /// Usually `/sys/fs/cgroup`.
        root: PathBuf,
    },
}

impl CgroupMode {
    /// Resolves `Auto` by looking at the host.
    pub(crate) fn resolve(&self) -> CgroupMode {
        match self {
            CgroupMode::Auto => {
                let root = PathBuf::from("/sys/fs/cgroup");
                if root.join("cgroup.controllers").exists() {
                    CgroupMode::V2 { root }
                } else if root.join("memory").is_dir() {
                    CgroupMode::V1 { root }
                } else {
                    CgroupMode::Off
                }
            }
            other => other.clone(),
        }
    }
}

/// v1 controllers a replica gets a directory in (when mounted).
const V1_CONTROLLERS: [&str; 4] = ["cpu", "cpuacct", "memory", "pids"];
/// Key of the single v2 directory in [`CgroupSet::dirs`].
const UNIFIED: &str = "unified";

/// The limits of one replica, in the kernel's units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub(crate) struct Limits {
    /// CPU quota per period, µs.
    pub(crate) cpu_quota_us: Option<u64>,
    /// Memory limit, bytes.
    pub(crate) memory_bytes: Option<u64>,
    /// Maximum number of processes.
    pub(crate) pids: Option<u32>,
}

impl Limits {
    /// From the fragment's limits: quota = millicores × period / 1000 (at least 1 ms).
    pub(crate) fn from_spec(limits: &ResourceLimits) -> Self {
        Self {
            cpu_quota_us: limits
                .cpu
                .map(|c| (c.millis().saturating_mul(CPU_PERIOD_US) / 1000).max(1000)),
            memory_bytes: limits.memory.map(|m| m.mib().saturating_mul(1 << 20)),
            pids: limits.pids,
        }
    }

    /// Whether any limit is set.
    pub(crate) fn any(&self) -> bool {
        self.cpu_quota_us.is_some() || self.memory_bytes.is_some() || self.pids.is_some()
    }
}

/// The cgroup directories of one replica.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CgroupSet {
    /// 1 or 2.
    pub(crate) version: u8,
    /// Controller (v1) or `unified` (v2) → directory.
    pub(crate) dirs: BTreeMap<String, PathBuf>,
}

/// Why a replica's cgroup could not be made or limited.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CgroupError {
    /// No writable cgroup hierarchy: the replica runs without one.
    #[error("no writable cgroup hierarchy ({0})")]
    NotWritable(String),
    /// The kernel refused a limit; names the spec field.
    #[error("{field}: the kernel refused {value:?} in {file}: {source}")]
    Refused {
        /// The spec field, e.g. `limits.memory`.
        field: &'static str,
        /// The value written.
        value: String,
        /// The cgroup file.
        file: PathBuf,
        /// The kernel's answer.
        source: std::io::Error,
    },
}

fn relative(parent: &str) -> PathBuf {
    PathBuf::from(parent.trim_start_matches('/'))
}

fn write(field: &'static str, dir: &Path, file: &str, value: String) -> Result<(), CgroupError> {
    let path = dir.join(file);
    std::fs::write(&path, value.as_bytes()).map_err(|source| CgroupError::Refused {
        field,
        value,
        file: path,
        source,
    })
}

/// The `oom_kill <n>` counter of a `memory.oom_control` (v1) or `memory.events` (v2) file.
pub(crate) fn oom_kill_count(text: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix("oom_kill ")
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(0)
}

/// Enables the cpu, memory and pids controllers for the children of `dir` (v2). Best effort:
/// a controller the kernel lacks stays off and its limit file is then missing.
fn enable_controllers(dir: &Path) {
    for c in ["+cpu", "+memory", "+pids"] {
        let _ = std::fs::write(dir.join("cgroup.subtree_control"), c);
    }
}

/// Makes the cgroup of replica `id` under `parent` and writes `limits` into it.
pub(crate) fn create(
    mode: &CgroupMode,
    parent: &str,
    id: &str,
    limits: &Limits,
) -> Result<Option<CgroupSet>, CgroupError> {
    let rel = relative(parent).join(id);
    let set = match mode {
        CgroupMode::Off | CgroupMode::Auto => return Ok(None),
        CgroupMode::V1 { root } => {
            let mut dirs = BTreeMap::new();
            for c in V1_CONTROLLERS {
                let mount = root.join(c);
                if !mount.is_dir() {
                    continue;
                }
                let dir = mount.join(&rel);
                std::fs::create_dir_all(&dir)
                    .map_err(|e| CgroupError::NotWritable(format!("{}: {e}", dir.display())))?;
                dirs.insert(c.to_owned(), dir);
            }
            if dirs.is_empty() {
                return Err(CgroupError::NotWritable(format!(
                    "no v1 controller mounted under {}",
                    root.display()
                )));
            }
            CgroupSet { version: 1, dirs }
        }
        CgroupMode::V2 { root } => {
            let mut level = root.clone();
            enable_controllers(&level);
            for part in relative(parent).components() {
                level.push(part);
                std::fs::create_dir_all(&level)
                    .map_err(|e| CgroupError::NotWritable(format!("{}: {e}", level.display())))?;
                enable_controllers(&level);
            }
            let dir = root.join(&rel);
            std::fs::create_dir_all(&dir)
                .map_err(|e| CgroupError::NotWritable(format!("{}: {e}", dir.display())))?;
            CgroupSet {
                version: 2,
                dirs: BTreeMap::from([(UNIFIED.to_owned(), dir)]),
            }
        }
    };
    if let Err(e) = set.apply(limits) {
        set.remove();
        return Err(e);
    }
    Ok(Some(set))
}

impl CgroupSet {
    fn dir(&self, v1_controller: &str) -> Option<&Path> {
        match self.version {
            1 => self.dirs.get(v1_controller),
            _ => self.dirs.get(UNIFIED),
        }
        .map(PathBuf::as_path)
    }

    fn need(&self, field: &'static str, controller: &str) -> Result<&Path, CgroupError> {
        self.dir(controller).ok_or_else(|| {
            CgroupError::NotWritable(format!("{field}: no {controller} controller mounted"))
        })
    }

    /// Writes the limits.
    fn apply(&self, limits: &Limits) -> Result<(), CgroupError> {
        const CPU: &str = "limits.cpu";
        const MEM: &str = "limits.memory";
        const PIDS: &str = "limits.pids";
        if let Some(quota) = limits.cpu_quota_us {
            let dir = self.need(CPU, "cpu")?;
            if self.version == 1 {
                write(CPU, dir, "cpu.cfs_period_us", CPU_PERIOD_US.to_string())?;
                write(CPU, dir, "cpu.cfs_quota_us", quota.to_string())?;
            } else {
                write(CPU, dir, "cpu.max", format!("{quota} {CPU_PERIOD_US}"))?;
            }
        }
        if let Some(bytes) = limits.memory_bytes {
            let dir = self.need(MEM, "memory")?;
            let file = if self.version == 1 {
                "memory.limit_in_bytes"
            } else {
                "memory.max"
            };
            write(MEM, dir, file, bytes.to_string())?;
        }
        if let Some(pids) = limits.pids {
            let dir = self.need(PIDS, "pids")?;
            write(PIDS, dir, "pids.max", pids.to_string())?;
        }
        Ok(())
    }

    /// Moves process `pid` into every directory of the set.
    pub(crate) fn join(&self, pid: u32) -> std::io::Result<()> {
        for dir in self.dirs.values() {
            std::fs::write(dir.join("cgroup.procs"), pid.to_string())?;
        }
        Ok(())
    }

    /// The processes in the cgroup.
    pub(crate) fn pids(&self) -> Vec<u32> {
        let Some(dir) = self
            .dir("pids")
            .or_else(|| self.dirs.values().next().map(|p| &**p))
        else {
            return Vec::new();
        };
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// SIGKILLs every process in the cgroup (also those that left the process group).
    pub(crate) fn kill_all(&self) {
        if self.version == 2
            && let Some(dir) = self.dirs.get(UNIFIED)
            && std::fs::write(dir.join("cgroup.kill"), "1").is_ok()
        {
            return;
        }
        for pid in self.pids() {
            super::signal::kill_pid(pid, rustix::process::Signal::KILL);
        }
    }

    /// How many processes of the cgroup the OOM killer ended (v1 `memory.oom_control`, v2
    /// `memory.events`); 0 when unknown.
    pub(crate) fn oom_kills(&self) -> u64 {
        let file = if self.version == 1 {
            "memory.oom_control"
        } else {
            "memory.events"
        };
        self.dir("memory")
            .and_then(|dir| std::fs::read_to_string(dir.join(file)).ok())
            .map_or(0, |text| oom_kill_count(&text))
    }

    /// (CPU ns, memory bytes, pids) as far as the files are there.
    pub(crate) fn stats(&self) -> (Option<u64>, Option<u64>, Option<u64>) {
        let read = |dir: Option<&Path>, file: &str| -> Option<String> {
            std::fs::read_to_string(dir?.join(file)).ok()
        };
        let num = |s: Option<String>| s.and_then(|s| s.trim().parse::<u64>().ok());
        if self.version == 1 {
            (
                num(read(self.dir("cpuacct"), "cpuacct.usage")),
                num(read(self.dir("memory"), "memory.usage_in_bytes")),
                num(read(self.dir("pids"), "pids.current")),
            )
        } else {
            let dir = self.dir(UNIFIED);
            let cpu = read(dir, "cpu.stat").and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("usage_usec "))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .map(|us| us.saturating_mul(1000))
            });
            (
                cpu,
                num(read(dir, "memory.current")),
                num(read(dir, "pids.current")),
            )
        }
    }

    /// Removes the directories, killing stragglers: the kernel refuses (EBUSY) while processes
    /// remain, and killed processes take a moment to leave. Gives up after about a second.
    pub(crate) fn remove(&self) {
        let mut left: Vec<&PathBuf> = self.dirs.values().collect();
        for attempt in 0..50 {
            if attempt > 0 {
                self.kill_all();
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            left.retain(|dir| match std::fs::remove_dir(dir) {
                Ok(()) => false,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
                // A plain directory standing in for a cgroup (tests) holds regular files.
                Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => {
                    std::fs::remove_dir_all(dir).is_err()
                }
                Err(_) => true,
            });
            if left.is_empty() {
                return;
            }
        }
        for dir in left {
            tracing::warn!(dir = %dir.display(), "cgroup not removed: processes remain");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudless_core::quantity::{Cpu, Memory};

    #[test]
    fn oom_kill_counter_of_v1_and_v2_files() {
        assert_eq!(
            oom_kill_count("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n"),
            3
        );
        assert_eq!(
            oom_kill_count("low 0\nhigh 0\nmax 2\noom 1\noom_kill 1\n"),
            1
        );
        assert_eq!(oom_kill_count("oom_kill_disable 0\n"), 0);
        assert_eq!(oom_kill_count("oom_kill many\n"), 0);
    }

    fn limits() -> Limits {
        Limits::from_spec(&ResourceLimits {
            cpu: Some(Cpu::parse("250m").expect("cpu")),
            memory: Some(Memory::parse("32Mi").expect("mem")),
            pids: Some(50),
        })
    }

    fn read(p: PathBuf) -> String {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    }

    #[test]
    fn quota_from_millicores() {
        let l = limits();
        assert_eq!(l.cpu_quota_us, Some(25_000));
        assert_eq!(l.memory_bytes, Some(32 << 20));
        assert_eq!(l.pids, Some(50));
        let tiny = Limits::from_spec(&ResourceLimits {
            cpu: Some(Cpu::parse("1m").expect("cpu")),
            ..Default::default()
        });
        assert_eq!(tiny.cpu_quota_us, Some(1000), "the kernel's minimum quota");
        assert!(!Limits::default().any());
    }

    #[test]
    fn v2_files_in_a_fake_hierarchy() {
        let root = tempfile::tempdir().expect("tmp");
        let mode = CgroupMode::V2 {
            root: root.path().to_owned(),
        };
        let set = create(&mode, "/cloudless/agent-1", "r1-a0", &limits())
            .expect("create")
            .expect("a cgroup");
        let dir = root.path().join("cloudless/agent-1/r1-a0");
        assert_eq!(set.dirs.get(UNIFIED), Some(&dir));
        assert_eq!(read(dir.join("cpu.max")), "25000 100000");
        assert_eq!(read(dir.join("memory.max")), (32u64 << 20).to_string());
        assert_eq!(read(dir.join("pids.max")), "50");
        // Controllers are enabled for the children of the root and of each parent level.
        for level in ["", "cloudless", "cloudless/agent-1"] {
            let ctl = read(root.path().join(level).join("cgroup.subtree_control"));
            // A plain file keeps the last write; the kernel's file accumulates them.
            assert_eq!(ctl, "+pids", "{level}");
        }
        set.join(4242).expect("join");
        assert_eq!(read(dir.join("cgroup.procs")), "4242");
        assert_eq!(set.pids(), vec![4242]);
        std::fs::write(dir.join("cpu.stat"), "usage_usec 1500\nuser_usec 1000\n").expect("w");
        std::fs::write(dir.join("memory.current"), "4096\n").expect("w");
        std::fs::write(dir.join("pids.current"), "3\n").expect("w");
        assert_eq!(set.stats(), (Some(1_500_000), Some(4096), Some(3)));
        set.remove();
        assert!(!dir.exists());
    }

    #[test]
    fn v1_files_in_a_fake_hierarchy() {
        let root = tempfile::tempdir().expect("tmp");
        for c in ["cpu", "cpuacct", "memory", "pids"] {
            std::fs::create_dir(root.path().join(c)).expect("mkdir");
        }
        let mode = CgroupMode::V1 {
            root: root.path().to_owned(),
        };
        let set = create(&mode, "cl", "x", &limits())
            .expect("create")
            .expect("a cgroup");
        let p = root.path();
        assert_eq!(read(p.join("cpu/cl/x/cpu.cfs_period_us")), "100000");
        assert_eq!(read(p.join("cpu/cl/x/cpu.cfs_quota_us")), "25000");
        assert_eq!(
            read(p.join("memory/cl/x/memory.limit_in_bytes")),
            (32u64 << 20).to_string()
        );
        assert_eq!(read(p.join("pids/cl/x/pids.max")), "50");
        set.join(7).expect("join");
        for c in ["cpu", "cpuacct", "memory", "pids"] {
            assert_eq!(read(p.join(c).join("cl/x/cgroup.procs")), "7", "{c}");
        }
        set.remove();
        assert!(!p.join("memory/cl/x").exists());
    }

    #[test]
    fn missing_controller_names_the_field() {
        let root = tempfile::tempdir().expect("tmp");
        std::fs::create_dir(root.path().join("memory")).expect("mkdir");
        let mode = CgroupMode::V1 {
            root: root.path().to_owned(),
        };
        let err = create(&mode, "cl", "x", &limits()).expect_err("no cpu controller");
        assert!(err.to_string().contains("limits.cpu"), "{err}");
        assert!(!root.path().join("memory/cl/x").exists(), "cleaned up");
        let none = create(&CgroupMode::Off, "cl", "x", &limits()).expect("off");
        assert_eq!(none, None);
    }

    #[test]
    fn unwritable_root_is_reported() {
        let mode = CgroupMode::V2 {
            root: PathBuf::from("/proc/definitely-not-writable"),
        };
        let err = create(&mode, "cl", "x", &limits()).expect_err("not writable");
        assert!(matches!(err, CgroupError::NotWritable(_)), "{err}");
    }
}
