//! Shared by the `cloudlessctl` tests: a test cluster CA, admin credentials on disk, a
//! coordinator on `MemConsensus` with the public API on 127.0.0.1 (real TLS), a config file
//! with one context, and a runner for the real `cloudlessctl` binary.
#![allow(dead_code, unreachable_pub, missing_docs)]
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use cloudless::api::{self, ApiConfig, ApiServer, ApiTls};
use cloudless::coordinator::{Coordinator, CoordinatorConfig, CoordinatorDeps, CoordinatorHandle};
use cloudless_core::clock::SystemClock;
use cloudless_core::consensus::Consensus;
use cloudless_core::ids::NodeId;
use cloudless_core::testing::consensus::{MemConsensus, MemConsensusConfig};
use cloudless_core::transport::{PeerIdentity, Role};
use cloudless_net::identity::{ClusterCa, NodeCredentials, NodeKey, RevokedNodes};
use cloudless_sched::{SchedulerConfig, WeightedScheduler};

pub const CLUSTER: &str = "ctl-test";

pub fn creds(ca: &ClusterCa, role: Role, node: u64) -> NodeCredentials {
    let key = NodeKey::generate().expect("key");
    let identity = PeerIdentity {
        cluster: ca.cluster().to_owned(),
        role,
        node: NodeId(node),
    };
    let cert = ca
        .issue(
            &key.csr().expect("csr"),
            &identity,
            SystemTime::now(),
            Duration::from_secs(3600),
        )
        .expect("issue");
    NodeCredentials::new(&key, cert, ca.cert().clone()).expect("credentials")
}

/// Writes `node.pem` (cert + CA) and `node.key` (0600) into `dir`.
pub fn save_creds(creds: &NodeCredentials, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    creds.save(dir).expect("save credentials");
}

/// A running API server and a directory with a config file pointing at it.
pub struct Cluster {
    pub ca: ClusterCa,
    pub coordinator: CoordinatorHandle,
    pub server: ApiServer,
    pub dir: tempfile::TempDir,
}

impl Cluster {
    pub async fn start() -> Self {
        let ca = ClusterCa::init(CLUSTER, SystemTime::now()).expect("ca");
        let mem = MemConsensus::with_config(MemConsensusConfig::default().with_id(NodeId(1)))
            .expect("consensus");
        let consensus: Arc<dyn Consensus> = Arc::new(mem);
        let scheduler = WeightedScheduler::new(SchedulerConfig::default()).expect("scheduler");
        let coordinator = Coordinator::start(
            CoordinatorConfig::default(),
            CoordinatorDeps {
                node: NodeId(1),
                consensus: Arc::clone(&consensus),
                scheduler: Arc::new(scheduler),
                clock: Arc::new(SystemClock),
            },
        )
        .await
        .expect("coordinator starts");
        let tls = ApiTls {
            credentials: creds(&ca, Role::Coordinator, 1),
            revoked: RevokedNodes::new(),
        };
        let config = ApiConfig::new("127.0.0.1:0".parse().unwrap(), tls);
        let server = api::serve(config, consensus, Arc::new(SystemClock))
            .await
            .expect("api server starts");
        let dir = tempfile::tempdir().unwrap();
        save_creds(&creds(&ca, Role::Admin, 0), &dir.path().join("admin"));
        let c = Self {
            ca,
            coordinator,
            server,
            dir,
        };
        c.write_config(
            "config.yaml",
            &format!(
                "currentContext: test\ncontexts:\n  - name: test\n    endpoints: [\"{}\"]\n    cert: admin/node.pem\n    key: admin/node.key\n    namespace: demo\n",
                c.addr()
            ),
        );
        c
    }

    pub fn addr(&self) -> String {
        self.server.local_addr().to_string()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn write_config(&self, name: &str, text: &str) -> PathBuf {
        let p = self.path(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Runs `cloudlessctl` with the default config file.
    pub async fn ctl(&self, args: &[&str]) -> Run {
        self.ctl_with(&self.path("config.yaml"), args).await
    }

    /// Runs `cloudlessctl` with `config` as its config file.
    pub async fn ctl_with(&self, config: &Path, args: &[&str]) -> Run {
        let home = self.dir.path().to_owned();
        run_ctl(Some(config.to_owned()), home, args).await
    }
}

/// Runs the binary off the async runtime (the server keeps serving meanwhile).
pub async fn run_ctl(config: Option<PathBuf>, home: PathBuf, args: &[&str]) -> Run {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let shown = args.join(" ");
    let out = tokio::task::spawn_blocking(move || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_cloudlessctl"));
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("CLOUDLESS") {
                cmd.env_remove(k);
            }
        }
        cmd.env("HOME", &home).env_remove("XDG_CONFIG_HOME");
        if let Some(c) = config {
            cmd.env("CLOUDLESSCTL_CONFIG", c);
        }
        cmd.args(&args).output().expect("cloudlessctl runs")
    });
    let out = tokio::time::timeout(Duration::from_secs(30), out)
        .await
        .expect("cloudlessctl finishes within 30 s")
        .expect("join");
    Run::new(shown, out)
}

/// What a run printed and returned.
pub struct Run {
    pub args: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn new(args: String, out: Output) -> Self {
        Self {
            args,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Asserts success; returns stdout.
    pub fn ok(&self) -> &str {
        assert_eq!(
            self.code, 0,
            "cloudlessctl {} failed:\nstdout: {}\nstderr: {}",
            self.args, self.stdout, self.stderr
        );
        &self.stdout
    }

    /// Asserts the exit code; returns stderr.
    pub fn fails_with(&self, code: i32) -> &str {
        assert_eq!(
            self.code, code,
            "cloudlessctl {}: expected exit {code}\nstdout: {}\nstderr: {}",
            self.args, self.stdout, self.stderr
        );
        &self.stderr
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.ok()).unwrap_or_else(|e| {
            panic!(
                "cloudlessctl {}: stdout is not JSON ({e}):\n{}",
                self.args, self.stdout
            )
        })
    }
}

pub fn workload_manifest(name: &str, image: &str, replicas: u32) -> String {
    format!(
        "apiVersion: cloudless.dev/v1\nkind: Workload\nmetadata:\n  name: {name}\n  namespace: demo\n  labels:\n    app: {name}\nspec:\n  image: {image}\n  replicas: {replicas}\n"
    )
}
