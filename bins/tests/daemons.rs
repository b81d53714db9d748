//! The reference daemons as real processes on loopback: `cloudless-coordinator init` writes
//! its files with private modes and prints a join token; an unknown config key is refused by
//! name; a coordinator runs, an agent on the process runtime joins and becomes a Ready node
//! (seen through the public API with the admin credentials); SIGTERM stops both with exit 0;
//! a restarted coordinator still knows the node; a stopped agent removes its empty cgroups.

#![allow(clippy::unwrap_used)] // Tests unwrap to fail loudly.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const COORDINATOR: &str = env!("CARGO_BIN_EXE_cloudless-coordinator");
const AGENT: &str = env!("CARGO_BIN_EXE_cloudless-agent");
const SHIM: &str = env!("CARGO_BIN_EXE_cloudless-agent-shim");

/// The directories of cgroup `rel` in every hierarchy that has it.
fn cgroup_dirs(rel: &str) -> Vec<PathBuf> {
    let root = Path::new(cloudless_bins::agent::cgroups::CGROUP_ROOT);
    let mut out: Vec<PathBuf> = std::fs::read_dir(root)
        .map(|d| d.flatten().map(|e| e.path().join(rel)).collect())
        .unwrap_or_default();
    out.push(root.join(rel));
    out.retain(|p| p.is_dir());
    out
}

/// Removes the empty cgroups `rel` when dropped (a failing test leaves none behind).
struct CgroupGuard(String);

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        cloudless_bins::agent::cgroups::remove_empty(
            Path::new(cloudless_bins::agent::cgroups::CGROUP_ROOT),
            &self.0,
        );
    }
}

fn clean_env(cmd: &mut Command) -> &mut Command {
    for (k, _) in std::env::vars() {
        if k.starts_with("CLOUDLESS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env("CLOUDLESS_LOG", "info")
}

fn run(program: &str, args: &[&str]) -> Output {
    clean_env(&mut Command::new(program))
        .args(args)
        .output()
        .unwrap()
}

/// A child process killed when dropped (a failing test leaves nothing running).
struct Guard(Child);

impl std::ops::Deref for Guard {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Guard {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

fn spawn(program: &str, args: &[&str], log: &Path) -> Guard {
    let f = std::fs::File::create(log).unwrap();
    clean_env(&mut Command::new(program))
        .args(args)
        .stdout(Stdio::null())
        .stderr(f)
        .spawn()
        .map(Guard)
        .unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn sigterm(child: &Child) {
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap()
        .success();
    assert!(ok);
}

/// Waits for `child` to exit within `limit`; its exit code.
fn wait_exit(child: &mut Child, limit: Duration, log: &Path) -> i32 {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "process did not exit within {limit:?}; log:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

struct Cluster {
    dir: tempfile::TempDir,
    base: u16,
}

impl Cluster {
    fn coord_dir(&self) -> PathBuf {
        self.dir.path().join("coordinator")
    }
    fn listen(&self) -> String {
        format!("127.0.0.1:{}", self.base)
    }
    fn api(&self) -> String {
        format!("127.0.0.1:{}", self.base + 3)
    }
    fn admin(&self) -> PathBuf {
        self.coord_dir().join("admin.pem")
    }

    fn init() -> (Self, String) {
        let c = Cluster {
            dir: tempfile::tempdir().unwrap(),
            base: common::free_bases(1)[0],
        };
        let out = run(
            COORDINATOR,
            &[
                "init",
                "--data-dir",
                c.coord_dir().to_str().unwrap(),
                "--cluster",
                "lab",
                "--name",
                "coord-1",
                "--listen",
                &c.listen(),
            ],
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "init failed: {stderr}");
        let token = stdout.lines().next().unwrap_or_default().to_owned();
        (c, token)
    }

    fn start_coordinator(&self, log: &str) -> Guard {
        spawn(
            COORDINATOR,
            &[
                "run",
                "--data-dir",
                self.coord_dir().to_str().unwrap(),
                "--listen",
                &self.listen(),
            ],
            &self.dir.path().join(log),
        )
    }

    /// Nodes as the API lists them: (name, liveness), or the error output.
    fn nodes(&self) -> Result<Vec<(String, String)>, String> {
        let out = run(
            COORDINATOR,
            &[
                "status",
                "--json",
                "--api",
                &self.api(),
                "--admin-credentials",
                self.admin().to_str().unwrap(),
            ],
        );
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| {
                let v: serde_json::Value = serde_json::from_str(l).unwrap();
                (
                    v["name"].as_str().unwrap().to_owned(),
                    v["liveness"].as_str().unwrap().to_owned(),
                )
            })
            .collect())
    }

    fn wait_log(&self, log: &str, needle: &str) {
        let path = self.dir.path().join(log);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            if text.contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} not in {log}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn wait_node(&self, name: &str, liveness: &str, limit: Duration, logs: &[&str]) {
        let deadline = Instant::now() + limit;
        let mut last = Err(String::new());
        while Instant::now() < deadline {
            last = self.nodes();
            if let Ok(nodes) = &last
                && nodes.iter().any(|(n, l)| n == name && l == liveness)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        let logs: String = logs
            .iter()
            .map(|l| {
                format!(
                    "\n--- {l}:\n{}",
                    std::fs::read_to_string(self.dir.path().join(l)).unwrap_or_default()
                )
            })
            .collect();
        panic!("{name} not {liveness} within {limit:?}; last status: {last:?}{logs}");
    }
}

#[test]
fn init_writes_private_files_and_prints_an_agent_token() {
    let (c, token) = Cluster::init();
    assert!(token.starts_with("CLD1-"), "token line: {token:?}");
    let d = c.coord_dir();
    assert_eq!(mode(&d), 0o700);
    assert_eq!(mode(&d.join("ca/ca.key")), 0o600);
    assert_eq!(mode(&d.join("identity/node.key")), 0o600);
    assert_eq!(mode(&c.admin()), 0o600);
    assert!(d.join("ca/ca.pem").is_file());
    assert!(d.join("identity/node.pem").is_file());
    assert!(d.join("raft").is_dir());
    assert!(d.join("coordinator.json").is_file());
    let admin = std::fs::read_to_string(c.admin()).unwrap();
    assert!(admin.starts_with("-----BEGIN PRIVATE KEY-----"));
    assert_eq!(admin.matches("BEGIN CERTIFICATE").count(), 2);

    // A second init into the same directory is refused and changes nothing.
    let again = run(
        COORDINATOR,
        &[
            "init",
            "--data-dir",
            d.to_str().unwrap(),
            "--cluster",
            "lab",
            "--listen",
            &c.listen(),
        ],
    );
    assert!(!again.status.success());
    let err = String::from_utf8_lossy(&again.stderr);
    assert!(
        err.contains("data_dir") && err.contains("not empty"),
        "{err}"
    );
}

#[test]
fn unknown_config_keys_and_bad_values_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("coordinator.yaml");
    std::fs::write(
        &file,
        "cluster: lab\nlisten: 127.0.0.1:7400\nlisten_port: 9\n",
    )
    .unwrap();
    let out = run(
        COORDINATOR,
        &[
            "init",
            "--config",
            file.to_str().unwrap(),
            "--data-dir",
            dir.path().join("d").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen_port"), "{err}");
    assert!(err.contains(file.to_str().unwrap()), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one-line error: {err}");
    assert!(
        !dir.path().join("d").exists(),
        "nothing is created on a config error"
    );

    // A bad value from the environment is named by its field; a flag wins over the env.
    let mut cmd = Command::new(COORDINATOR);
    clean_env(&mut cmd)
        .env("CLOUDLESS_LISTEN", "not-an-address")
        .args(["init", "--cluster", "lab", "--data-dir"])
        .arg(dir.path().join("d"));
    let out = cmd.output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("listen:"), "{err}");

    let agent_file = dir.path().join("agent.yaml");
    std::fs::write(&agent_file, "runtime: process\nzone: a\nzones: [b]\n").unwrap();
    let out = run(
        AGENT,
        &[
            "run",
            "--config",
            agent_file.to_str().unwrap(),
            "--data-dir",
            dir.path().join("a").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("zones") && err.contains("agent.yaml"), "{err}");
}

#[test]
fn an_agent_on_the_process_runtime_joins_runs_and_both_stop_cleanly() {
    let (c, token) = Cluster::init();
    let mut coord = c.start_coordinator("coordinator.log");
    let agent_dir = c.dir.path().join("agent");
    // A cgroup parent of this test run only, removed by the agent when it stops.
    let cgroup = format!("cloudless-agent-edge-1-t{}", std::process::id());
    let _cgroup_guard = CgroupGuard(cgroup.clone());
    let agent_config = c.dir.path().join("agent.yaml");
    std::fs::write(&agent_config, format!("cgroup_parent: {cgroup}\n")).unwrap();
    let agent_args = |cmd: &str| -> Vec<String> {
        let mut v: Vec<String> = [
            cmd,
            "--config",
            agent_config.to_str().unwrap(),
            "--data-dir",
            agent_dir.to_str().unwrap(),
            "--name",
            "edge-1",
            "--coordinator",
            &c.listen(),
            "--runtime",
            "process",
            "--process-shim",
            SHIM,
            "--region",
            "home",
            "--zone",
            "zone-a",
            "--label",
            "disk=ssd",
            "--listen",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        if cmd == "join" {
            v.extend(["--token".to_owned(), token.clone()]);
        }
        v
    };

    // Join: enrolls (the coordinator may still be starting: retry briefly).
    let deadline = Instant::now() + Duration::from_secs(20);
    let join_args = agent_args("join");
    let join_args: Vec<&str> = join_args.iter().map(String::as_str).collect();
    loop {
        let out = run(AGENT, &join_args);
        if out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("spiffe://lab/agent/"), "{stdout}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent join failed: {}\ncoordinator log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(c.dir.path().join("coordinator.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(mode(&agent_dir.join("identity/node.key")), 0o600);

    let run_args = agent_args("run");
    let run_args: Vec<&str> = run_args.iter().map(String::as_str).collect();
    let mut agent = spawn(AGENT, &run_args, &c.dir.path().join("agent.log"));
    let logs = ["coordinator.log", "agent.log"];
    c.wait_log("agent.log", "agent running");
    c.wait_node("edge-1", "Ready", Duration::from_secs(20), &logs);
    // Empty cgroups under the agent's parent, as containers that ended leave them (made here
    // when the test may: root on a writable cgroup filesystem).
    let root = std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"));
    let cg_root = Path::new(cloudless_bins::agent::cgroups::CGROUP_ROOT);
    let hierarchies: Vec<PathBuf> = if cg_root.join("cgroup.controllers").is_file() {
        vec![cg_root.to_owned()]
    } else {
        ["memory", "pids"]
            .iter()
            .map(|h| cg_root.join(h))
            .filter(|h| h.is_dir())
            .collect()
    };
    if root {
        for h in &hierarchies {
            std::fs::create_dir_all(h.join(&cgroup).join("ended-container")).unwrap();
        }
    }
    let had_cgroups = cgroup_dirs(&cgroup);
    if root {
        assert!(!had_cgroups.is_empty(), "cgroups {cgroup} made");
    }

    // SIGTERM: both exit 0.
    sigterm(&agent);
    assert_eq!(
        wait_exit(
            &mut agent,
            Duration::from_secs(30),
            &c.dir.path().join("agent.log")
        ),
        0
    );
    // With no containers left, the stopped agent removed its (empty) cgroups.
    assert_eq!(
        cgroup_dirs(&cgroup),
        Vec::<PathBuf>::new(),
        "left behind by the stopped agent (it had {had_cgroups:?})"
    );
    sigterm(&coord);
    assert_eq!(
        wait_exit(
            &mut coord,
            Duration::from_secs(30),
            &c.dir.path().join("coordinator.log")
        ),
        0
    );
    let log = std::fs::read_to_string(c.dir.path().join("coordinator.log")).unwrap();
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
    let log = std::fs::read_to_string(c.dir.path().join("agent.log")).unwrap();
    assert!(
        log.contains("containers keep running") && log.contains("stopped"),
        "{log}"
    );

    // Restarted from its data dir, the coordinator still knows the node; the agent restarts
    // with its stored identity (no token) and is Ready again.
    let mut coord = c.start_coordinator("coordinator-2.log");
    let mut agent = spawn(AGENT, &run_args, &c.dir.path().join("agent-2.log"));
    c.wait_log("agent-2.log", "agent running");
    c.wait_node(
        "edge-1",
        "Ready",
        Duration::from_secs(20),
        &["coordinator-2.log", "agent-2.log"],
    );
    let nodes = c.nodes().unwrap();
    assert_eq!(
        nodes.iter().filter(|(n, _)| n == "edge-1").count(),
        1,
        "{nodes:?}"
    );
    sigterm(&agent);
    assert_eq!(
        wait_exit(
            &mut agent,
            Duration::from_secs(30),
            &c.dir.path().join("agent-2.log")
        ),
        0
    );
    sigterm(&coord);
    assert_eq!(
        wait_exit(
            &mut coord,
            Duration::from_secs(30),
            &c.dir.path().join("coordinator-2.log")
        ),
        0
    );

    // Offline snapshot of the stopped coordinator's data, restored into a new data dir.
    let snap = c.dir.path().join("state.snap");
    let out = run(
        COORDINATOR,
        &[
            "snapshot",
            "save",
            snap.to_str().unwrap(),
            "--data-dir",
            c.coord_dir().to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(mode(&snap), 0o600);

    // Restore needs the member's CA and identity and refuses to overwrite raft data.
    let out = run(
        COORDINATOR,
        &[
            "snapshot",
            "restore",
            snap.to_str().unwrap(),
            "--data-dir",
            c.coord_dir().to_str().unwrap(),
            "--listen",
            &c.listen(),
        ],
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds raft data"));
    std::fs::rename(c.coord_dir().join("raft"), c.dir.path().join("old-raft")).unwrap();
    let out = run(
        COORDINATOR,
        &[
            "snapshot",
            "restore",
            snap.to_str().unwrap(),
            "--data-dir",
            c.coord_dir().to_str().unwrap(),
            "--listen",
            &c.listen(),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("restored revision"));

    // The restored single-member cluster starts and still knows the node.
    let mut coord = c.start_coordinator("coordinator-3.log");
    c.wait_node(
        "edge-1",
        "Ready",
        Duration::from_secs(20),
        &["coordinator-3.log"],
    );
    sigterm(&coord);
    assert_eq!(
        wait_exit(
            &mut coord,
            Duration::from_secs(30),
            &c.dir.path().join("coordinator-3.log")
        ),
        0
    );
}

#[test]
fn a_locked_ca_key_needs_its_passphrase_to_run() {
    let c = Cluster {
        dir: tempfile::tempdir().unwrap(),
        base: common::free_bases(1)[0],
    };
    let secret = c.dir.path().join("passphrase");
    std::fs::write(&secret, "correct horse battery staple\n").unwrap();
    let wrong = c.dir.path().join("wrong");
    std::fs::write(&wrong, "not the passphrase at all\n").unwrap();
    let coord = c.coord_dir();
    let coord = coord.to_str().unwrap();
    let listen = c.listen();
    let out = run(
        COORDINATOR,
        &[
            "init",
            "--data-dir",
            coord,
            "--cluster",
            "lab",
            "--name",
            "coord-1",
            "--listen",
            &listen,
            "--ca-passphrase-file",
            secret.to_str().unwrap(),
        ],
    );
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // No plaintext CA key on disk.
    assert!(!c.coord_dir().join("ca/ca.key").exists());

    // Without the passphrase, and with a wrong one, `run` refuses to start.
    for (args, needle) in [
        (vec![], "locked"),
        (
            vec!["--ca-passphrase-file", wrong.to_str().unwrap()],
            "unlocking the CA",
        ),
    ] {
        let log = c.dir.path().join("refused.log");
        let mut all = vec!["run", "--data-dir", coord, "--listen", &listen];
        all.extend(args);
        let mut child = spawn(COORDINATOR, &all, &log);
        let code = wait_exit(&mut child, Duration::from_secs(20), &log);
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        assert_ne!(
            code, 0,
            "a locked CA started without its passphrase: {text}"
        );
        assert!(text.contains(needle), "{needle:?} not in: {text}");
    }

    // With it, the coordinator runs and serves the API.
    let log = c.dir.path().join("coordinator.log");
    let mut coordinator = spawn(
        COORDINATOR,
        &[
            "run",
            "--data-dir",
            coord,
            "--listen",
            &listen,
            "--ca-passphrase-file",
            secret.to_str().unwrap(),
        ],
        &log,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = c.nodes() {
        assert!(
            Instant::now() < deadline,
            "API not up: {e}\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    sigterm(&coordinator);
    assert_eq!(
        wait_exit(&mut coordinator, Duration::from_secs(30), &log),
        0
    );
}
