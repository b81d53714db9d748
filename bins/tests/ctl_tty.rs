//! `cloudlessctl`'s progress display: on a terminal `rollout status --watch` and `apply --wait`
//! redraw one status line in place (`\r` + erase-line), ending with the final state; piped,
//! they print plain lines, one per change, with no control characters.
//!
//! The terminal is a real pseudo-terminal from `script` (util-linux, essential on Debian);
//! the API server runs in process (see `ctl_common`).
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod ctl_common;

use std::io::Read;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ctl_common::{Cluster, workload_manifest};

/// The redraw prefix: carriage return, then ANSI "erase the whole line".
const REDRAW: &str = "\r\x1b[2K";

/// A `cloudlessctl` run in the background, its output collected as it arrives. Killed on drop,
/// so a failing assertion never leaves it (or `script`) running.
struct Background {
    child: Child,
    /// What arrived on stdout and on stderr (under `script` both are the terminal: stdout).
    out: [Arc<Mutex<Vec<u8>>>; 2],
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Background {
    /// Runs `cloudlessctl args` with the cluster's config: under a pseudo-terminal when `tty`
    /// (stdout and stderr both on the terminal), else with both piped into one buffer.
    fn start(c: &Cluster, tty: bool, args: &[&str]) -> Self {
        let ctl = env!("CARGO_BIN_EXE_cloudlessctl");
        let mut cmd = if tty {
            let script = which("script").unwrap_or_else(|| {
                panic!(
                    "`script` (util-linux) is needed to run cloudlessctl under a pseudo-terminal"
                )
            });
            let line = std::iter::once(ctl)
                .chain(args.iter().copied())
                .map(shell_quote)
                .collect::<Vec<_>>()
                .join(" ");
            let mut cmd = Command::new(script);
            // -q quiet, -f flush as written, -e exit with the child's code, -c the command;
            // the typescript goes to /dev/null, the terminal output to our stdout.
            cmd.args(["-qfec", &line, "/dev/null"]);
            cmd
        } else {
            let mut cmd = Command::new(ctl);
            cmd.args(args);
            cmd
        };
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CLOUDLESS") {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOME", c.dir.path())
            .env_remove("XDG_CONFIG_HOME")
            .env("CLOUDLESSCTL_CONFIG", c.path("config.yaml"))
            .env("TERM", "xterm")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("cloudlessctl starts");
        let out: [Arc<Mutex<Vec<u8>>>; 2] = [Arc::default(), Arc::default()];
        let mut readers = Vec::new();
        let pipes: [Box<dyn Read + Send>; 2] = [
            Box::new(child.stdout.take().unwrap()),
            Box::new(child.stderr.take().unwrap()),
        ];
        for (mut pipe, out) in pipes.into_iter().zip(out.iter().map(Arc::clone)) {
            readers.push(std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    out.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            }));
        }
        Self {
            child,
            out,
            readers,
        }
    }

    /// Everything printed so far, stdout then stderr.
    fn output(&self) -> String {
        let [out, err] = self.streams();
        out + &err
    }

    /// What stdout and stderr received so far.
    fn streams(&self) -> [String; 2] {
        self.out
            .each_ref()
            .map(|b| String::from_utf8_lossy(&b.lock().unwrap()).into_owned())
    }

    /// Waits until the output contains `needle`.
    async fn wait_for_output(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.output().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the output within 20 s:\n{:?}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the exit; returns the status and what stdout and stderr received.
    async fn finish(mut self) -> (ExitStatus, [String; 2]) {
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                Instant::now() < deadline,
                "cloudlessctl did not finish within 30 s:\n{:?}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        (status, self.streams())
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn which(program: &str) -> Option<std::path::PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn apply_file(c: &Cluster, name: &str, replicas: u32) -> String {
    let file = c.write_config(
        &format!("{name}.yaml"),
        &workload_manifest(name, "busybox:1", replicas),
    );
    path_str(&file)
}

fn path_str(p: &Path) -> String {
    p.to_str().expect("temp paths are UTF-8").to_owned()
}

/// The progress states in a terminal's output: the text after each redraw, in order.
fn redrawn_states(out: &str) -> Vec<&str> {
    out.split(REDRAW)
        .skip(1)
        .map(|s| s.split(['\r', '\n']).next().unwrap_or_default())
        .collect()
}

/// `rollout status --watch` of a workload that cannot progress (no agents), then is scaled to
/// zero, which completes it. Returns what stdout and stderr received.
async fn watch_rollout_until_scaled_to_zero(tty: bool) -> [String; 2] {
    let c = Cluster::start().await;
    let file = apply_file(&c, "web", 2);
    c.ctl(&["apply", "-f", &file]).await.ok();

    let watch = Background::start(
        &c,
        tty,
        &[
            "workload",
            "rollout",
            "status",
            "web",
            "--watch",
            "--timeout",
            "25s",
        ],
    );
    watch.wait_for_output("0/2 updated").await;
    c.ctl(&["workload", "scale", "web", "--replicas", "0"])
        .await
        .ok();
    let (status, out) = watch.finish().await;
    assert!(status.success(), "rollout status --watch failed:\n{out:?}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_watch_redraws_one_line_on_a_terminal() {
    let [term, err] = watch_rollout_until_scaled_to_zero(true).await;
    assert_eq!(err, "", "script itself complained");
    let states = redrawn_states(&term);
    assert!(
        states.len() >= 2,
        "expected the first state and the final one redrawn in place:\n{term:?}"
    );
    assert!(states[0].starts_with("demo/web: generation 1"), "{term:?}");
    assert!(states[0].contains("0/2 updated"), "{term:?}");
    assert!(!states[0].ends_with(": complete"), "{term:?}");
    let last = states.last().unwrap();
    assert!(last.contains("0/0 updated"), "{term:?}");
    assert!(last.ends_with(": complete"), "{term:?}");
    // Redraws replace the line: no newline between states, one after the final state.
    let progress = &term[term.find(REDRAW).unwrap()..];
    let final_at = progress.rfind(REDRAW).unwrap();
    assert!(
        !progress[..final_at].contains('\n'),
        "a newline between redraws:\n{term:?}"
    );
    let after = &progress[final_at + REDRAW.len() + last.len()..];
    assert!(
        after.starts_with("\r\n"),
        "no line end after the final state:\n{term:?}"
    );
    // The display ends with the final state (the result, printed once the wait is over).
    let final_line = term.trim_end().rsplit("\r\n").next().unwrap();
    assert!(final_line.ends_with(": complete"), "{term:?}");
    assert!(!final_line.contains('\x1b'), "{term:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollout_status_watch_prints_plain_lines_when_piped() {
    let [stdout, stderr] = watch_rollout_until_scaled_to_zero(false).await;
    for (name, text) in [("stdout", &stdout), ("stderr", &stderr)] {
        assert!(
            !text.contains('\r') && !text.contains('\x1b'),
            "control characters on piped {name}:\n{text:?}"
        );
    }
    // Progress on stderr, one plain line per change.
    let progress: Vec<&str> = stderr.lines().collect();
    assert!(progress.len() >= 2, "{stderr:?}");
    assert!(
        progress
            .iter()
            .all(|l| l.starts_with("demo/web: generation 1: ")),
        "{stderr:?}"
    );
    assert!(progress[0].contains("0/2 updated"), "{stderr:?}");
    assert!(
        progress.last().unwrap().ends_with(": complete"),
        "{stderr:?}"
    );
    assert!(progress.windows(2).all(|w| w[0] != w[1]), "{stderr:?}");
    // The final state alone on stdout, for scripts.
    assert_eq!(stdout.lines().count(), 1, "{stdout:?}");
    assert!(stdout.ends_with(": complete\n"), "{stdout:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_wait_shows_progress_on_a_terminal_and_plain_lines_when_piped() {
    let c = Cluster::start().await;
    // Zero replicas: complete as soon as the coordinator has observed the generation.
    let file = apply_file(&c, "idle", 0);

    let (status, [term, _]) = Background::start(&c, true, &["apply", "-f", &file, "--wait"])
        .finish()
        .await;
    assert!(
        status.success(),
        "apply --wait on a terminal failed:\n{term:?}"
    );
    assert!(term.contains("workload/demo/idle created"), "{term:?}");
    let states = redrawn_states(&term);
    let last = states
        .last()
        .unwrap_or_else(|| panic!("no redraw:\n{term:?}"));
    assert!(last.starts_with("demo/idle: generation 1"), "{term:?}");
    assert!(last.ends_with(": complete"), "{term:?}");
    assert!(term.ends_with(": complete\r\n"), "{term:?}");

    let (status, [stdout, stderr]) =
        Background::start(&c, false, &["apply", "-f", &file, "--wait"])
            .finish()
            .await;
    assert!(status.success(), "piped apply --wait failed:\n{stderr:?}");
    for text in [&stdout, &stderr] {
        assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
    }
    assert_eq!(stdout, "workload/demo/idle unchanged\n");
    let last = stderr
        .lines()
        .last()
        .unwrap_or_else(|| panic!("no progress line:\n{stderr:?}"));
    assert!(last.starts_with("demo/idle: generation 1: "), "{stderr:?}");
    assert!(last.ends_with(": complete"), "{stderr:?}");
}
