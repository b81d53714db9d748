//! A `ProcessRuntime` agent process that is SIGKILLed leaves its processes running, outside its
//! session; a new agent process finds them in the state directory and takes them over without
//! restarting them.
//!
//! `harness = false`: `main` is either the test (parent) or, with `CLD_PROC_ADOPT_STATE` set,
//! the first "agent" process, which starts a replica, reports its pid and waits to be killed.

#![allow(missing_docs)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cloudless_core::runtime::{ContainerId, ContainerState, Runtime, RuntimeEvent};
use cloudless_core::testing::runtime::basic_spec;
use cloudless_runtime::process::CgroupMode;
use cloudless_runtime::{ProcessConfig, ProcessRuntime};
use futures::StreamExt;

const ID: &str = "survivor";

fn config(state: &Path) -> ProcessConfig {
    let mut cfg = ProcessConfig::new(state, env!("CARGO_BIN_EXE_cloudless-process-shim"));
    cfg.cgroup = CgroupMode::Off;
    cfg
}

/// (state letter, session id) of a process.
fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest: Vec<&str> = text[text.rfind(')')? + 1..].split_whitespace().collect();
    Some((rest.first()?.chars().next()?, rest.get(3)?.parse().ok()?))
}

fn alive(pid: u32) -> bool {
    proc_stat(pid).is_some_and(|(s, _)| s != 'Z')
}

/// Kills the replica's process group if the test fails before stopping it.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if alive(self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", self.0)])
                .status();
        }
    }
}

async fn first_agent(state: &Path) {
    let rt = ProcessRuntime::open(config(state)).await.expect("open");
    let mut spec = basic_spec(ContainerId(ID.into()), "process:///bin/sh");
    spec.command = vec![
        "/bin/sh".into(),
        "-c".into(),
        "echo \"token $$\"; trap 'exit 0' TERM; sleep 100000 & wait".into(),
    ];
    rt.create(&spec).await.expect("create");
    rt.start(&spec.id).await.expect("start");
    let pid = rt
        .inspect(&spec.id)
        .await
        .expect("inspect")
        .pid
        .expect("pid");
    println!("PID {pid}");
    // Wait to be killed.
    tokio::time::sleep(Duration::from_secs(60)).await;
}

async fn parent() {
    let state = tempfile::tempdir().expect("state dir");
    let mut agent = Command::new(std::env::current_exe().expect("test binary"))
        .env("CLD_PROC_ADOPT_STATE", state.path())
        .stdout(Stdio::piped())
        .spawn()
        .expect("first agent");
    let mut line = String::new();
    BufReader::new(agent.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("read");
    let pid: u32 = line
        .trim()
        .strip_prefix("PID ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("first agent said {line:?}"));
    let _guard = KillOnDrop(pid);
    // The agent crashes.
    agent.kill().expect("kill the agent");
    agent.wait().expect("reap the agent");
    std::thread::sleep(Duration::from_millis(200));
    assert!(alive(pid), "the process outlived its agent");
    let (_, sid) = proc_stat(pid).expect("stat");
    let (_, own_sid) = proc_stat(std::process::id()).expect("own stat");
    assert_ne!(sid, own_sid, "the process left the agent's session");

    let rt = ProcessRuntime::open(config(state.path()))
        .await
        .expect("reopen");
    let listed = rt.list().await.expect("list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0].state, ContainerState::Running);
    let id = ContainerId(ID.into());
    let info = rt.inspect(&id).await.expect("inspect");
    assert_eq!(info.pid, Some(pid), "the same process, not a restart");
    // The replica's first line, read once it is written (the first agent reported the pid
    // right after the start, possibly before the shell ran its `echo`).
    let want = format!("token {pid}\n");
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let mut log = rt.logs(&id, 0, false).await.expect("logs");
        let mut text = Vec::new();
        while let Some(chunk) = log.next().await {
            text.extend_from_slice(&chunk.expect("chunk").data);
        }
        if text.len() >= want.len() || Instant::now() > deadline {
            break String::from_utf8_lossy(&text).into_owned();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(text, want);

    let mut events = rt.events().await.expect("events");
    let t = Instant::now();
    // A grace far longer than any stall of a loaded machine: stopped well within it means
    // stopped by SIGTERM, without waiting the grace out.
    rt.stop(&id, 120_000).await.expect("stop");
    assert!(
        t.elapsed() < Duration::from_secs(60),
        "stopped by SIGTERM: {:?}",
        t.elapsed()
    );
    let event = tokio::time::timeout(Duration::from_secs(30), events.next())
        .await
        .expect("event in time");
    assert_eq!(
        event,
        Some(RuntimeEvent::Exited {
            id: id.clone(),
            code: 0
        })
    );
    assert!(!alive(pid));
    rt.remove(&id).await.expect("remove");
    println!("process_adoption: ok");
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio");
    match std::env::var_os("CLD_PROC_ADOPT_STATE") {
        Some(state) => runtime.block_on(first_agent(Path::new(&state))),
        None => runtime.block_on(parent()),
    }
}
