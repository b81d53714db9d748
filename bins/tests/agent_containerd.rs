//! The agent daemon on a private containerd, as real processes: its containers' logs are capped
//! (`--log-max-bytes`, written by `cloudless-agent-logger`, found next to the agent): a
//! container that writes several times the cap leaves log files under the cap on disk while
//! `cloudlessctl workload logs` still returns its newest lines; the image collector is on; a
//! stopped agent leaves its running container (and that container's cgroup) alone.
//!
//! ```text
//!  containerd (private)  ns t<pid>-log ─ agent l<pid> (log cap 64 KiB) ─ coord-0 (Lab)
//!  cloudlessctl (config: the lab's API + admin.pem) ── workload logs chatty
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

#[allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used
)]
#[path = "../../cloudless-runtime/tests/common/ctd.rs"]
mod ctd;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use cloudless_core::runtime::{ContainerState, Runtime};
use cloudless_runtime::{ContainerdConfig, ContainerdRuntime};
use common::{AgentSpec, Lab};

const CTL: &str = env!("CARGO_BIN_EXE_cloudlessctl");

/// Bytes of log kept per container.
const CAP: u64 = 64 << 10;
/// Lines the container writes (77 to 80 bytes each: over 3 times the cap).
const LINES: u32 = 3000;

const MANIFEST: &str = r#"apiVersion: cloudless.dev/v1
kind: Workload
metadata:
  name: chatty
spec:
  image: localhost/cloudless/busybox:latest
  command: ["/bin/sh", "-c"]
  args:
    - >-
      i=0;
      while [ $i -lt 3000 ]; do
      echo "line $i of a container that writes much more than its log may keep ........";
      i=$((i+1));
      done;
      echo last-line;
      exec sleep 100000
  resources:
    requests: {cpu: 50m, memory: 16Mi}
    limits: {cpu: 500m, memory: 64Mi, pids: 64}
  replicas: 1
  restart: {policy: always}
"#;

/// Kills what the agent's containers left in its cgroups and removes them (the containerd
/// supervisor cleans its own cgroup, not the agent's). Runs before the containerd instance goes.
struct AgentCgroups(String);

impl Drop for AgentCgroups {
    fn drop(&mut self) {
        for dir in cgroup_dirs(&self.0) {
            let _ = std::process::Command::new("sh")
                .arg("-c")
                .arg(
                    r#"find "$1" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null; sleep 0.2; find "$1" -depth -type d -exec rmdir {} + 2>/dev/null; true"#,
                )
                .arg("sh")
                .arg(&dir)
                .status();
        }
    }
}

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

/// The log files under `dir` (recursively) with their sizes.
fn log_files(dir: &Path) -> Vec<(PathBuf, u64)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            out.extend(log_files(&p));
        } else if p.file_name().is_some_and(|n| {
            let n = n.to_string_lossy();
            n.contains(".log") && !n.ends_with(".lock")
        }) {
            out.push((p, meta.len()));
        }
    }
    out
}

fn ctl(config: &Path, args: &[&str]) -> std::process::Output {
    common::command(CTL)
        .env("CLOUDLESSCTL_CONFIG", config)
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn container_logs_stay_under_the_cap_and_the_newest_lines_are_served() {
    let started = Instant::now();
    let Some(ctd) = ctd::Containerd::start("agentlog") else {
        return;
    };
    let archive = ctd.dir().join("busybox-oci.tar");
    let busybox = cloudless_runtime::busybox::find_busybox().unwrap_or_else(|e| {
        panic!("the busybox image needs a static busybox (scripts/ensure-deps.sh): {e}")
    });
    cloudless_runtime::busybox::write_oci_layout(&busybox, &archive).unwrap();
    let name = format!("l{}", std::process::id());
    let namespace = format!("t{}-log", std::process::id());
    let cgroup = format!("cloudless-agent-{name}");
    let _cgroups = AgentCgroups(cgroup.clone());

    let mut lab = Lab::init("logs", 1);
    lab.start_coordinator(0);
    let harness = lab.block_on(async {
        let cfg = ContainerdConfig::new(ctd.socket(), &namespace, ctd.dir().join("harness"));
        let rt = ContainerdRuntime::connect(cfg).await.unwrap();
        rt.import_image(&archive).await.unwrap();
        rt
    });
    let mut spec = AgentSpec::process(&name, "zone-a");
    spec.runtime = vec![
        "--runtime".into(),
        "containerd".into(),
        "--containerd-socket".into(),
        ctd.socket().display().to_string(),
        "--namespace".into(),
        namespace.clone(),
        "--log-max-bytes".into(),
        CAP.to_string(),
        "--process-shim".into(),
        common::SHIM.into(),
    ];
    let agent = lab.start_agent(spec);
    let agent_log = lab.agents[agent].as_ref().unwrap().log.clone();
    let text = std::fs::read_to_string(&agent_log).unwrap();
    assert!(text.contains("image GC on"), "{text}");
    eprintln!("[{:>5.1}s] agent running", started.elapsed().as_secs_f64());

    let config = lab.path("ctl.yaml");
    std::fs::write(
        &config,
        format!(
            "currentContext: lab\ncontexts:\n  - name: lab\n    endpoints: [\"{}\"]\n    \
             credentials: c0/admin.pem\n",
            lab.api(0)
        ),
    )
    .unwrap();
    let client = lab.client(&lab.apis());
    lab.block_on(client.create_workload(MANIFEST)).unwrap();

    // The whole output went through the logger; the API serves the newest lines.
    let logs = lab.wait(
        "the container's last line in `workload logs`",
        Duration::from_secs(40),
        Duration::from_millis(300),
        || {
            let out = ctl(&config, &["workload", "logs", "chatty"]);
            let t = String::from_utf8_lossy(&out.stdout).into_owned();
            if out.status.success() && t.ends_with("last-line\n") {
                Ok(t)
            } else {
                Err(format!(
                    "{} bytes, ends {:?}; stderr {}",
                    t.len(),
                    &t[t.len().saturating_sub(60)..],
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        },
    );
    eprintln!(
        "[{:>5.1}s] logs served: {} bytes",
        started.elapsed().as_secs_f64(),
        logs.len()
    );
    let written: u64 = (0..LINES)
        .map(|i| {
            format!(
                "line {i} of a container that writes much more than its log may keep ........\n"
            )
            .len() as u64
        })
        .sum::<u64>()
        + "last-line\n".len() as u64;
    assert!(written > 3 * CAP, "the container writes {written} bytes");
    assert!(
        logs.contains(&format!("line {} of", LINES - 1)),
        "{}",
        &logs[logs.len().saturating_sub(300)..]
    );
    assert!(
        !logs.contains("line 0 of"),
        "the oldest lines were rotated out"
    );
    assert!(
        (logs.len() as u64) <= CAP,
        "{} bytes served, more than the cap",
        logs.len()
    );
    assert!(
        (logs.len() as u64) >= CAP / 4,
        "only {} bytes served",
        logs.len()
    );

    // On disk: the container's log files together stay under the cap.
    let files = log_files(
        &lab.path(&format!("a-{name}"))
            .join("containerd")
            .join("logs"),
    );
    let total: u64 = files.iter().map(|(_, n)| n).sum();
    eprintln!(
        "[{:>5.1}s] {written} bytes written, {total} bytes on disk in {} files",
        started.elapsed().as_secs_f64(),
        files.len()
    );
    assert!(!files.is_empty(), "no log files");
    assert!(total <= CAP, "{total} bytes on disk: {files:?}");
    assert!(files.len() >= 2, "the log rotated: {files:?}");

    // A stopped agent leaves the running container and its cgroup alone.
    let running = |lab: &Lab| -> Vec<String> {
        lab.block_on(harness.list())
            .unwrap()
            .into_iter()
            .filter(|c| c.state == ContainerState::Running)
            .map(|c| c.id.0)
            .collect()
    };
    let before = running(&lab);
    assert_eq!(before.len(), 1, "{before:?}");
    let code = lab.agents[agent]
        .take()
        .unwrap()
        .sigterm(Duration::from_secs(15));
    assert_eq!(code, 0, "{}", std::fs::read_to_string(&agent_log).unwrap());
    assert_eq!(running(&lab), before, "the container kept running");
    assert!(
        !cgroup_dirs(&cgroup).is_empty(),
        "the running container's cgroup {cgroup} was kept"
    );

    // Clean up through containerd; the guard removes the then empty cgroups.
    lab.block_on(async {
        for id in harness.list().await.unwrap() {
            harness.stop(&id.id, 0).await.unwrap();
            harness.remove(&id.id).await.unwrap();
        }
    });
    eprintln!("[{:>5.1}s] done", started.elapsed().as_secs_f64());
}
