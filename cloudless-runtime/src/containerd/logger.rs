//! The rotating log writer the shim runs for each container (`binary://` stdio in containerd):
//! it drains the container's stdout (fd 3) and stderr (fd 4) into the log, rotating its files so
//! that at most `limit` bytes of the newest output are kept (see [`crate::capped_log`]) — it
//! keeps reading, so the container never blocks on a full pipe. It holds an exclusive lock on
//! `<log>.lock` while it runs, so the runtime can wait for the last bytes after the task is
//! deleted. Read offsets are logical (bytes since the container started), so they stay valid
//! across rotations.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::capped_log::{self, RotatingLog};

/// Arguments of the logger (from the `binary://` URI's query, in any order).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggerArgs {
    /// The log file.
    pub file: PathBuf,
    /// Bytes kept over all the log's files (the newest output).
    pub limit: u64,
}

impl LoggerArgs {
    /// Parses `key value` pairs (`file`, `limit`), ignoring unknown keys.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let (mut file, mut limit) = (None, None);
        for pair in args.chunks(2) {
            match (pair[0].as_str(), pair.get(1)) {
                ("file", Some(v)) => file = Some(PathBuf::from(v)),
                ("limit", Some(v)) => limit = Some(v.parse().map_err(|_| format!("limit {v:?}"))?),
                _ => {}
            }
        }
        Ok(Self {
            file: file.ok_or("missing file")?,
            limit: limit.ok_or("missing limit")?,
        })
    }
}

/// Percent-encodes `s` for a URI query value.
pub(crate) fn query_escape(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'.' | b'_' | b'-' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The stdio URI making the shim run `logger` for the log file `file` capped at `limit`.
pub(crate) fn uri(logger: &Path, file: &Path, limit: u64) -> String {
    format!(
        "binary://{}?file={}&limit={limit}",
        query_escape(&logger.to_string_lossy()),
        query_escape(&file.to_string_lossy())
    )
}

/// Copies one stream into the sink until EOF; write errors stop writing but not draining.
fn drain(mut input: File, sink: &Arc<Mutex<RotatingLog>>) {
    let mut buf = vec![0; 32 << 10];
    let mut writable = true;
    loop {
        match input.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if writable {
                    let mut s = match sink.lock() {
                        Ok(s) => s,
                        Err(p) => p.into_inner(),
                    };
                    writable = s.write(&buf[..n]).is_ok();
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Runs the logger: lock the log, open it for appending, tell the shim it is ready (fd 5),
/// drain fds 3 and 4 until both close.
pub fn run(args: &LoggerArgs) -> std::io::Result<()> {
    let lock = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(capped_log::lock_path(&args.file))?;
    lock.lock()?;
    let log = RotatingLog::open(&args.file, args.limit)?;
    // The pipes are inherited as fds 3, 4 and 5; opening them through /proc needs no unsafe.
    let stdout = File::open("/proc/self/fd/3")?;
    let stderr = File::open("/proc/self/fd/4")?;
    OpenOptions::new()
        .write(true)
        .open("/proc/self/fd/5")?
        .write_all(b"r")?;
    let sink = Arc::new(Mutex::new(log));
    let other = Arc::clone(&sink);
    let t = std::thread::spawn(move || drain(stderr, &other));
    drain(stdout, &sink);
    let _ = t.join();
    drop(lock);
    Ok(())
}

/// Waits (blocking, up to `patience`) until no logger holds the log `file`'s lock: its last
/// bytes are written.
pub(crate) fn wait_unlocked(file: &Path, patience: std::time::Duration) {
    let Ok(f) = File::open(capped_log::lock_path(file)) else {
        return;
    };
    let deadline = std::time::Instant::now() + patience;
    loop {
        match f.try_lock_shared() {
            Ok(()) => return,
            Err(_) if std::time::Instant::now() >= deadline => return,
            // The logger is finishing its last read and write.
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(5)),
        }
    }
}

/// The logger's `main`: parses `args` (without the program name), runs, and maps errors to an
/// exit code (2: bad arguments), printing them prefixed with `program`. For binaries that
/// ship the logger under another name (e.g. next to an agent).
pub fn logger_main(program: &str, args: &[String]) -> std::process::ExitCode {
    let parsed = match LoggerArgs::parse(args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{program}: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    match run(&parsed) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{program}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| (*x).to_owned()).collect()
    }

    #[test]
    fn parses_pairs_in_any_order() {
        let a = LoggerArgs::parse(&s(&["limit", "10", "file", "/x/y.log"])).expect("args");
        assert_eq!(
            a,
            LoggerArgs {
                file: "/x/y.log".into(),
                limit: 10
            }
        );
        assert!(LoggerArgs::parse(&s(&["file", "/x"])).is_err());
        assert!(LoggerArgs::parse(&s(&["limit", "ten", "file", "/x"])).is_err());
        assert!(LoggerArgs::parse(&s(&["limit"])).is_err());
    }

    #[test]
    fn uri_escapes_paths() {
        let u = uri(Path::new("/usr/bin/cl-logger"), Path::new("/d/a b.log"), 5);
        assert_eq!(u, "binary:///usr/bin/cl-logger?file=/d/a%20b.log&limit=5");
    }
}
