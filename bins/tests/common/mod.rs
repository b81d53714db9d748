//! Shared by the real-process tests of the reference daemons: free loopback ports, child
//! processes killed when dropped (a failing test leaves nothing running), a lab of
//! coordinators (`init`, `join`, `run`) and agents (`join`, `run`) in one temp dir, and an admin
//! client of the public API.
//!
//! ```text
//!  Lab ─ dir/ c0 c1 c2 (coordinator data dirs)  a-<name> (agent data dirs)  *.log (stderr)
//!      ─ coordinator i: --listen 127.0.0.1:base_i (base_i = base + 10 i; API base_i + 3)
//!      ─ Proc: a child, SIGKILLed and reaped on drop
//! ```
#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const COORDINATOR: &str = env!("CARGO_BIN_EXE_cloudless-coordinator");
pub const AGENT: &str = env!("CARGO_BIN_EXE_cloudless-agent");
pub const SHIM: &str = env!("CARGO_BIN_EXE_cloudless-agent-shim");

/// Ports between coordinators' bases (each uses base..base+3).
pub const BASE_STRIDE: u16 = 10;

/// Where [`free_bases`] looks: from 20 000 up to the start of the kernel's ephemeral range
/// (`ip_local_port_range`), so that no outgoing connection of this or another process (which
/// binds an ephemeral port) can take a chosen port between the check and the daemon's bind.
fn port_window() -> (u16, u16) {
    let lo = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse::<u16>().ok());
    match lo {
        // Room for a few thousand blocks below the ephemeral range.
        Some(lo) if lo >= 22_000 => (20_000, lo),
        _ => (20_000, 60_000),
    }
}

/// Blocks handed out by [`free_bases`] in this test process: the tests of one binary run in
/// parallel and each checks its ports free before its daemons bind them, so two of them could
/// otherwise pick the same still-free block.
static TAKEN: std::sync::Mutex<Vec<(u16, u16)>> = std::sync::Mutex::new(Vec::new());

/// `n` base ports, `BASE_STRIDE` apart, with every port of the block free for UDP and TCP on
/// loopback, below the ephemeral port range and not handed out before in this process.
pub fn free_bases(n: usize) -> Vec<u16> {
    let span = u16::try_from(n).unwrap() * BASE_STRIDE;
    let (lo, hi) = port_window();
    let room = u64::from(hi - lo - span);
    let seed = u64::from(std::process::id()) * 6151
        + u64::from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos(),
        );
    let mut taken = TAKEN.lock().unwrap_or_else(|p| p.into_inner());
    for i in 0..500u64 {
        let base = lo + u16::try_from((seed + i * 104_729) % room).unwrap();
        let end = base + span;
        if taken.iter().any(|&(b, e)| base < e && b < end) {
            continue;
        }
        let all_free = (0..span).all(|o| {
            let a = SocketAddr::from(([127, 0, 0, 1], base + o));
            UdpSocket::bind(a).is_ok() && TcpListener::bind(a).is_ok()
        });
        if all_free {
            taken.push((base, end));
            return (0..n)
                .map(|i| base + u16::try_from(i).unwrap() * BASE_STRIDE)
                .collect();
        }
    }
    panic!("no free port range");
}

/// A free UDP port on loopback for a daemon to bind later: from [`free_bases`]' window (below
/// the ephemeral range, never handed out twice in this process), not an ephemeral port that
/// any outgoing connection could take before the daemon binds it.
pub fn free_udp_port() -> u16 {
    free_bases(1)[0]
}

/// `program` without the caller's `CLOUDLESS_*` settings, logging at info (or
/// `CLOUDLESS_TEST_LOG`).
pub fn command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for (k, _) in std::env::vars() {
        if k.starts_with("CLOUDLESS_") {
            cmd.env_remove(k);
        }
    }
    // CLOUDLESS_TEST_LOG overrides the daemons' log filter (e.g. for a debugging run).
    let filter =
        std::env::var("CLOUDLESS_TEST_LOG").unwrap_or_else(|_| "info,openraft=warn".to_owned());
    cmd.env("CLOUDLESS_LOG", filter);
    cmd
}

/// A child process with its stderr in a log file; SIGKILLed and reaped when dropped.
pub struct Proc {
    child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn spawn(program: &str, args: &[String], log: &Path) -> Self {
        let f = std::fs::File::create(log).unwrap();
        let child = command(program)
            .args(args)
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap();
        Self {
            child,
            log: log.to_owned(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// `kill -9` and reap.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then the exit code (killed and a panic after `limit`).
    pub fn sigterm(&mut self, limit: Duration) -> i32 {
        let ok = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -TERM {}", self.pid());
        let deadline = Instant::now() + limit;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code().unwrap_or(-1);
            }
            if Instant::now() > deadline {
                self.kill9();
                panic!("{} did not stop within {limit:?}", self.log.display());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Waits until `log` contains `needle`.
pub fn wait_log(log: &Path, needle: &str, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{needle:?} not in {} within {limit:?}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `log` says "coordinator running" (`Ok`), or `p` exited first (`Err` with its
/// log); panics after `limit`.
fn wait_running(p: &mut Proc, log: &Path, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains("coordinator running") {
            return Ok(());
        }
        if !p.running() {
            // Whatever it wrote before it exited.
            return Err(std::fs::read_to_string(log).unwrap_or(text));
        }
        assert!(
            Instant::now() < deadline,
            "\"coordinator running\" not in {} within {limit:?}:\n{text}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `f` every `every` until it returns `Some` or `limit` passes (then panics with `what`
/// and the last value `f` described).
pub fn wait_for<T>(
    what: &str,
    limit: Duration,
    every: Duration,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) => assert!(
                Instant::now() < deadline,
                "{what}: not within {limit:?}; last: {last}"
            ),
        }
        std::thread::sleep(every);
    }
}

/// How an agent runs.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub name: String,
    pub zone: String,
    /// Runtime flags (`--runtime process --process-shim ...`, or containerd's).
    pub runtime: Vec<String>,
    /// `--listen` (default `127.0.0.1:0`).
    pub listen: String,
}

impl AgentSpec {
    /// An agent on the process runtime.
    pub fn process(name: &str, zone: &str) -> Self {
        Self {
            name: name.to_owned(),
            zone: zone.to_owned(),
            runtime: vec![
                "--runtime".into(),
                "process".into(),
                "--process-shim".into(),
                SHIM.into(),
            ],
            listen: "127.0.0.1:0".into(),
        }
    }
}

/// Coordinators and agents of one cluster in a temp dir. Processes go before the directory.
pub struct Lab {
    pub coordinators: Vec<Option<Proc>>,
    pub agents: Vec<Option<Proc>>,
    pub agent_specs: Vec<AgentSpec>,
    pub bases: Vec<u16>,
    pub agent_token: String,
    pub coordinator_token: Option<String>,
    starts: Vec<u32>,
    rt: tokio::runtime::Runtime,
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// `init` of coordinator 0 of cluster `cluster`, with room (and a coordinator token) for
    /// `n` coordinators. Nothing runs yet.
    pub fn init(cluster: &str, n: usize) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let bases = free_bases(n);
        let mut lab = Self {
            coordinators: (0..n).map(|_| None).collect(),
            agents: Vec::new(),
            agent_specs: Vec::new(),
            bases,
            agent_token: String::new(),
            coordinator_token: None,
            starts: vec![0; n],
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
            dir,
        };
        let mut args = vec![
            "init".to_owned(),
            "--data-dir".into(),
            lab.coord_dir(0).display().to_string(),
            "--cluster".into(),
            cluster.into(),
            "--name".into(),
            "coord-0".into(),
            "--listen".into(),
            lab.listen(0),
        ];
        if n > 1 {
            args.push("--coordinator-token".into());
        }
        let out = command(COORDINATOR).args(&args).output().unwrap();
        assert!(
            out.status.success(),
            "init: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).unwrap();
        let mut lines = stdout.lines();
        lab.agent_token = lines.next().unwrap_or_default().to_owned();
        lab.coordinator_token = lines.next().map(str::to_owned);
        assert!(lab.agent_token.starts_with("CLD1-"), "{stdout}");
        lab
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn coord_dir(&self, i: usize) -> PathBuf {
        self.path(&format!("c{i}"))
    }

    /// Control address of coordinator `i`.
    pub fn listen(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.bases[i])
    }

    /// API address of coordinator `i`.
    pub fn api(&self, i: usize) -> String {
        format!("127.0.0.1:{}", self.bases[i] + 3)
    }

    pub fn apis(&self) -> Vec<String> {
        (0..self.bases.len()).map(|i| self.api(i)).collect()
    }

    pub fn admin(&self) -> PathBuf {
        self.coord_dir(0).join("admin.pem")
    }

    /// Coordinator `i`'s member id (from its data dir).
    pub fn node_id(&self, i: usize) -> u64 {
        let text = std::fs::read_to_string(self.coord_dir(i).join("coordinator.json")).unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["node"].as_u64().unwrap()
    }

    /// Which coordinator has member id `id`.
    pub fn coordinator_of(&self, id: u64) -> Option<usize> {
        (0..self.bases.len())
            .find(|&i| self.coord_dir(i).join("coordinator.json").exists() && self.node_id(i) == id)
    }

    /// Starts coordinator `i` (`join` the first time for `i > 0`, else `run`) and waits until
    /// it runs. A joining member keeps asking its peers to add it as a voter while they answer
    /// Unavailable (up to 60 s, in the daemon), so the wait is longer than that.
    pub fn start_coordinator(&mut self, i: usize) {
        let log = self.spawn_coordinator(i);
        let p = self.coordinators[i].as_mut().unwrap();
        if let Err(text) = wait_running(p, &log, Duration::from_secs(90)) {
            panic!(
                "coordinator {i} exited before it ran ({}):\n{text}",
                log.display()
            );
        }
    }

    /// Spawns coordinator `i` (`join` the first time for `i > 0`, else `run`); its log file.
    fn spawn_coordinator(&mut self, i: usize) -> PathBuf {
        let joined = self.coord_dir(i).join("coordinator.json").exists();
        let mut args: Vec<String> = if i > 0 && !joined {
            let token = self
                .coordinator_token
                .clone()
                .expect("Lab::init with n > 1 has a coordinator token");
            vec![
                "join".into(),
                "--token".into(),
                token,
                "--peer".into(),
                (0..self.bases.len())
                    .filter(|&j| j != i && self.coordinators[j].is_some())
                    .map(|j| self.listen(j))
                    .collect::<Vec<_>>()
                    .join(","),
            ]
        } else {
            vec!["run".into()]
        };
        args.extend([
            "--data-dir".into(),
            self.coord_dir(i).display().to_string(),
            "--name".into(),
            format!("coord-{i}"),
            "--listen".into(),
            self.listen(i),
        ]);
        self.starts[i] += 1;
        let log = self.path(&format!("c{i}-{}.log", self.starts[i]));
        self.coordinators[i] = Some(Proc::spawn(COORDINATOR, &args, &log));
        log
    }

    /// `kill -9` of coordinator `i`.
    pub fn kill_coordinator(&mut self, i: usize) {
        if let Some(mut p) = self.coordinators[i].take() {
            p.kill9();
        }
    }

    fn agent_args(&self, cmd: &str, spec: &AgentSpec) -> Vec<String> {
        let mut v: Vec<String> = vec![
            cmd.into(),
            "--data-dir".into(),
            self.path(&format!("a-{}", spec.name)).display().to_string(),
            "--name".into(),
            spec.name.clone(),
            "--zone".into(),
            spec.zone.clone(),
            "--listen".into(),
            spec.listen.clone(),
        ];
        for i in 0..self.bases.len() {
            v.extend(["--coordinator".into(), self.listen(i)]);
        }
        v.extend(spec.runtime.iter().cloned());
        if cmd == "join" {
            v.extend(["--token".into(), self.agent_token.clone()]);
        }
        v
    }

    /// `cloudless-agent join` then `run` for `spec`; its index. Waits for "agent running".
    /// The join is retried for a while (a cluster that just changed membership may refuse it
    /// as Unavailable until its leader hears from a quorum).
    pub fn start_agent(&mut self, spec: AgentSpec) -> usize {
        let join = self.agent_args("join", &spec);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = command(AGENT).args(&join).output().unwrap();
            if out.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "agent join {}: {}{}",
                spec.name,
                String::from_utf8_lossy(&out.stderr),
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        let run = self.agent_args("run", &spec);
        let log = self.path(&format!("agent-{}.log", spec.name));
        self.agents.push(Some(Proc::spawn(AGENT, &run, &log)));
        self.agent_specs.push(spec);
        wait_log(&log, "agent running", Duration::from_secs(30));
        self.agents.len() - 1
    }

    pub fn kill_agent(&mut self, i: usize) {
        if let Some(mut p) = self.agents[i].take() {
            p.kill9();
        }
    }

    /// An admin client of the APIs at `endpoints`.
    pub fn client(&self, endpoints: &[String]) -> cloudless::Client {
        let _guard = self.rt.enter();
        cloudless_bins::coordinator::admin_client(endpoints, &self.admin()).unwrap()
    }

    /// A gRPC channel to one API endpoint with the admin credentials (one call = one request:
    /// no retries, no leader hints followed).
    pub fn channel(&self, endpoint: &str) -> tonic::transport::Channel {
        let _guard = self.rt.enter();
        self.client(&[endpoint.to_owned()]).channel().unwrap()
    }

    /// [`wait_for`] that adds the lab's logs to the failure message.
    pub fn wait<T>(
        &self,
        what: &str,
        limit: Duration,
        every: Duration,
        mut f: impl FnMut() -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + limit;
        loop {
            match f() {
                Ok(v) => return v,
                Err(last) => assert!(
                    Instant::now() < deadline,
                    "{what}: not within {limit:?}; last: {last}{}",
                    self.logs()
                ),
            }
            std::thread::sleep(every);
        }
    }

    /// Runs `f` on the lab's async runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// Every log file of the lab, for failure messages.
    pub fn logs(&self) -> String {
        let mut names: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        names.retain(|p| p.extension().is_some_and(|e| e == "log"));
        names.sort();
        names
            .iter()
            .map(|p| {
                let text = std::fs::read_to_string(p).unwrap_or_default();
                let tail: Vec<&str> = text.lines().rev().take(40).collect();
                let tail: Vec<&str> = tail.into_iter().rev().collect();
                format!("\n--- {}:\n{}", p.display(), tail.join("\n"))
            })
            .collect()
    }
}

impl Lab {
    /// Kills the agents and removes their empty cgroups (`cloudless-agent-<name>`, which a
    /// killed agent cannot remove itself). Cgroups that still hold processes stay: the tests
    /// that run containers clean those up with their containerd.
    pub fn remove_agent_cgroups(&mut self) {
        for a in &mut self.agents {
            if let Some(mut p) = a.take() {
                p.kill9();
            }
        }
        for spec in &self.agent_specs {
            cloudless_bins::agent::cgroups::remove_empty(
                Path::new(cloudless_bins::agent::cgroups::CGROUP_ROOT),
                &format!("cloudless-agent-{}", spec.name),
            );
        }
    }
}

impl Drop for Lab {
    /// On a failure with `CLOUDLESS_TEST_KEEP_LOGS=DIR` set, the lab's logs are copied to
    /// `DIR/<test process id>/` before the temp dir goes.
    fn drop(&mut self) {
        self.remove_agent_cgroups();
        let Some(keep) = std::env::var_os("CLOUDLESS_TEST_KEEP_LOGS") else {
            return;
        };
        if !std::thread::panicking() {
            return;
        }
        let to = PathBuf::from(keep).join(std::process::id().to_string());
        let _ = std::fs::create_dir_all(&to);
        if let Ok(entries) = std::fs::read_dir(self.dir.path()) {
            for e in entries.flatten() {
                let p = e.path();
                if p.extension().is_some_and(|x| x == "log")
                    && let Some(name) = p.file_name()
                {
                    let _ = std::fs::copy(&p, to.join(name));
                }
            }
        }
        eprintln!("lab logs kept in {}", to.display());
    }
}
