//! `cloudlessctl` against real daemons: a `cloudless-coordinator` (init writes the admin
//! credentials file the CLI's context points at) and a `cloudless-agent` on the process runtime.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use common::{AGENT, COORDINATOR, SHIM, command};

const CTL: &str = env!("CARGO_BIN_EXE_cloudlessctl");

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

fn ctl_json(config: &Path, args: &[&str]) -> serde_json::Value {
    let out = ctl(config, args);
    assert!(
        out.status.success(),
        "cloudlessctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn logs(dir: &Path) -> String {
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

#[test]
fn cloudlessctl_operates_a_real_coordinator_and_agent() {
    let dir = tempfile::tempdir().unwrap();
    let base = common::free_bases(1)[0];
    let listen = format!("127.0.0.1:{base}");
    let api = format!("127.0.0.1:{}", base + 3);
    let coord_dir: PathBuf = dir.path().join("coordinator");
    let out = command(COORDINATOR)
        .args(["init", "--data-dir", coord_dir.to_str().unwrap()])
        .args(["--cluster", "lab", "--name", "coord-1", "--listen", &listen])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "init: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let token = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    let mut children = Children(Vec::new());
    children.0.push(spawn(
        COORDINATOR,
        &[
            "run",
            "--data-dir",
            coord_dir.to_str().unwrap(),
            "--listen",
            &listen,
        ],
        &dir.path().join("coordinator.log"),
    ));

    // The context uses the one credentials file `init` wrote, relative to the config file.
    let config = dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!(
            "currentContext: lab\ncontexts:\n  - name: lab\n    endpoints: [\"{api}\"]\n    credentials: coordinator/admin.pem\n"
        ),
    )
    .unwrap();

    // The coordinator may still be starting.
    let deadline = Instant::now() + Duration::from_secs(20);
    let info = loop {
        let out = ctl(&config, &["cluster", "info", "-o", "json"]);
        if out.status.success() {
            break serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "cluster info: {}{}",
            String::from_utf8_lossy(&out.stderr),
            logs(dir.path())
        );
        std::thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(info["cluster"], "lab");
    assert!(info["caller"].as_str().unwrap().contains("admin"), "{info}");

    // An agent joins with the token and runs on the process runtime.
    let agent_dir = dir.path().join("agent");
    let agent_args = |cmd: &str| -> Vec<String> {
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
            "--zone",
            "zone-a",
            "--label",
            "disk=ssd",
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
    let join = agent_args("join");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = command(AGENT).args(&join).output().unwrap();
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "agent join: {}{}",
            String::from_utf8_lossy(&out.stderr),
            logs(dir.path())
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let run = agent_args("run");
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    children
        .0
        .push(spawn(AGENT, &run, &dir.path().join("agent.log")));

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let nodes = ctl_json(&config, &["node", "ls", "-o", "json"]);
        let ready = nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "edge-1" && n["liveness"] == "Ready");
        if ready {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "edge-1 not Ready: {nodes}{}",
            logs(dir.path())
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let n = ctl_json(&config, &["node", "get", "edge-1", "-o", "json"]);
    assert_eq!(n["zone"], "zone-a");
    assert_eq!(n["labels"]["disk"], "ssd");
    assert_eq!(n["schedulability"], "schedulable");

    let out = ctl(&config, &["node", "cordon", "edge-1"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "node/edge-1 cordoned (now cordoned)\n"
    );
    let n = ctl_json(&config, &["node", "get", "edge-1", "-o", "json"]);
    assert_eq!(n["schedulability"], "cordoned");
    let n = ctl_json(&config, &["node", "uncordon", "edge-1", "-o", "json"]);
    assert_eq!(n["schedulability"], "schedulable");
    let table = String::from_utf8(ctl(&config, &["node", "ls"]).stdout).unwrap();
    assert!(table.starts_with("NAME"), "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("edge-1") && l.contains("Ready")),
        "{table}"
    );

    // Apply and read back through the real coordinator.
    let manifest = dir.path().join("web.yaml");
    std::fs::write(
        &manifest,
        "apiVersion: cloudless.dev/v1\nkind: Workload\nmetadata:\n  name: web\nspec:\n  image: busybox:1\n  replicas: 1\n",
    )
    .unwrap();
    let m = manifest.to_str().unwrap();
    let out = ctl(&config, &["apply", "-f", m]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "workload/default/web created\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = ctl(&config, &["apply", "-f", m]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "workload/default/web unchanged\n"
    );
    let w = ctl_json(&config, &["workload", "get", "web", "-o", "json"]);
    assert_eq!(w["namespace"], "default");
    assert_eq!(w["replicas"], 1);
    let out = ctl(&config, &["workload", "get", "missing"]);
    assert_eq!(out.status.code(), Some(2));

    // Removing the node with --revoke closes the agent's open connection (the coordinator
    // mirrors the state's revoked set into its transport) and keeps it out.
    let out = ctl(&config, &["node", "rm", "edge-1", "--revoke"]);
    assert!(
        out.status.success(),
        "node rm --revoke: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let agent_log = std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default();
        // The open connection is closed as revoked; re-dialing is refused in the handshake.
        if agent_log.contains("revoked by the peer")
            || agent_log.contains("invalid peer certificate: Revoked")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the agent's connection was not closed as revoked{}",
            logs(dir.path())
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let nodes = ctl_json(&config, &["node", "ls", "-o", "json"]);
    assert!(
        !nodes["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n["name"] == "edge-1"),
        "a revoked node came back: {nodes}"
    );

    // Stopping the coordinator makes the cluster unavailable (exit 3).
    let mut coord = children.0.remove(0);
    let _ = coord.kill();
    let _ = coord.wait();
    let out = ctl(&config, &["cluster", "info"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
