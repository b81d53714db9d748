//! `ProcessRuntime` beyond the conformance suite: cgroup limits (real v1/v2 on this host and a
//! fake v2 hierarchy), running without limits, stop with grace on the whole process group,
//! adoption by a second instance, logs from an offset and the log cap, exec, the pid reuse
//! guard, user switch and no-new-privileges, and errors that name the bad field.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cloudless_core::quantity::{Cpu, Memory};
use cloudless_core::runtime::{
    ContainerId, ContainerSpec, ContainerState, Runtime, RuntimeError, RuntimeEvent,
};
use cloudless_core::testing::runtime::basic_spec;
use cloudless_core::workload::EnvVar;
use cloudless_runtime::process::CgroupMode;
use cloudless_runtime::{ProcessConfig, ProcessRuntime};
use futures::StreamExt;

const SHIM: &str = env!("CARGO_BIN_EXE_cloudless-process-shim");

fn config(state: &Path, cgroup: CgroupMode, tag: &str) -> ProcessConfig {
    let mut cfg = ProcessConfig::new(state, SHIM);
    cfg.cgroup = cgroup;
    cfg.cgroup_parent = format!("cloudless-test-{tag}-{}", std::process::id());
    cfg
}

/// Kills what a test's replicas left running (they outlive the runtime by design) and removes
/// the test's parent cgroups, even when the test fails.
struct Reaper {
    state: PathBuf,
    cgroup_parents: Vec<PathBuf>,
}

impl Reaper {
    fn new(state: &Path) -> Self {
        Self {
            state: state.to_owned(),
            cgroup_parents: Vec::new(),
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        let Ok(replicas) = std::fs::read_dir(self.state.join("replicas")) else {
            return;
        };
        for r in replicas.flatten() {
            let exited = r.path().join("exit.json").exists();
            let started = std::fs::read_to_string(r.path().join("started.json")).ok();
            let pid = started.as_deref().and_then(|s| {
                let v: serde_json::Value = serde_json::from_str(s).ok()?;
                v.get("pid")?.as_u64()
            });
            if let (false, Some(pid)) = (exited, pid) {
                let _ = std::process::Command::new("kill")
                    .args(["-KILL", "--", &format!("-{pid}")])
                    .status();
            }
        }
        std::thread::sleep(Duration::from_millis(100));
        for parent in &self.cgroup_parents {
            if let Ok(children) = std::fs::read_dir(parent) {
                for c in children.flatten().filter(|c| c.path().is_dir()) {
                    let _ = std::fs::remove_dir(c.path());
                }
            }
            let _ = std::fs::remove_dir(parent);
        }
    }
}

fn sh(id: &str, script: &str) -> ContainerSpec {
    let mut spec = basic_spec(ContainerId(id.into()), "process:///bin/sh");
    spec.command = vec!["/bin/sh".into(), "-c".into(), script.into()];
    spec
}

fn cid(id: &str) -> ContainerId {
    ContainerId(id.into())
}

async fn run(rt: &ProcessRuntime, spec: &ContainerSpec) {
    rt.create(spec).await.expect("create");
    rt.start(&spec.id).await.expect("start");
}

async fn log_text(rt: &ProcessRuntime, id: &ContainerId, from: u64) -> (String, Vec<u64>) {
    let mut stream = rt.logs(id, from, false).await.expect("logs");
    let (mut text, mut offsets) = (Vec::new(), Vec::new());
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.expect("chunk");
        offsets.push(chunk.offset);
        text.extend_from_slice(&chunk.data);
    }
    (String::from_utf8_lossy(&text).into_owned(), offsets)
}

/// Waits until the log of `id` contains `needle`.
async fn wait_log(rt: &ProcessRuntime, id: &ContainerId, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (text, _) = log_text(rt, id, 0).await;
        if text.contains(needle) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} never logged: {text:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// (state letter, start ticks) of a process, from `/proc/<pid>/stat`.
fn proc_stat(pid: u32) -> Option<(char, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some((rest.first()?.chars().next()?, rest.get(19)?.parse().ok()?))
}

fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(state, _)| state != 'Z')
}

async fn next_exit(events: &mut futures::stream::BoxStream<'static, RuntimeEvent>) -> RuntimeEvent {
    tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("an exit event in time")
        .expect("stream open")
}

fn limited(id: &str, script: &str) -> ContainerSpec {
    let mut spec = sh(id, script);
    spec.limits.cpu = Some(Cpu::parse("250m").expect("cpu"));
    spec.limits.memory = Some(Memory::parse("32Mi").expect("memory"));
    spec.limits.pids = Some(50);
    spec
}

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_in_the_hosts_cgroups() {
    let state = tempfile::tempdir().expect("tmp");
    let mut reaper = Reaper::new(state.path());
    let rt = ProcessRuntime::open(config(state.path(), CgroupMode::Auto, "limits"))
        .await
        .expect("open");
    let parent = &rt.config().cgroup_parent;
    reaper.cgroup_parents = match rt.cgroup_mode() {
        CgroupMode::V1 { root } => ["cpu", "cpuacct", "memory", "pids"]
            .iter()
            .map(|c| root.join(c).join(parent))
            .collect(),
        CgroupMode::V2 { root } => vec![root.join(parent)],
        _ => Vec::new(),
    };
    let spec = limited(
        "limited",
        "trap 'exit 0' TERM; sleep 100000 & echo up; wait",
    );
    run(&rt, &spec).await;
    wait_log(&rt, &spec.id, "up").await;
    let info = rt.inspect(&spec.id).await.expect("inspect");
    let pid = info.pid.expect("pid");
    let own = read(PathBuf::from(format!("/proc/{pid}/cgroup")));
    match rt.cgroup_mode().clone() {
        CgroupMode::V1 { root } => {
            let dir = |c: &str| {
                root.join(c)
                    .join(&rt.config().cgroup_parent)
                    .join("limited")
            };
            assert_eq!(read(dir("cpu").join("cpu.cfs_quota_us")), "25000");
            assert_eq!(read(dir("cpu").join("cpu.cfs_period_us")), "100000");
            assert_eq!(
                read(dir("memory").join("memory.limit_in_bytes")),
                (32u64 << 20).to_string()
            );
            assert_eq!(read(dir("pids").join("pids.max")), "50");
            let want = format!("memory:/{}/limited", rt.config().cgroup_parent);
            let procs = read(dir("memory").join("cgroup.procs"));
            let cmd = read(PathBuf::from(format!("/proc/{pid}/cmdline")));
            assert!(
                own.contains(&want),
                "{own} procs={procs:?} pid={pid} cmd={cmd:?}"
            );
        }
        CgroupMode::V2 { root } => {
            let dir = root.join(&rt.config().cgroup_parent).join("limited");
            assert_eq!(read(dir.join("cpu.max")), "25000 100000");
            assert_eq!(read(dir.join("memory.max")), (32u64 << 20).to_string());
            assert_eq!(read(dir.join("pids.max")), "50");
            assert!(own.contains(&rt.config().cgroup_parent), "{own}");
        }
        other => panic!("this host has writable cgroups, got {other:?}"),
    }
    assert_eq!(info.limits_note, None);
    let stats = rt.stats(&spec.id).await.expect("stats");
    assert!(stats.pids >= 2, "sh and sleep: {stats:?}");
    assert!(stats.memory_bytes > 0, "{stats:?}");
    // Forks beyond pids.max fail inside the replica (exec'd commands share its cgroup).
    let out = rt
        .exec(
            &spec.id,
            &[
                "/bin/sh".into(),
                "-c".into(),
                "i=0; while [ $i -lt 60 ]; do sleep 5 >/dev/null 2>&1 & i=$((i+1)); done; echo end"
                    .into(),
            ],
            10_000,
        )
        .await
        .expect("exec");
    let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert!(err.contains("fork"), "pids.max refused forks: {err:?}");
    rt.remove(&spec.id).await.expect("remove");
    for dir in &info.cgroup_dirs {
        assert!(!dir.exists(), "{} removed", dir.display());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_limit_kills_and_the_status_says_oom() {
    let state = tempfile::tempdir().expect("tmp");
    let mut reaper = Reaper::new(state.path());
    let rt = ProcessRuntime::open(config(state.path(), CgroupMode::Auto, "oom"))
        .await
        .expect("open");
    let parent = &rt.config().cgroup_parent;
    reaper.cgroup_parents = match rt.cgroup_mode() {
        CgroupMode::V1 { root } => ["cpu", "cpuacct", "memory", "pids"]
            .iter()
            .map(|c| root.join(c).join(parent))
            .collect(),
        CgroupMode::V2 { root } => vec![root.join(parent)],
        other => panic!("this host has writable cgroups, got {other:?}"),
    };
    let mut events = rt.events().await.expect("events");
    // A 64 MiB buffer under a 32 MiB limit (no swap here).
    let hog = limited("hog", "exec dd if=/dev/zero of=/dev/null bs=64M count=1");
    run(&rt, &hog).await;
    next_exit(&mut events).await;
    let st = rt.status(&hog.id).await.expect("status");
    assert_eq!(st.state, ContainerState::Exited { code: 137 });
    assert!(st.oom_killed, "{st:?}");
    // A plain failure is not an OOM kill.
    let fails = limited("fails", "exit 3");
    run(&rt, &fails).await;
    next_exit(&mut events).await;
    let st = rt.status(&fails.id).await.expect("status");
    assert_eq!(st.state, ContainerState::Exited { code: 3 });
    assert!(!st.oom_killed, "{st:?}");
    rt.remove(&hog.id).await.expect("remove");
    rt.remove(&fails.id).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_in_a_fake_v2_hierarchy() {
    let state = tempfile::tempdir().expect("tmp");
    let _reaper = Reaper::new(state.path());
    let fake = tempfile::tempdir().expect("fake cgroupfs");
    let mode = CgroupMode::V2 {
        root: fake.path().to_owned(),
    };
    let rt = ProcessRuntime::open(config(state.path(), mode, "v2"))
        .await
        .expect("open");
    let spec = limited("v2", "echo $$; exit 0");
    let mut events = rt.events().await.expect("events");
    run(&rt, &spec).await;
    next_exit(&mut events).await;
    let dir = fake.path().join(&rt.config().cgroup_parent).join("v2");
    assert_eq!(read(dir.join("cpu.max")), "25000 100000");
    assert_eq!(read(dir.join("memory.max")), (32u64 << 20).to_string());
    assert_eq!(read(dir.join("pids.max")), "50");
    // The process joined before it became the workload: its pid is in cgroup.procs.
    let (log, _) = log_text(&rt, &spec.id, 0).await;
    assert_eq!(read(dir.join("cgroup.procs")), log.trim());
    assert_eq!(
        read(fake.path().join("cgroup.subtree_control")),
        "+pids",
        "controllers enabled at the root (a plain file keeps the last write)"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_writable_cgroups_runs_without_limits_and_says_so() {
    let state = tempfile::tempdir().expect("tmp");
    let _reaper = Reaper::new(state.path());
    let mode = CgroupMode::V2 {
        root: PathBuf::from("/proc/no-cgroups-here"),
    };
    let rt = ProcessRuntime::open(config(state.path(), mode, "none"))
        .await
        .expect("open");
    let spec = limited("unlimited", "echo ran; exit 0");
    let mut events = rt.events().await.expect("events");
    run(&rt, &spec).await;
    assert_eq!(
        next_exit(&mut events).await,
        RuntimeEvent::Exited {
            id: spec.id.clone(),
            code: 0
        }
    );
    let info = rt.inspect(&spec.id).await.expect("inspect");
    assert!(info.cgroup_dirs.is_empty());
    let note = info.limits_note.expect("a note");
    assert!(note.contains("/proc/no-cgroups-here"), "{note}");
    let (log, _) = log_text(&rt, &spec.id, 0).await;
    assert!(
        log.starts_with("[cloudless: running without cgroup limits: ") && log.ends_with("ran\n"),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_signals_the_whole_group_then_kills_it() {
    let state = tempfile::tempdir().expect("tmp");
    let _reaper = Reaper::new(state.path());
    let rt = ProcessRuntime::open(config(state.path(), CgroupMode::Off, "stop"))
        .await
        .expect("open");
    let mut events = rt.events().await.expect("events");

    // Graceful: the main process and a child in its group both get SIGTERM.
    let polite = sh(
        "polite",
        "trap 'echo main-term; wait; exit 0' TERM; \
         sh -c 'trap \"echo child-term; exit 0\" TERM; echo child-up; sleep 100000 & wait' & \
         sleep 100000 & wait",
    );
    run(&rt, &polite).await;
    wait_log(&rt, &polite.id, "child-up").await;
    // A grace far longer than any stall of a loaded machine: a stop that waited it out
    // instead of returning when the group exited could not pass the bound below.
    let t = Instant::now();
    rt.stop(&polite.id, 120_000).await.expect("stop");
    let took = t.elapsed();
    let state = rt.status(&polite.id).await.expect("status").state;
    let (log, _) = log_text(&rt, &polite.id, 0).await;
    assert_eq!(state, ContainerState::Exited { code: 0 }, "{log:?}");
    assert!(
        log.contains("main-term") && log.contains("child-term"),
        "{log:?}"
    );
    assert!(
        took < Duration::from_secs(60),
        "no need for SIGKILL, no wait for the grace: {took:?}"
    );
    assert_eq!(
        next_exit(&mut events).await,
        RuntimeEvent::Exited {
            id: polite.id.clone(),
            code: 0
        }
    );

    // Deaf: SIGTERM is ignored by the whole group; after the grace SIGKILL ends all of it.
    let deaf = sh(
        "deaf",
        "trap '' TERM; sleep 100000 & echo \"child $!\"; wait",
    );
    run(&rt, &deaf).await;
    let log = wait_log(&rt, &deaf.id, "child ").await;
    let child: u32 = log
        .lines()
        .find_map(|l| l.strip_prefix("child "))
        .and_then(|p| p.trim().parse().ok())
        .expect("child pid");
    let main = rt
        .inspect(&deaf.id)
        .await
        .expect("inspect")
        .pid
        .expect("pid");
    assert!(alive(child) && alive(main));
    let t = Instant::now();
    rt.stop(&deaf.id, 300).await.expect("stop");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(300),
        "grace honoured: {took:?}"
    );
    assert_eq!(
        rt.status(&deaf.id).await.expect("status").state,
        ContainerState::Exited { code: 137 },
        "128 + SIGKILL"
    );
    assert!(!alive(main), "main process gone");
    assert!(!alive(child), "the child in the group is gone too");
    assert_eq!(
        next_exit(&mut events).await,
        RuntimeEvent::Exited {
            id: deaf.id.clone(),
            code: 137
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_instance_adopts_running_processes() {
    let state = tempfile::tempdir().expect("tmp");
    let _reaper = Reaper::new(state.path());
    let cfg = config(state.path(), CgroupMode::Off, "adopt");
    let first = ProcessRuntime::open(cfg.clone()).await.expect("open");
    let long = sh(
        "long",
        "echo \"token $$\"; trap 'exit 0' TERM; sleep 100000 & wait",
    );
    // `short` ends by itself once told to (a file appears), not after a fixed time: it must
    // still run when the second instance lists it, however slow a loaded machine is.
    let go = state.path().join("short-may-exit");
    let short = sh(
        "short",
        &format!(
            "while [ ! -e '{}' ]; do sleep 0.05; done; exit 5",
            go.display()
        ),
    );
    let done = sh("done", "exit 9");
    let mut first_events = first.events().await.expect("events");
    run(&first, &done).await;
    next_exit(&mut first_events).await;
    run(&first, &long).await;
    run(&first, &short).await;
    let pid = first
        .inspect(&long.id)
        .await
        .expect("inspect")
        .pid
        .expect("pid");
    wait_log(&first, &long.id, "token").await;
    drop(first_events);
    drop(first);

    let second = ProcessRuntime::open(cfg).await.expect("reopen");
    let mut events = second.events().await.expect("events");
    let listed = second.list().await.expect("list");
    let states: Vec<(String, ContainerState)> =
        listed.iter().map(|s| (s.id.0.clone(), s.state)).collect();
    assert_eq!(
        states,
        vec![
            ("done".to_owned(), ContainerState::Exited { code: 9 }),
            ("long".to_owned(), ContainerState::Running),
            ("short".to_owned(), ContainerState::Running),
        ]
    );
    let info = second.inspect(&long.id).await.expect("inspect");
    assert_eq!(info.pid, Some(pid), "the same process, not a restart");
    let (log, _) = log_text(&second, &long.id, 0).await;
    assert_eq!(log, format!("token {pid}\n"));
    // An adopted process exiting by itself produces its event in the new instance.
    std::fs::write(&go, b"").expect("let short exit");
    assert_eq!(
        next_exit(&mut events).await,
        RuntimeEvent::Exited {
            id: short.id.clone(),
            code: 5
        }
    );
    second.stop(&long.id, 5_000).await.expect("stop");
    assert_eq!(
        next_exit(&mut events).await,
        RuntimeEvent::Exited {
            id: long.id.clone(),
            code: 0
        }
    );
    assert!(!alive(pid));
    for id in ["done", "long", "short"] {
        second.remove(&cid(id)).await.expect("remove");
    }
    assert!(second.list().await.expect("list").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_from_an_offset_and_the_cap() {
    let state = tempfile::tempdir().expect("tmp");
    let _reaper = Reaper::new(state.path());
    let mut cfg = config(state.path(), CgroupMode::Off, "logs");
    // Four files of 2 bytes: the newest 8 bytes are kept.
    cfg.log_max_bytes = 8;
    let rt = ProcessRuntime::open(cfg).await.expect("open");
    let mut events = rt.events().await.expect("events");
    let spec = sh(
        "chatty",
        "printf 0123456789; printf abcdefghij; printf more >&2",
    );
    run(&rt, &spec).await;
    next_exit(&mut events).await;
    // 24 bytes written; offsets stay those since the start.
    let (whole, offsets) = log_text(&rt, &spec.id, 0).await;
    assert_eq!(whole, "ghijmore", "the newest bytes are kept");
    assert_eq!(offsets.first(), Some(&16), "offset 0 was rotated away");
    let (tail, offsets) = log_text(&rt, &spec.id, 20).await;
    assert_eq!((tail.as_str(), offsets.first()), ("more", Some(&20)));
    let (none, _) = log_text(&rt, &spec.id, 24).await;
    assert!(none.is_empty());
    let path = rt.inspect(&spec.id).await.expect("inspect").log_path;
    use std::os::unix::fs::PermissionsExt;
    let dir = path.parent().expect("replica dir");
    let mut logs = 0;
    for entry in std::fs::read_dir(dir).expect("dir") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("output.log") {
            logs += 1;
            let mode = entry.metadata().expect("log").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{name}: logs may hold secrets");
        }
    }
    assert_eq!(logs, 4, "the current file and three rotated ones");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_runs_in_the_replicas_environment() {
    let state = tempfile::tempdir().expect("tmp");
    let _reaper = Reaper::new(state.path());
    let rt = ProcessRuntime::open(config(state.path(), CgroupMode::Off, "exec"))
        .await
        .expect("open");
    let mut spec = sh("host", "trap 'exit 0' TERM; sleep 100000 & wait");
    spec.env = vec![EnvVar {
        name: "FOO".into(),
        value: "bar".into(),
    }];
    spec.security.run_as_user = Some(65534);
    run(&rt, &spec).await;
    let cmd = |s: &str| vec!["/bin/sh".to_owned(), "-c".to_owned(), s.to_owned()];
    let out = rt
        .exec(
            &spec.id,
            &cmd("echo $FOO; pwd; id -u; grep NoNewPrivs /proc/self/status; echo err >&2; exit 3"),
            10_000,
        )
        .await
        .expect("exec");
    let info = rt.inspect(&spec.id).await.expect("inspect");
    assert_eq!(out.exit_code, 3);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("bar\n{}\n65534\nNoNewPrivs:\t1\n", info.cwd.display())
    );
    assert_eq!(out.stderr.as_ref(), b"err\n");
    let own = std::fs::metadata(&info.work_dir).expect("work dir");
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        own.uid(),
        65534,
        "the ephemeral dir belongs to the process's user"
    );
    // The workload itself runs as that user too.
    let pid = info.pid.expect("pid");
    let status = read(PathBuf::from(format!("/proc/{pid}/status")));
    assert!(status.contains("Uid:\t65534\t65534"), "{status}");

    let missing = rt
        .exec(&spec.id, &["/no/such/program".into()], 10_000)
        .await
        .expect("exec");
    assert_eq!(missing.exit_code, 127);
    let t = Instant::now();
    let slow = rt.exec(&spec.id, &cmd("sleep 100000"), 200).await;
    assert!(matches!(slow, Err(RuntimeError::Timeout)), "{slow:?}");
    // Ends at its timeout, not with the command (a loaded machine may be slow to get there).
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    rt.remove(&spec.id).await.expect("remove");
    assert!(
        !info.work_dir.exists(),
        "the replica's last attempt took its dir"
    );
}

/// Writes `started.json` for a created replica by hand, as a shim that died long ago would have
/// left it (nothing holds its lock).
fn fake_started(state: &Path, id: &str, pid: u32, start_ticks: u64) {
    let json = format!(
        "{{\"pid\":{pid},\"start_ticks\":{start_ticks},\"shim_pid\":0,\"started_at_ms\":1}}"
    );
    std::fs::write(state.join("replicas").join(id).join("started.json"), json)
        .expect("started.json");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_pid_is_never_signalled() {
    let state = tempfile::tempdir().expect("tmp");
    let _reaper = Reaper::new(state.path());
    let cfg = config(state.path(), CgroupMode::Off, "reuse");
    let rt = ProcessRuntime::open(cfg.clone()).await.expect("open");
    // Two unrelated processes, each leading its own process group.
    let spawn = || {
        use std::os::unix::process::CommandExt;
        std::process::Command::new("sleep")
            .arg("100000")
            .process_group(0)
            .spawn()
            .expect("sleep")
    };
    let (mut stranger, mut ours) = (spawn(), spawn());
    let (_, stranger_ticks) = proc_stat(stranger.id()).expect("stat");
    let (_, ours_ticks) = proc_stat(ours.id()).expect("stat");
    for id in ["stale", "orphan"] {
        rt.create(&sh(id, "exit 0")).await.expect("create");
    }
    // `stale` names the stranger's pid with another start time: the pid was reused.
    fake_started(state.path(), "stale", stranger.id(), stranger_ticks + 1);
    // `orphan` names a process that really is its own, whose shim died.
    fake_started(state.path(), "orphan", ours.id(), ours_ticks);
    drop(rt);

    let rt = ProcessRuntime::open(cfg).await.expect("reopen");
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in ["stale", "orphan"] {
        loop {
            let st = rt.status(&cid(id)).await.expect("status");
            if st.state == (ContainerState::Exited { code: 255 }) {
                break;
            }
            assert!(Instant::now() < deadline, "{id}: {st:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(rt.inspect(&cid(id)).await.expect("inspect").lost);
    }
    rt.stop(&cid("stale"), 0).await.expect("stop");
    assert!(
        stranger.try_wait().expect("try_wait").is_none(),
        "the stranger with the reused pid was left alone"
    );
    let ended = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            if ours.try_wait().expect("try_wait").is_some() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(
        ended.is_ok(),
        "the orphaned group of a vanished shim is killed"
    );
    let _ = stranger.kill();
    let _ = stranger.wait();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_names_the_field() {
    let state = tempfile::tempdir().expect("tmp");
    let _reaper = Reaper::new(state.path());
    let rt = ProcessRuntime::open(config(state.path(), CgroupMode::Off, "bad"))
        .await
        .expect("open");
    let invalid = |r: Result<(), RuntimeError>| match r {
        Err(RuntimeError::InvalidSpec(m)) => m,
        other => panic!("expected InvalidSpec, got {other:?}"),
    };
    let mut s = sh("a", "true");
    s.working_dir = Some("relative/dir".into());
    assert!(invalid(rt.create(&s).await).starts_with("working_dir: "));
    let mut s = sh("a", "true");
    s.env = vec![EnvVar {
        name: "A=B".into(),
        value: String::new(),
    }];
    assert!(invalid(rt.create(&s).await).starts_with("env[0].name: "));
    let mut s = sh("a", "true");
    s.command = vec!["/no/such/program".into()];
    assert!(invalid(rt.create(&s).await).starts_with("command[0]: "));
    let mut s = sh("a", "true");
    s.command = vec!["no-such-program-anywhere".into()];
    assert!(invalid(rt.create(&s).await).contains("not found in PATH"));
    let mut s = basic_spec(cid("a"), "process:///no/such/program");
    assert!(invalid(rt.create(&s).await).starts_with("image: "));
    s.image = "process://".into();
    assert!(invalid(rt.create(&s).await).starts_with("command: "));
    let mut s = sh("a", "true");
    s.security.run_as_non_root = true;
    assert!(invalid(rt.create(&s).await).starts_with("security.runAsNonRoot: "));
    let s = sh("../escape", "true");
    assert!(invalid(rt.create(&s).await).starts_with("id: "));
    let s = basic_spec(cid("a"), "docker.io/library/busybox:latest");
    assert!(matches!(
        rt.create(&s).await,
        Err(RuntimeError::Unsupported(m)) if m.contains("process://")
    ));
    assert!(matches!(
        rt.pull_image("process:///no/such/program", None).await,
        Err(RuntimeError::ImageNotFound(i)) if i == "process:///no/such/program"
    ));
    let img = rt
        .pull_image("process:///bin/sh", None)
        .await
        .expect("pull");
    assert!(img.digest.starts_with("sha256:") && img.size > 0, "{img:?}");
    assert!(matches!(
        rt.import_image(Path::new("/x.tar")).await,
        Err(RuntimeError::Unsupported(_))
    ));
    assert!(
        rt.list().await.expect("list").is_empty(),
        "nothing half-made"
    );

    let s = sh("ok", "trap 'exit 0' TERM; sleep 100000 & wait");
    run(&rt, &s).await;
    let err = rt.exec(&s.id, &[], 1_000).await.expect_err("empty");
    assert!(err.to_string().contains("command: empty"), "{err}");
    let err = rt
        .exec(&s.id, &["a\0b".into()], 1_000)
        .await
        .expect_err("nul");
    assert!(err.to_string().contains("command[0]"), "{err}");
    rt.remove(&s.id).await.expect("remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_start_claim_left_by_a_dead_agent_expires() {
    let state = tempfile::tempdir().expect("tmp");
    let _reaper = Reaper::new(state.path());
    let rt = ProcessRuntime::open(config(state.path(), CgroupMode::Off, "claim"))
        .await
        .expect("open");
    let spec = sh("claimed", "exit 4");
    rt.create(&spec).await.expect("create");
    let claim = state.path().join("replicas/claimed/start.claim");
    let file = std::fs::File::create(&claim).expect("claim");
    // A start in progress (fresh claim) is not run twice.
    assert!(matches!(
        rt.start(&spec.id).await,
        Err(RuntimeError::InvalidState(m)) if m.contains("already starting")
    ));
    let old = std::time::SystemTime::now() - Duration::from_secs(120);
    file.set_modified(old).expect("age the claim");
    let mut events = rt.events().await.expect("events");
    rt.start(&spec.id)
        .await
        .expect("a stale claim is taken over");
    assert_eq!(
        next_exit(&mut events).await,
        RuntimeEvent::Exited {
            id: spec.id.clone(),
            code: 4
        }
    );
}
