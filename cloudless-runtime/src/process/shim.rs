//! `cloudless-process-shim`: the small program between the agent and a replica's process, so
//! the process outlives the agent and its exit code and output are never lost.
//!
//! ```text
//! agent ──spawn──▶ shim launch <dir>      setsid (new session: no terminal, no agent group),
//!                     │                   spawns the supervisor, relays its first line, exits
//!                     └─▶ shim supervise <dir>   (re-parented to init: not the agent's child)
//!                            flock shim.lock; pipe; spawn in a new process group:
//!                            └─▶ shim run <dir>   join the cgroup, no-new-privileges,
//!                                   exec argv     (uid/gid, env, cwd) ── same pid
//!                            started.json ─ "started <pid>" ─ drain pipe ▶ capped output.log
//!                            wait ─ SIGKILL what is left of the group/cgroup ─ exit.json ─ unlock
//! agent exec ─▶ shim run <dir> --exec <argv...>  same environment, cgroup and user
//! ```

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Duration;

use rustix::process::Signal;

use super::plan::Plan;
use super::record::{self, ExitRecord, Started};
use super::signal::kill_group;
use crate::capped_log::RotatingLog;

/// How long the supervisor waits for the last output after the process exited (processes that
/// escaped the group and cgroup may hold the pipe open for ever).
const DRAIN_PATIENCE: Duration = Duration::from_secs(2);

/// Entry point of the shim binary; `args` excludes the program name.
pub fn shim_main(args: &[String]) -> ExitCode {
    let result = match args {
        [stage, dir] if stage == "launch" => launch(Path::new(dir)),
        [stage, dir] if stage == "supervise" => supervise(Path::new(dir)),
        [stage, dir] if stage == "run" => return run(Path::new(dir), None),
        [stage, dir, flag, argv @ ..] if stage == "run" && flag == "--exec" && !argv.is_empty() => {
            return run(Path::new(dir), Some(argv.to_vec()));
        }
        _ => Err(
            "usage: cloudless-process-shim launch|supervise|run <replica-dir> [--exec argv...]"
                .to_owned(),
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloudless-process-shim: {e}");
            ExitCode::FAILURE
        }
    }
}

fn self_exe() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| format!("own executable: {e}"))
}

fn open_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
}

/// Stage 1: leave the agent's session and process group, start the supervisor, relay its
/// report (`started <pid>` or `error <why>`), exit.
fn launch(dir: &Path) -> Result<(), String> {
    rustix::process::setsid().map_err(|e| format!("setsid: {e}"))?;
    let err = open_private(&dir.join(record::SHIM_ERR))
        .map_err(|e| format!("{}: {e}", record::SHIM_ERR))?;
    let mut child = Command::new(self_exe()?)
        .arg("supervise")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(err)
        .spawn()
        .map_err(|e| format!("spawn the supervisor: {e}"))?;
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| format!("read the supervisor's report: {e}"))?;
    }
    print!("{line}");
    let _ = std::io::stdout().flush();
    if line.starts_with("started ") {
        Ok(())
    } else {
        // The supervisor failed before starting anything; reap it so it leaves no zombie.
        let _ = child.wait();
        Err(format!("the supervisor reported: {}", line.trim()))
    }
}

fn drain(mut input: impl Read, mut sink: RotatingLog) {
    let mut buf = vec![0; 32 << 10];
    let mut writable = true;
    loop {
        match input.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if writable {
                    writable = sink.write(&buf[..n]).is_ok();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Waits (up to 5 s) until the run stage `pid` has executed the workload (its executable is no
/// longer the shim) or exited, so that `start` returns with the process in its cgroup.
fn wait_exec(pid: u32, shim: &Path) {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        match std::fs::read_link(format!("/proc/{pid}/exe")) {
            Ok(exe) if exe != shim => return,
            Ok(_) => {}
            // No executable: exited (a zombie) or gone; anything else is a passing state.
            Err(_) if record::proc_stat(pid).is_none_or(|s| s.state == 'Z') => return,
            Err(_) => {}
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Stage 2: run the process, record its start, drain its output, record its exit.
fn supervise(dir: &Path) -> Result<(), String> {
    let lock = open_private(&dir.join(record::LOCK)).map_err(|e| format!("lock file: {e}"))?;
    lock.lock().map_err(|e| format!("lock: {e}"))?;
    let report = |line: &str| {
        println!("{line}");
        let _ = std::io::stdout().flush();
    };
    let plan: Plan = match record::read_json(dir, record::PLAN) {
        Ok(Some(p)) => p,
        Ok(None) => {
            report("error no plan.json");
            return Err("no plan.json".into());
        }
        Err(e) => {
            report(&format!("error plan.json: {e}"));
            return Err(format!("plan.json: {e}"));
        }
    };
    let mut log = RotatingLog::open(&dir.join(record::LOG), plan.log_max_bytes)
        .map_err(|e| format!("log: {e}"))?;
    if let (true, None, Some(note)) = (plan.limits.any(), &plan.cgroup, &plan.limits_note) {
        // Said once, in the log, where the operator reading it will see it.
        let _ =
            log.write(format!("[cloudless: running without cgroup limits: {note}]\n").as_bytes());
    }
    let shim = match self_exe() {
        Ok(p) => p,
        Err(e) => {
            report(&format!("error {e}"));
            return Err(e);
        }
    };
    let spawned = (|| {
        let (reader, writer) = std::io::pipe()?;
        // The command (holding the write ends) is dropped at the end of this closure, so the
        // supervisor keeps no write end and sees EOF once the process group is gone.
        let child = Command::new(&shim)
            .arg("run")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(writer.try_clone()?)
            .stderr(writer)
            .process_group(0)
            .spawn()?;
        Ok::<_, std::io::Error>((reader, child))
    })();
    let (reader, mut child) = match spawned {
        Ok(v) => v,
        Err(e) => {
            report(&format!("error spawn: {e}"));
            return Err(format!("spawn: {e}"));
        }
    };
    let pid = child.id();
    wait_exec(pid, &shim);
    let started = Started {
        pid,
        start_ticks: record::proc_stat(pid).map_or(0, |s| s.start_ticks),
        shim_pid: std::process::id(),
        started_at_ms: record::now_ms(),
    };
    if let Err(e) = record::write_json(dir, record::STARTED, &started) {
        kill_group(pid, Signal::KILL);
        let _ = child.wait();
        report(&format!("error started.json: {e}"));
        return Err(format!("started.json: {e}"));
    }
    report(&format!("started {pid}"));

    let sink = log;
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        drain(reader, sink);
        let _ = done_tx.send(());
    });
    let code = match child.wait() {
        Ok(status) => status
            .code()
            .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)),
        Err(e) => {
            eprintln!("cloudless-process-shim: wait: {e}");
            record::LOST_CODE
        }
    };
    let oom_killed = plan.cgroup.as_ref().is_some_and(|cg| cg.oom_kills() > 0);
    // The replica ends with its main process, as a container does with its init: whatever it
    // left behind in its group or cgroup goes too.
    kill_group(pid, Signal::KILL);
    if let Some(cg) = &plan.cgroup {
        cg.kill_all();
    }
    let _ = done_rx.recv_timeout(DRAIN_PATIENCE);
    let exit = ExitRecord {
        code,
        finished_at_ms: record::now_ms(),
        lost: false,
        oom_killed,
    };
    record::write_json(dir, record::EXIT, &exit).map_err(|e| format!("exit.json: {e}"))?;
    drop(lock);
    Ok(())
}

/// Stage 3 (and exec): enter the replica's cgroup, set no-new-privileges, become the program.
fn run(dir: &Path, exec: Option<Vec<String>>) -> ExitCode {
    let fail = |code: u8, msg: String| {
        eprintln!("cloudless-process-shim: {msg}");
        ExitCode::from(code)
    };
    let plan: Plan = match record::read_json(dir, record::PLAN) {
        Ok(Some(p)) => p,
        Ok(None) => return fail(125, "no plan.json".into()),
        Err(e) => return fail(125, format!("plan.json: {e}")),
    };
    if let Some(cg) = &plan.cgroup
        && let Err(e) = cg.join(std::process::id())
    {
        return fail(125, format!("join the cgroup: {e}"));
    }
    if plan.no_new_privs
        && let Err(e) = rustix::thread::set_no_new_privs(true)
    {
        return fail(125, format!("no-new-privileges: {e}"));
    }
    let argv = exec.unwrap_or(plan.argv);
    let Some((program, args)) = argv.split_first() else {
        return fail(125, "empty command".into());
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env_clear()
        .envs(plan.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&plan.cwd);
    if let Some(gid) = plan.gid {
        cmd.gid(gid);
    }
    if let Some(uid) = plan.uid {
        cmd.uid(uid);
    }
    let err = cmd.exec();
    // Shell conventions: 127 for a missing program, 126 for one that cannot run.
    let code = if err.kind() == std::io::ErrorKind::NotFound {
        127
    } else {
        126
    };
    fail(code, format!("cannot run {program:?}: {err}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors() {
        assert_eq!(shim_main(&[]), ExitCode::FAILURE);
        assert_eq!(
            shim_main(&["run".into(), "/x".into(), "--exec".into()]),
            ExitCode::FAILURE
        );
    }
}
