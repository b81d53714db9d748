//! A private containerd for tests: its own root, state, socket and cgroup parent in a temp dir.
//!
//! containerd runs under a small shell supervisor fed through a pipe: `kill` and `start` lines
//! stop and restart containerd (each acknowledged with `ok`), and when the pipe closes (the test
//! process ends, even by a panic) the supervisor kills containerd, its shims and every process
//! in the test's cgroups, unmounts what is left under the temp dir and deletes it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

const SUPERVISOR: &str = r#"
start() { containerd --config "$CLD_DIR/config.toml" >>"$CLD_DIR/containerd.log" 2>&1 & CPID=$!; }
stop() { kill -9 "$CPID" 2>/dev/null; wait "$CPID" 2>/dev/null; }
cleanup() {
  stop
  for p in /proc/[0-9]*; do
    pid=${p#/proc/}
    [ "$pid" = "$$" ] && continue
    if { tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null | grep -qF -- "$CLD_SOCK"; then kill -9 "$pid" 2>/dev/null; fi
  done
  for c in /sys/fs/cgroup/*/"$CLD_CGROUP" /sys/fs/cgroup/"$CLD_CGROUP"; do
    [ -d "$c" ] || continue
    find "$c" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -9 2>/dev/null
  done
  awk -v d="$CLD_DIR" 'index($2, d) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null
  for c in /sys/fs/cgroup/*/"$CLD_CGROUP" /sys/fs/cgroup/"$CLD_CGROUP"; do
    [ -d "$c" ] && find "$c" -depth -type d -exec rmdir {} + 2>/dev/null
  done
  for b in $CLD_BRIDGES; do ip link del "$b" 2>/dev/null; done
  # Outbound NAT rules of containers killed above without their CNI DEL (namespaces t<pid>-<n>).
  iptables -w 5 -t nat -S POSTROUTING 2>/dev/null | grep -F -- "--comment \"cloudless t$PPID-" |
    sed 's/^-A /-D /' | while read -r rule; do eval "iptables -w 5 -t nat $rule" 2>/dev/null; done
  # runc's per-namespace state dirs (namespaces are named t<test pid>-<n>); only empty ones go.
  rmdir /run/containerd/runc/t"$PPID"-* 2>/dev/null
  rm -rf "$CLD_DIR"
}
start
echo ok
while read -r cmd; do
  case "$cmd" in
    kill) stop; echo ok ;;
    start) start; echo ok ;;
  esac
done
cleanup
"#;

/// A running private containerd.
pub struct Containerd {
    dir: PathBuf,
    socket: PathBuf,
    cgroup_parent: String,
    child: Child,
    control: Mutex<Option<(ChildStdin, BufReader<ChildStdout>)>>,
}

fn have(binary: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file()))
}

impl Containerd {
    /// Starts one; `None` (with a message) when containerd or runc is missing outside CI. Under
    /// `CI=true` a missing binary fails the test.
    pub fn start(tag: &str) -> Option<Self> {
        let missing: Vec<&str> = ["containerd", "containerd-shim-runc-v2", "runc"]
            .into_iter()
            .filter(|b| !have(b))
            .collect();
        if !missing.is_empty() {
            let msg = format!(
                "containerd tests need {missing:?} (Debian: apt-get install containerd runc); \
                 scripts/ensure-deps.sh installs them"
            );
            assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
            eprintln!("SKIPPED outside CI: {msg}");
            return None;
        }
        let unique = format!("{tag}-{}", std::process::id());
        let dir = std::env::temp_dir().join(format!("cld-ctd-{unique}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let socket = dir.join("c.sock");
        let cgroup_parent = format!("cloudless-test-{unique}");
        let config = format!(
            r#"version = 2
root = "{root}"
state = "{state}"
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp",
  "io.containerd.internal.v1.tracing"]
[grpc]
  address = "{sock}"
[ttrpc]
  address = "{sock}.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
"#,
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = socket.display(),
        );
        std::fs::write(dir.join("config.toml"), config).expect("config");
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(SUPERVISOR)
            .env("CLD_DIR", &dir)
            .env("CLD_SOCK", &socket)
            .env("CLD_CGROUP", &cgroup_parent)
            .env(
                "CLD_BRIDGES",
                format!("{} {} {}", bridge_name(0), bridge_name(1), bridge_name(2)),
            )
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn the containerd supervisor");
        let stdin = child.stdin.take().expect("stdin");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        stdout.read_line(&mut line).expect("supervisor answers");
        let me = Self {
            dir,
            socket,
            cgroup_parent,
            child,
            control: Mutex::new(Some((stdin, stdout))),
        };
        me.wait_ready();
        Some(me)
    }

    /// The gRPC socket.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A directory for test data (removed with the instance).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The cgroup parent containers must use (cleaned up with the instance).
    pub fn cgroup_parent(&self) -> String {
        format!("/{}", self.cgroup_parent)
    }

    fn command(&self, cmd: &str) {
        let mut guard = self.control.lock().expect("control lock");
        let (stdin, stdout) = guard.as_mut().expect("supervisor running");
        writeln!(stdin, "{cmd}").expect("write to supervisor");
        stdin.flush().expect("flush");
        let mut line = String::new();
        stdout
            .read_line(&mut line)
            .expect("supervisor acknowledges");
        assert_eq!(line.trim(), "ok", "supervisor answer to {cmd}");
    }

    /// Kills containerd (SIGKILL); its shims and containers keep running.
    pub fn kill(&self) {
        self.command("kill");
    }

    /// Starts containerd again and waits until it accepts connections.
    pub fn restart(&self) {
        self.command("start");
        self.wait_ready();
    }

    /// Polls the socket until containerd accepts a connection (deadline 30 s).
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "containerd did not come up; log: {}",
                std::fs::read_to_string(self.dir.join("containerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        // Closing the pipe makes the supervisor clean up; wait for it to finish.
        if let Ok(mut guard) = self.control.lock() {
            guard.take();
        }
        let _ = self.child.wait();
    }
}

/// Bridge `n` (0, 1 or 2: one per simulated agent) of this test process's network tests (deleted by the
/// supervisor's clean-up).
pub fn bridge_name(n: u8) -> String {
    format!("cld{n}t{}", std::process::id() % 100_000)
}

/// A /28 for bridge `n` in 10.(213 + n).0.0/16, picked by the test process id so concurrent test
/// processes rarely meet (4096 choices).
pub fn bridge_subnet(n: u8) -> String {
    let k = std::process::id() % 4096;
    format!("10.{}.{}.{}/28", 213 + u32::from(n), k / 16, (k % 16) * 16)
}

/// Whether IPv4 `addr` lies in `subnet` (`a.b.c.d/len`).
pub fn in_subnet(addr: &str, subnet: &str) -> bool {
    let parse = |s: &str| s.parse::<std::net::Ipv4Addr>().ok().map(u32::from);
    let Some((net, len)) = subnet.split_once('/') else {
        return false;
    };
    match (parse(addr), parse(net), len.parse::<u32>()) {
        (Some(a), Some(n), Ok(len)) if len <= 32 => {
            let mask = u32::MAX.checked_shl(32 - len).unwrap_or(0);
            a & mask == n & mask
        }
        _ => false,
    }
}

/// One containerd per test process, shared by its tests (each test uses its own namespace).
/// Never dropped: the supervisor cleans up when the process exits and the pipe closes.
pub fn shared() -> Option<&'static Containerd> {
    static SHARED: OnceLock<Option<Containerd>> = OnceLock::new();
    SHARED.get_or_init(|| Containerd::start("shared")).as_ref()
}
