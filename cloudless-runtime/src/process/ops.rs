//! The operations of [`ProcessRuntime`](super::ProcessRuntime). File work runs on the blocking
//! pool; the state of a replica is always read back from its directory, so another instance
//! (a restarted agent) sees the same thing.

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use cloudless_core::runtime::{
    ContainerId, ContainerSpec, ContainerState, ContainerStats, ContainerStatus, ExecOutput,
    ImageInfo, LogChunk, RuntimeError, Support,
};
use futures::stream::BoxStream;
use rustix::process::Signal;
use sha2::{Digest, Sha256};

use super::cgroup::{self, CgroupError, CgroupMode};
use super::plan::{self, Host, Plan};
use super::record::{self, ExitRecord, Started};
use super::signal::{kill_group, signal_group};
use super::{Inner, ProcessInfo};
use crate::containerd::valid_id;

/// How long `stop` waits for the exit after SIGKILL before giving up.
const KILL_PATIENCE: Duration = Duration::from_secs(10);

fn io(what: &str, e: std::io::Error) -> RuntimeError {
    RuntimeError::Other(format!("{what}: {e}").into())
}

/// Runs file work on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RuntimeError> + Send + 'static,
) -> Result<T, RuntimeError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RuntimeError::Other(Box::new(e)))?
}

fn set_mode(path: &Path, mode: u32) -> Result<(), RuntimeError> {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io(&path.display().to_string(), e))
}

/// One replica as its directory describes it.
struct Replica {
    dir: PathBuf,
    plan: Plan,
    started: Option<Started>,
    exit: Option<ExitRecord>,
}

impl Replica {
    fn state(&self) -> ContainerState {
        match (&self.started, &self.exit) {
            (_, Some(e)) => ContainerState::Exited { code: e.code },
            (Some(_), None) => ContainerState::Running,
            (None, None) => ContainerState::Created,
        }
    }
}

fn load(inner: &Inner, id: &ContainerId) -> Result<Replica, RuntimeError> {
    let not_found = || RuntimeError::NotFound(id.clone());
    if !valid_id(id.as_str()) {
        return Err(not_found());
    }
    let dir = inner.replica_dir(id.as_str());
    fn rd<T: serde::de::DeserializeOwned>(
        dir: &Path,
        id: &ContainerId,
        name: &str,
    ) -> Result<Option<T>, RuntimeError> {
        record::read_json(dir, name).map_err(|e| io(&format!("{id}/{name}"), e))
    }
    let plan: Plan = rd(&dir, id, record::PLAN)?.ok_or_else(not_found)?;
    let started = rd(&dir, id, record::STARTED)?;
    let exit = rd(&dir, id, record::EXIT)?;
    Ok(Replica {
        dir,
        plan,
        started,
        exit,
    })
}

fn status_of(inner: &Inner, id: &ContainerId, r: &Replica) -> ContainerStatus {
    ContainerStatus {
        id: id.clone(),
        state: r.state(),
        address: inner.cfg.address.clone(),
        started_at_ms: r.started.map(|s| s.started_at_ms),
        finished_at_ms: r.exit.map(|e| e.finished_at_ms),
        oom_killed: r.exit.is_some_and(|e| e.oom_killed),
    }
}

/// Makes the state directory: traversable (the work dirs below belong to the processes' users),
/// the replica records root-only.
pub(crate) async fn prepare_dirs(inner: &Arc<Inner>) -> Result<(), RuntimeError> {
    let sd = inner.cfg.state_dir.clone();
    blocking(move || {
        for (dir, mode) in [
            (sd.clone(), 0o711),
            (sd.join("replicas"), 0o700),
            (sd.join("work"), 0o711),
        ] {
            std::fs::create_dir_all(&dir).map_err(|e| io(&dir.display().to_string(), e))?;
            set_mode(&dir, mode)?;
        }
        Ok(())
    })
    .await
}

/// Takes over the replicas in the state directory: running ones get a waiter, exited ones
/// have their exit known (it produces no event: it happened before anyone subscribed).
pub(crate) async fn adopt(inner: &Arc<Inner>) -> Result<(), RuntimeError> {
    let i = Arc::clone(inner);
    let running = blocking(move || {
        let mut running = Vec::new();
        for id in replica_ids(&i)? {
            match load(&i, &id) {
                Ok(Replica { exit: Some(e), .. }) => {
                    i.watch.mark_exited(id.as_str(), (e.code, e.finished_at_ms))
                }
                Ok(Replica {
                    started: Some(_), ..
                }) => running.push(id),
                Ok(_) => {}
                Err(e) => tracing::warn!(%id, "replica not adopted: {e}"),
            }
        }
        Ok(running)
    })
    .await?;
    for id in running {
        tracing::info!(%id, "adopted a running process");
        ensure_waiter(inner, id.as_str());
    }
    Ok(())
}

fn replica_ids(inner: &Inner) -> Result<Vec<ContainerId>, RuntimeError> {
    let dir = inner.cfg.state_dir.join("replicas");
    let entries = std::fs::read_dir(&dir).map_err(|e| io(&dir.display().to_string(), e))?;
    let mut ids: Vec<ContainerId> = entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| valid_id(n))
        .map(ContainerId)
        .collect();
    ids.sort();
    Ok(ids)
}

/// Starts the waiter of `id` unless one runs or its exit is known: a thread blocks on a shared
/// lock of `shim.lock`, which the shim holds exclusively until it has recorded the exit.
pub(crate) fn ensure_waiter(inner: &Arc<Inner>, id: &str) {
    if !inner.watch.claim_waiter(id) {
        return;
    }
    let lock_path = inner.replica_dir(id).join(record::LOCK);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let spawned = std::thread::Builder::new()
        .name("cld-process-wait".into())
        .spawn(move || {
            if let Ok(f) = std::fs::File::open(&lock_path) {
                let _ = f.lock_shared();
            }
            let _ = tx.send(());
        });
    if let Err(e) = spawned {
        tracing::error!(id, "no waiter thread: {e}");
        inner.watch.release_waiter(id);
        return;
    }
    let (i, id) = (Arc::clone(inner), id.to_owned());
    tokio::spawn(async move {
        let _ = rx.await;
        let _ = tokio::task::spawn_blocking(move || finish(&i, &id)).await;
    });
}

/// The shim of `id` is gone: publish the exit it recorded, or record a lost one.
fn finish(inner: &Inner, id: &str) {
    let dir = inner.replica_dir(id);
    let exit = match record::read_json::<ExitRecord>(&dir, record::EXIT) {
        Ok(Some(e)) => e,
        _ if !dir.join(record::PLAN).exists() => {
            // Removed meanwhile.
            inner.watch.forget(id);
            return;
        }
        _ => {
            // The shim died without recording the exit; what it supervised must not run on
            // unsupervised (nobody could report its exit).
            tracing::warn!(id, "the process shim vanished without recording the exit");
            if let Ok(Some(s)) = record::read_json::<Started>(&dir, record::STARTED) {
                signal_group(&s, Signal::KILL);
            }
            if let Ok(Some(p)) = record::read_json::<Plan>(&dir, record::PLAN)
                && let Some(cg) = &p.cgroup
            {
                cg.kill_all();
            }
            let e = ExitRecord {
                code: record::LOST_CODE,
                finished_at_ms: record::now_ms(),
                lost: true,
                oom_killed: false,
            };
            if let Err(err) = record::write_json(&dir, record::EXIT, &e) {
                tracing::error!(id, "exit.json: {err}");
            }
            e
        }
    };
    inner
        .watch
        .record_exit(id, (exit.code, exit.finished_at_ms));
}

/// Whether `path` is a file someone may execute.
fn executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Checks that the program exists (absolute) or is found in the plan's `PATH` (bare name).
fn check_program(plan: &Plan) -> Result<(), RuntimeError> {
    let field = if plan.spec.command.is_empty() {
        "image"
    } else {
        "command[0]"
    };
    let Some(program) = plan.argv.first() else {
        return Err(RuntimeError::InvalidSpec("command: empty".into()));
    };
    if program.starts_with('/') {
        if executable(Path::new(program)) {
            return Ok(());
        }
        return Err(RuntimeError::InvalidSpec(format!(
            "{field}: {program} is not an executable file on this host"
        )));
    }
    if program.contains('/') {
        // Relative to the working directory, which may not exist before start.
        return Ok(());
    }
    let path = plan
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(plan::DEFAULT_PATH);
    if path
        .split(':')
        .any(|d| !d.is_empty() && executable(&Path::new(d).join(program)))
    {
        return Ok(());
    }
    Err(RuntimeError::InvalidSpec(format!(
        "{field}: {program:?} is not found in PATH {path:?}"
    )))
}

/// Makes the replica's ephemeral directory (and its volumes) owned by the process's user.
fn make_work_dir(plan: &Plan) -> Result<(), RuntimeError> {
    let mut dirs = vec![plan.work_dir.clone()];
    if !plan.spec.volumes.is_empty() {
        dirs.push(plan.work_dir.join("volumes"));
        dirs.extend(
            plan.spec
                .volumes
                .iter()
                .map(|v| plan.work_dir.join("volumes").join(&v.name)),
        );
    }
    for dir in dirs {
        std::fs::create_dir_all(&dir).map_err(|e| io(&dir.display().to_string(), e))?;
        set_mode(&dir, 0o700)?;
        if plan.uid.is_some() || plan.gid.is_some() {
            std::os::unix::fs::chown(&dir, plan.uid, plan.gid)
                .map_err(|e| io(&format!("chown {}", dir.display()), e))?;
        }
    }
    Ok(())
}

fn create_sync(inner: &Inner, spec: &ContainerSpec) -> Result<(), RuntimeError> {
    if !valid_id(spec.id.as_str()) {
        return Err(RuntimeError::InvalidSpec(format!(
            "id: {:?} is not a valid container name (ASCII letters and digits separated by \
             single `.`, `_` or `-`, at most 64 characters)",
            spec.id.as_str()
        )));
    }
    let work_root = inner.work_root();
    let host = Host {
        work_root: &work_root,
        euid: inner.euid,
        no_new_privs: inner.cfg.no_new_privileges,
        log_max_bytes: inner.cfg.log_max_bytes,
    };
    let mut plan = plan::build(&host, spec)?;
    check_program(&plan)?;
    let dir = inner.replica_dir(spec.id.as_str());
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(RuntimeError::AlreadyExists(spec.id.clone()));
        }
        Err(e) => return Err(io(&dir.display().to_string(), e)),
    }
    let made = (|| {
        set_mode(&dir, 0o700)?;
        match cgroup::create(
            &inner.cgroup,
            &inner.cfg.cgroup_parent,
            spec.id.as_str(),
            &plan.limits,
        ) {
            Ok(Some(set)) => plan.cgroup = Some(set),
            Ok(None) => {
                plan.limits_note = Some(match inner.cgroup {
                    CgroupMode::Off => "cgroups are off in the process runtime's config".into(),
                    _ => "no cgroup hierarchy on this host".into(),
                });
            }
            Err(CgroupError::NotWritable(why)) => plan.limits_note = Some(why),
            Err(e @ CgroupError::Refused { .. }) => {
                return Err(RuntimeError::InvalidSpec(e.to_string()));
            }
        }
        if plan.limits.any()
            && let Some(note) = &plan.limits_note
        {
            tracing::warn!(id = %spec.id, "running without cgroup limits: {note}");
        }
        make_work_dir(&plan)?;
        record::write_json(&dir, record::PLAN, &plan).map_err(|e| io("plan.json", e))
    })();
    if made.is_err() {
        if let Some(cg) = &plan.cgroup {
            cg.remove();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
    made
}

/// Creates replica `spec.id` (not started).
pub(crate) async fn create(inner: &Arc<Inner>, spec: &ContainerSpec) -> Result<(), RuntimeError> {
    if let Support::No(reason) = plan::support(spec) {
        return Err(RuntimeError::Unsupported(reason));
    }
    let (i, spec) = (Arc::clone(inner), spec.clone());
    blocking(move || create_sync(&i, &spec)).await
}

/// A start claim older than this without `started.json` belongs to a start that died (the
/// shim reports within seconds).
const STALE_CLAIM: Duration = Duration::from_secs(30);

fn stale_claim(path: &Path) -> bool {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.elapsed().ok())
        .is_some_and(|age| age > STALE_CLAIM)
}

/// Starts replica `id` through the shim and waits for its report.
pub(crate) async fn start(inner: &Arc<Inner>, id: &ContainerId) -> Result<(), RuntimeError> {
    let (i, cid) = (Arc::clone(inner), id.clone());
    let dir = blocking(move || {
        let r = load(&i, &cid)?;
        if r.state() != ContainerState::Created {
            return Err(RuntimeError::InvalidState(format!(
                "container {cid} is {:?}, not Created",
                r.state()
            )));
        }
        let claim_path = r.dir.join(record::CLAIM);
        let claim = || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&claim_path)
        };
        let mut claimed = claim();
        if matches!(&claimed, Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists)
            && stale_claim(&claim_path)
        {
            // An agent died between claiming and the shim's start: nothing runs.
            let _ = std::fs::remove_file(&claim_path);
            claimed = claim();
        }
        match claimed {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::InvalidState(format!(
                    "container {cid} is already starting"
                )));
            }
            Err(e) => return Err(io("start.claim", e)),
        }
        // A removed sibling attempt may have taken the replica's directory with it.
        make_work_dir(&r.plan)?;
        Ok(r.dir)
    })
    .await?;
    let unclaim = |dir: &Path| {
        let _ = std::fs::remove_file(dir.join(record::CLAIM));
    };
    let out = tokio::process::Command::new(&inner.cfg.shim)
        .arg("launch")
        .arg(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await;
    let out = match out {
        Ok(out) => out,
        Err(e) => {
            unclaim(&dir);
            return Err(RuntimeError::Unavailable(format!(
                "process shim {}: {e}",
                inner.cfg.shim.display()
            )));
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.starts_with("started ") {
        unclaim(&dir);
        return Err(RuntimeError::Other(
            format!(
                "start {id}: {} {}",
                stdout.trim(),
                String::from_utf8_lossy(&out.stderr).trim()
            )
            .into(),
        ));
    }
    ensure_waiter(inner, id.as_str());
    Ok(())
}

/// Waits up to `limit` for `id`'s exit to be published; false on timeout.
async fn wait_exit(inner: &Inner, id: &str, limit: Duration) -> bool {
    let mut rx = inner.watch.exit_watch(id);
    // A closed watch means the replica was removed meanwhile: nothing left to wait for.
    tokio::time::timeout(limit, rx.wait_for(Option::is_some))
        .await
        .is_ok()
}

/// Stops replica `id`: SIGTERM to its process group, `grace_ms`, SIGKILL to the group and the
/// cgroup; returns once the exit is published.
pub(crate) async fn stop(
    inner: &Arc<Inner>,
    id: &ContainerId,
    grace_ms: u64,
) -> Result<(), RuntimeError> {
    let (i, cid) = (Arc::clone(inner), id.clone());
    let r = blocking(move || load(&i, &cid)).await?;
    let Some(started) = r.started else {
        return Ok(());
    };
    ensure_waiter(inner, id.as_str());
    if r.exit.is_none() {
        let (s, sent) = (
            started,
            blocking(move || Ok(signal_group(&started, Signal::TERM))).await?,
        );
        tracing::debug!(%id, pid = s.pid, sent, "SIGTERM to the process group");
        if !wait_exit(inner, id.as_str(), Duration::from_millis(grace_ms)).await {
            let cg = r.plan.cgroup.clone();
            blocking(move || {
                signal_group(&s, Signal::KILL);
                if let Some(cg) = cg {
                    cg.kill_all();
                }
                Ok(())
            })
            .await?;
        }
    }
    if wait_exit(inner, id.as_str(), KILL_PATIENCE).await {
        Ok(())
    } else {
        Err(RuntimeError::Other(
            format!("container {id} did not exit within {KILL_PATIENCE:?} of SIGKILL").into(),
        ))
    }
}

/// Removes replica `id`, stopping it first; its ephemeral directory goes with the replica's
/// last attempt.
pub(crate) async fn remove(inner: &Arc<Inner>, id: &ContainerId) -> Result<(), RuntimeError> {
    let (i, cid) = (Arc::clone(inner), id.clone());
    let r = blocking(move || load(&i, &cid)).await?;
    if r.started.is_some() {
        stop(inner, id, inner.cfg.remove_grace_ms).await?;
    }
    let i = Arc::clone(inner);
    blocking(move || {
        if let Some(cg) = &r.plan.cgroup {
            cg.remove();
        }
        std::fs::remove_dir_all(&r.dir).map_err(|e| io(&r.dir.display().to_string(), e))?;
        let shared = replica_ids(&i)?
            .iter()
            .any(|other| load(&i, other).is_ok_and(|o| o.plan.work_dir == r.plan.work_dir));
        if !shared
            && let Err(e) = std::fs::remove_dir_all(&r.plan.work_dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(dir = %r.plan.work_dir.display(), "work dir not removed: {e}");
        }
        Ok(())
    })
    .await?;
    inner.watch.forget(id.as_str());
    Ok(())
}

/// Status of replica `id`.
pub(crate) async fn status(
    inner: &Arc<Inner>,
    id: &ContainerId,
) -> Result<ContainerStatus, RuntimeError> {
    let (i, cid) = (Arc::clone(inner), id.clone());
    blocking(move || load(&i, &cid).map(|r| status_of(&i, &cid, &r))).await
}

/// Every replica in the state directory, by id.
pub(crate) async fn list(inner: &Arc<Inner>) -> Result<Vec<ContainerStatus>, RuntimeError> {
    let i = Arc::clone(inner);
    blocking(move || {
        Ok(replica_ids(&i)?
            .into_iter()
            .filter_map(|id| load(&i, &id).ok().map(|r| status_of(&i, &id, &r)))
            .collect())
    })
    .await
}

/// The log of `id` from `from`; with `follow`, until it exits.
pub(crate) async fn logs(
    inner: &Arc<Inner>,
    id: &ContainerId,
    from: u64,
    follow: bool,
) -> Result<BoxStream<'static, Result<LogChunk, RuntimeError>>, RuntimeError> {
    let (i, cid) = (Arc::clone(inner), id.clone());
    let r = blocking(move || load(&i, &cid)).await?;
    let exit = inner.watch.exit_watch(id.as_str());
    let state = r.state();
    if follow && state == ContainerState::Running {
        ensure_waiter(inner, id.as_str());
    }
    let following = follow && !matches!(state, ContainerState::Exited { .. });
    Ok(crate::log_stream::stream(
        r.dir.join(record::LOG),
        from,
        following,
        exit,
    ))
}

fn exit_code(status: std::process::ExitStatus) -> i32 {
    status
        .code()
        .unwrap_or_else(|| 128 + status.signal().unwrap_or(0))
}

/// Runs `command` with the replica's environment, working directory, user and cgroup.
pub(crate) async fn exec(
    inner: &Arc<Inner>,
    id: &ContainerId,
    command: &[String],
    timeout_ms: u64,
) -> Result<ExecOutput, RuntimeError> {
    let (i, cid) = (Arc::clone(inner), id.clone());
    let r = blocking(move || load(&i, &cid)).await?;
    if r.state() != ContainerState::Running {
        return Err(RuntimeError::InvalidState(format!(
            "container {id} is {:?}, not Running",
            r.state()
        )));
    }
    if command.is_empty() {
        return Err(RuntimeError::InvalidSpec("command: empty".into()));
    }
    if let Some(i) = command.iter().position(|c| c.contains('\0')) {
        return Err(RuntimeError::InvalidSpec(format!(
            "command[{i}]: contains a NUL byte"
        )));
    }
    let child = tokio::process::Command::new(&inner.cfg.shim)
        .arg("run")
        .arg(&r.dir)
        .arg("--exec")
        .args(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            RuntimeError::Unavailable(format!("process shim {}: {e}", inner.cfg.shim.display()))
        })?;
    let pid = child.id();
    match tokio::time::timeout(Duration::from_millis(timeout_ms), child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(ExecOutput {
            exit_code: exit_code(out.status),
            stdout: Bytes::from(out.stdout),
            stderr: Bytes::from(out.stderr),
        }),
        Ok(Err(e)) => Err(io("exec", e)),
        Err(_) => {
            if let Some(pid) = pid {
                kill_group(pid, Signal::KILL);
            }
            Err(RuntimeError::Timeout)
        }
    }
}

/// CPU, memory and process count of a running replica: from its cgroup, else from `/proc`
/// (the members of its process group).
pub(crate) async fn stats(
    inner: &Arc<Inner>,
    id: &ContainerId,
) -> Result<ContainerStats, RuntimeError> {
    let (i, cid) = (Arc::clone(inner), id.clone());
    blocking(move || {
        let r = load(&i, &cid)?;
        let (Some(started), None) = (r.started, r.exit) else {
            return Err(RuntimeError::InvalidState(format!(
                "container {cid} is {:?}, not Running",
                r.state()
            )));
        };
        let (cpu, mem, pids) = r
            .plan
            .cgroup
            .as_ref()
            .map(|c| c.stats())
            .unwrap_or_default();
        if let (Some(cpu_usage_ns), Some(memory_bytes), Some(pids)) = (cpu, mem, pids) {
            return Ok(ContainerStats {
                cpu_usage_ns,
                memory_bytes,
                pids,
            });
        }
        let tick_ns = 1_000_000_000 / rustix::param::clock_ticks_per_second().max(1);
        let page = rustix::param::page_size() as u64;
        let (mut ticks, mut pages, mut count) = (0u64, 0u64, 0u64);
        for p in record::all_pids() {
            if let Some(s) = record::proc_stat(p)
                && s.pgrp == started.pid
                && s.state != 'Z'
            {
                ticks = ticks.saturating_add(s.cpu_ticks);
                pages = pages.saturating_add(s.rss_pages);
                count += 1;
            }
        }
        Ok(ContainerStats {
            cpu_usage_ns: cpu.unwrap_or(ticks.saturating_mul(tick_ns)),
            memory_bytes: mem.unwrap_or(pages.saturating_mul(page)),
            pids: pids.unwrap_or(count),
        })
    })
    .await
}

/// Pids, cgroup and directories of `id`.
pub(crate) async fn inspect(
    inner: &Arc<Inner>,
    id: &ContainerId,
) -> Result<ProcessInfo, RuntimeError> {
    let (i, cid) = (Arc::clone(inner), id.clone());
    blocking(move || {
        let r = load(&i, &cid)?;
        Ok(ProcessInfo {
            pid: r.started.map(|s| s.pid),
            shim_pid: r.started.map(|s| s.shim_pid),
            cgroup_dirs: r
                .plan
                .cgroup
                .as_ref()
                .map(|c| c.dirs.values().cloned().collect())
                .unwrap_or_default(),
            limits_note: r.plan.limits_note.clone(),
            cwd: r.plan.cwd.clone(),
            work_dir: r.plan.work_dir.clone(),
            log_path: r.dir.join(record::LOG),
            lost: r.exit.is_some_and(|e| e.lost),
        })
    })
    .await
}

/// "Pulls" a `process://` image: checks that its program is there; the digest is the program's.
pub(crate) async fn pull_image(image: &str) -> Result<ImageInfo, RuntimeError> {
    let program = plan::image_program(image).map_err(RuntimeError::Unsupported)?;
    let image = image.to_owned();
    blocking(move || {
        let (digest, size) = match &program {
            None => (Sha256::digest(b""), 0),
            Some(p) => {
                if !executable(p) {
                    return Err(RuntimeError::ImageNotFound(image));
                }
                let bytes =
                    std::fs::read(p).map_err(|_| RuntimeError::ImageNotFound(image.clone()))?;
                (Sha256::digest(&bytes), bytes.len() as u64)
            }
        };
        Ok(ImageInfo {
            reference: image,
            digest: format!("sha256:{}", hex::encode(digest)),
            size,
        })
    })
    .await
}
