//! `cloudlessctl workload logs [-f]` and `workload exec -- CMD` against real daemons: a
//! `cloudless-coordinator` and a `cloudless-agent` on the process runtime running a shell
//! replica. The replica prints two lines, then waits for a file in its working directory that
//! an `exec` creates, then prints a third line: so a follow is shown to deliver a line written
//! after it started, deterministically.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{AGENT, COORDINATOR, SHIM, command};

const CTL: &str = env!("CARGO_BIN_EXE_cloudlessctl");

const MANIFEST: &str = r#"apiVersion: cloudless.dev/v1
kind: Workload
metadata:
  name: talker
spec:
  image: process:///bin/sh
  command: ["/bin/sh", "-c"]
  args: ["echo one; echo two; while [ ! -e go ]; do sleep 0.1; done; echo three; exec sleep 100000"]
  replicas: 1
"#;

/// Children killed when the test ends, pass or fail.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

fn spawn(program: &str, args: &[&str], log: &Path) -> Child {
    command(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn ctl(config: &Path, args: &[&str]) -> Output {
    command(CTL)
        .env("CLOUDLESSCTL_CONFIG", config)
        .args(args)
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn daemon_logs(dir: &Path) -> String {
    ["coordinator.log", "agent.log"]
        .iter()
        .map(|l| {
            format!(
                "\n--- {l}:\n{}",
                std::fs::read_to_string(dir.join(l)).unwrap_or_default()
            )
        })
        .collect()
}

/// Runs `check` every 300 ms until it returns `Some`, for at most `limit`.
fn wait_for<T>(limit: Duration, what: &str, dir: &Path, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}{}",
            daemon_logs(dir)
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Processes started under `dir` (the process runtime's shims and replicas: their command
/// line or working directory is inside it). The agent leaves replicas running when it stops,
/// so the test deletes its workload; on failure, [`Leftovers`] kills what is left, by pid.
fn processes_under(dir: &Path) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let me = std::process::id();
    let dir = dir.to_string_lossy().into_owned();
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| *pid != me)
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
            String::from_utf8_lossy(&cmdline).contains(&dir) || cwd.starts_with(&dir)
        })
        .collect()
}

/// Kills the processes left under a directory when dropped (after the daemons).
struct Leftovers(PathBuf);

impl Drop for Leftovers {
    fn drop(&mut self) {
        for pid in processes_under(&self.0) {
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        }
    }
}

/// A coordinator and a process-runtime agent, with a CLI config pointing at the API.
fn start_fabric(dir: &Path, children: &mut Children) -> PathBuf {
    let base = common::free_bases(1)[0];
    let listen = format!("127.0.0.1:{base}");
    let api = format!("127.0.0.1:{}", base + 3);
    let coord_dir = dir.join("coordinator");
    let out = command(COORDINATOR)
        .args(["init", "--data-dir", coord_dir.to_str().unwrap()])
        .args(["--cluster", "lab", "--name", "coord-1", "--listen", &listen])
        .output()
        .unwrap();
    assert!(out.status.success(), "init: {}", text(&out.stderr));
    let token = text(&out.stdout)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    children.0.push(spawn(
        COORDINATOR,
        &[
            "run",
            "--data-dir",
            coord_dir.to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &dir.join("coordinator.log"),
    ));
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "currentContext: lab\ncontexts:\n  - name: lab\n    endpoints: [\"{api}\"]\n    credentials: coordinator/admin.pem\n"
        ),
    )
    .unwrap();
    wait_for(Duration::from_secs(20), "the API", dir, || {
        ctl(&config, &["cluster", "info"])
            .status
            .success()
            .then_some(())
    });

    let agent_dir = dir.join("agent");
    let args = |cmd: &str| -> Vec<String> {
        let mut v: Vec<String> = [
            cmd,
            "--data-dir",
            agent_dir.to_str().unwrap(),
            "--name",
            "edge-1",
            "--coordinator",
            &listen,
            "--runtime",
            "process",
            "--process-shim",
            SHIM,
            "--listen",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if cmd == "join" {
            v.extend(["--token".to_owned(), token.clone()]);
        }
        v
    };
    // The join is retried for a while, as `Lab::start_agent` does: the coordinator's API
    // answering does not mean its enrollment answers yet.
    wait_for(Duration::from_secs(30), "the agent to join", dir, || {
        let out = command(AGENT).args(args("join")).output().unwrap();
        if !out.status.success() {
            eprintln!("agent join: {}", text(&out.stderr));
        }
        out.status.success().then_some(())
    });
    let run = args("run");
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    children.0.push(spawn(AGENT, &run, &dir.join("agent.log")));
    config
}

#[test]
fn cloudlessctl_reads_logs_follows_them_and_execs_in_a_real_replica() {
    let dir = tempfile::tempdir().unwrap();
    let dir = dir.path();
    let _leftovers = Leftovers(dir.to_owned());
    let mut children = Children(Vec::new());
    let config = start_fabric(dir, &mut children);

    let manifest = dir.join("talker.yaml");
    std::fs::write(&manifest, MANIFEST).unwrap();
    let out = ctl(
        &config,
        &["apply", "-f", manifest.to_str().unwrap(), "--wait"],
    );
    assert!(
        out.status.success(),
        "apply: {}{}{}",
        text(&out.stdout),
        text(&out.stderr),
        daemon_logs(dir)
    );

    // The first two lines, once the replica wrote them.
    let logs = wait_for(Duration::from_secs(20), "two log lines", dir, || {
        let out = ctl(&config, &["workload", "logs", "talker"]);
        let t = text(&out.stdout);
        (out.status.success() && t.contains("two\n")).then_some(t)
    });
    assert!(logs.ends_with("one\ntwo\n"), "{logs:?}");
    let out = ctl(&config, &["workload", "logs", "talker", "--tail", "1"]);
    assert_eq!(text(&out.stdout), "two\n", "{}", text(&out.stderr));
    let out = ctl(&config, &["workload", "logs", "talker", "--prefix"]);
    let prefixed = text(&out.stdout);
    let lines: Vec<&str> = prefixed.lines().collect();
    assert_eq!(lines.len(), 2, "{prefixed:?}");
    assert!(
        lines[0].starts_with("[r") && lines[0].ends_with("] one") && lines[1].ends_with("] two"),
        "{prefixed:?}"
    );
    let offset = logs.len() - "two\n".len();
    let out = ctl(
        &config,
        &[
            "workload",
            "logs",
            "talker",
            "--from-offset",
            &offset.to_string(),
        ],
    );
    assert_eq!(text(&out.stdout), "two\n", "{}", text(&out.stderr));

    // Follow: a child CLI prints lines as they come; it still runs after the third line.
    let mut follow = command(CTL)
        .env("CLOUDLESSCTL_CONFIG", &config)
        .args(["workload", "logs", "talker", "-f"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = follow.stdout.take().unwrap();
    children.0.push(follow);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let next = |what: &str| {
        rx.recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|_| panic!("follow: no {what} line{}", daemon_logs(dir)))
    };
    assert!(next("first").ends_with("one"));
    assert_eq!(next("second"), "two");

    // Exec: creates the file the replica waits for; exit code and output come back.
    let out = ctl(
        &config,
        &[
            "workload",
            "exec",
            "talker",
            "--",
            "/bin/sh",
            "-c",
            "touch go; echo made; echo note >&2; exit 7",
        ],
    );
    assert_eq!(
        out.status.code(),
        Some(7),
        "exec: {}{}",
        text(&out.stderr),
        daemon_logs(dir)
    );
    assert_eq!(text(&out.stdout), "made\n");
    assert_eq!(text(&out.stderr), "note\n");
    let out = ctl(&config, &["workload", "exec", "talker", "--", "/bin/pwd"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("/work/"),
        "exec runs in the replica's working directory: {}",
        text(&out.stdout)
    );

    assert_eq!(next("third (written after the follow started)"), "three");
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "nothing more was logged"
    );
    assert!(
        children.0.last_mut().unwrap().try_wait().unwrap().is_none(),
        "`logs -f` keeps following while the replica runs"
    );

    // Errors: one line, exit codes scripts rely on (2: not found).
    let out = ctl(&config, &["workload", "logs", "missing"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("default/missing"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(
        &config,
        &[
            "workload",
            "exec",
            "talker",
            "--replica",
            "424242",
            "--",
            "true",
        ],
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("424242"),
        "{}",
        text(&out.stderr)
    );
    let out = ctl(&config, &["workload", "exec", "talker"]);
    assert!(!out.status.success(), "exec needs a command");

    // Deleting the workload stops the replica (the agent would leave it running).
    let out = ctl(&config, &["delete", "-f", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "delete: {}", text(&out.stderr));
    let agent_dir = dir.join("agent");
    wait_for(Duration::from_secs(30), "the replica to stop", dir, || {
        processes_under(&agent_dir)
            .iter()
            .all(|pid| {
                // Only the agent itself (its command line names the data dir) may remain.
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                String::from_utf8_lossy(&cmd).contains("cloudless-agent\0run")
                    || !std::path::Path::new(&format!("/proc/{pid}")).exists()
            })
            .then_some(())
    });

    // The followed container ended: `logs -f` drains the log and exits successfully.
    let follow = children.0.last_mut().unwrap();
    let status = wait_for(Duration::from_secs(20), "`logs -f` to end", dir, || {
        follow.try_wait().unwrap()
    });
    assert!(status.success(), "logs -f: {status}");
}
