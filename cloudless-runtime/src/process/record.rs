//! What a replica leaves on disk (its directory under the runtime's state dir, root-only) and
//! what `/proc` says about its processes.
//!
//! ```text
//! <state_dir>/replicas/<id>/   0700
//!     plan.json      0600  the launch plan (written by create)
//!     start.claim    0600  exists once a start began (a second start fails)
//!     started.json   0600  pids and start times (written by the shim once the process runs)
//!     exit.json      0600  exit code and time (written by the shim after the exit)
//!     shim.lock      0600  exclusively locked by the shim for as long as it lives
//!     output.log     0600  the capped combined stdout + stderr
//!     shim.err       0600  the shim's own diagnostics
//! ```
//!
//! Every record is written to a temporary file and renamed, so a reader sees all of it or none.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// File names inside a replica directory.
pub(crate) const PLAN: &str = "plan.json";
pub(crate) const CLAIM: &str = "start.claim";
pub(crate) const STARTED: &str = "started.json";
pub(crate) const EXIT: &str = "exit.json";
pub(crate) const LOCK: &str = "shim.lock";
pub(crate) const LOG: &str = "output.log";
pub(crate) const SHIM_ERR: &str = "shim.err";

/// The running process, as the shim recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Started {
    /// The workload's main process; also its process group id.
    pub(crate) pid: u32,
    /// Its start time in clock ticks since boot (`/proc/<pid>/stat` field 22): a pid only
    /// names this process while the start time matches.
    pub(crate) start_ticks: u64,
    /// The shim supervising it.
    pub(crate) shim_pid: u32,
    /// When it started (ms since the Unix epoch).
    pub(crate) started_at_ms: u64,
}

/// How the process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ExitRecord {
    /// Exit code; 128 + the signal number when a signal ended it.
    pub(crate) code: i32,
    /// When (ms since the Unix epoch).
    pub(crate) finished_at_ms: u64,
    /// The shim vanished without recording the exit (the code is then [`LOST_CODE`]).
    #[serde(default)]
    pub(crate) lost: bool,
    /// The OOM killer ended a process of the replica's cgroup.
    #[serde(default)]
    pub(crate) oom_killed: bool,
}

/// Exit code reported when the shim died without recording the exit.
pub(crate) const LOST_CODE: i32 = 255;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// Writes `value` as JSON to `dir/name` atomically, readable by the owner only.
pub(crate) fn write_json<T: Serialize>(dir: &Path, name: &str, value: &T) -> std::io::Result<()> {
    let bytes = serde_json::to_vec_pretty(value).map_err(std::io::Error::other)?;
    let tmp = dir.join(format!(".{name}.tmp"));
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))
}

/// Reads `dir/name` as JSON; `None` when the file does not exist.
pub(crate) fn read_json<T: DeserializeOwned>(dir: &Path, name: &str) -> std::io::Result<Option<T>> {
    match std::fs::read(dir.join(name)) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// One process's line of `/proc/<pid>/stat`, the fields after the command name.
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may itself hold spaces and parentheses.
    let rest = &text[text.rfind(')')? + 1..];
    Some(rest.split_whitespace().map(str::to_owned).collect())
}

/// What `/proc/<pid>/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// State letter (`R`, `S`, `Z`...).
    pub(crate) state: char,
    /// Process group.
    pub(crate) pgrp: u32,
    /// User + system CPU time in clock ticks.
    pub(crate) cpu_ticks: u64,
    /// Start time in clock ticks since boot.
    pub(crate) start_ticks: u64,
    /// Resident set in pages.
    pub(crate) rss_pages: u64,
}

/// Reads `/proc/<pid>/stat`; `None` when there is no such process.
pub(crate) fn proc_stat(pid: u32) -> Option<ProcStat> {
    let f = stat_fields(pid)?;
    // Fields after the name start at field 3 (state): index = field number - 3.
    let num = |field: usize| f.get(field - 3).and_then(|v| v.parse::<u64>().ok());
    Some(ProcStat {
        state: f.first()?.chars().next()?,
        pgrp: u32::try_from(num(5)?).ok()?,
        cpu_ticks: num(14)?.saturating_add(num(15)?),
        start_ticks: num(22)?,
        rss_pages: num(24)?,
    })
}

/// Whether `pid` is still the process that started at `start_ticks` and has not exited
/// (a zombie has exited).
pub(crate) fn same_live_process(pid: u32, start_ticks: u64) -> bool {
    proc_stat(pid).is_some_and(|s| s.start_ticks == start_ticks && s.state != 'Z')
}

/// Every pid in `/proc`.
pub(crate) fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect()
}

/// The replica directory of container `id` under `state_dir`.
pub(crate) fn replica_dir(state_dir: &Path, id: &str) -> PathBuf {
    state_dir.join("replicas").join(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_stat() {
        let me = std::process::id();
        let s = proc_stat(me).expect("own stat");
        assert!(s.start_ticks > 0);
        assert!(same_live_process(me, s.start_ticks));
        assert!(!same_live_process(me, s.start_ticks + 1));
        assert!(proc_stat(u32::MAX).is_none());
    }

    #[test]
    fn json_records_round_trip_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tmp");
        let rec = ExitRecord {
            code: 3,
            finished_at_ms: 9,
            lost: false,
            oom_killed: true,
        };
        write_json(dir.path(), EXIT, &rec).expect("write");
        let back: Option<ExitRecord> = read_json(dir.path(), EXIT).expect("read");
        assert_eq!(back, Some(rec));
        let mode = std::fs::metadata(dir.path().join(EXIT))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let none: Option<ExitRecord> = read_json(dir.path(), "missing").expect("read");
        // Records written before the OOM flag existed still read.
        let old: ExitRecord =
            serde_json::from_str(r#"{"code":1,"finished_at_ms":2}"#).expect("old record");
        assert!(!old.oom_killed && !old.lost);
        assert_eq!(none, None);
        std::fs::write(dir.path().join("bad"), b"{").expect("write");
        assert!(read_json::<ExitRecord>(dir.path(), "bad").is_err());
    }
}
