//! Command lines of the daemons (clap). Flags fall back to `CLOUDLESS_*` variables, then to the
//! config file, then to the defaults (see [`crate::config`]).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Result, anyhow};
use clap::{Args, Parser, Subcommand};

use crate::agent::{self, AgentFlags, AgentSettings, RuntimeKind};
use crate::common::Signals;
use crate::coordinator::{self, CoordinatorFlags, CoordinatorSettings, JoinArgs};
use crate::logging::{self, LogFormat};

/// Default log filter (`CLOUDLESS_LOG` overrides it): raft's per-election lines are debug
/// detail for an operator.
pub const DEFAULT_LOG: &str = "info,openraft=warn";

/// Shared logging flag.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log format on stderr (filter: CLOUDLESS_LOG).
    #[arg(long, env = "CLOUDLESS_LOG_FORMAT", value_enum, default_value_t = LogFormat::Human, global = true)]
    pub log_format: LogFormat,
}

/// `cloudless-coordinator`: a Cloudless control-plane member.
#[derive(Debug, Parser)]
#[command(name = "cloudless-coordinator", version, about)]
pub struct CoordinatorCli {
    #[command(subcommand)]
    command: CoordinatorCommand,
    #[command(flatten)]
    log: LogArgs,
}

/// Settings shared by the coordinator commands.
#[derive(Debug, Clone, Args)]
pub struct CoordinatorArgs {
    /// Config file (YAML).
    #[arg(long, env = "CLOUDLESS_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory.
    #[arg(long, env = "CLOUDLESS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Node name (DNS-1123 label; default: host name).
    #[arg(long, env = "CLOUDLESS_NAME")]
    name: Option<String>,
    /// Control address, ip:port (default 0.0.0.0:7400).
    #[arg(long, env = "CLOUDLESS_LISTEN")]
    listen: Option<String>,
    /// Raft address (default: listen port + 1).
    #[arg(long, env = "CLOUDLESS_RAFT_LISTEN")]
    raft_listen: Option<String>,
    /// Enrollment address (default: listen port + 2).
    #[arg(long, env = "CLOUDLESS_ENROLL_LISTEN")]
    enroll_listen: Option<String>,
    /// Public API address (default: listen port + 3).
    #[arg(long, env = "CLOUDLESS_API_LISTEN")]
    api_listen: Option<String>,
    /// Host others reach this coordinator at (default: the listen IP).
    #[arg(long, env = "CLOUDLESS_ADVERTISE_HOST")]
    advertise_host: Option<String>,
    /// File holding the passphrase that locks the CA key.
    #[arg(long, env = "CLOUDLESS_CA_PASSPHRASE_FILE")]
    ca_passphrase_file: Option<PathBuf>,
}

impl CoordinatorArgs {
    fn flags(&self, cluster: Option<String>, admin: Option<PathBuf>) -> CoordinatorFlags {
        CoordinatorFlags {
            config: self.config.clone(),
            data_dir: self.data_dir.clone(),
            cluster,
            name: self.name.clone(),
            listen: self.listen.clone(),
            raft_listen: self.raft_listen.clone(),
            enroll_listen: self.enroll_listen.clone(),
            api_listen: self.api_listen.clone(),
            advertise_host: self.advertise_host.clone(),
            ca_passphrase_file: self.ca_passphrase_file.clone(),
            admin_credentials: admin,
        }
    }
}

/// Admin connection to a running cluster's API.
#[derive(Debug, Clone, Args)]
pub struct AdminArgs {
    /// API addresses (host:port), repeatable.
    #[arg(
        long = "api",
        env = "CLOUDLESS_API",
        value_delimiter = ',',
        required = true
    )]
    api: Vec<String>,
    /// Admin credentials file written by `init`.
    #[arg(long, env = "CLOUDLESS_ADMIN_CREDENTIALS")]
    admin_credentials: PathBuf,
}

#[derive(Debug, Subcommand)]
enum CoordinatorCommand {
    /// Create a new cluster: CA, this coordinator's identity, single-member raft data. Prints
    /// the agent join token on stdout; writes admin credentials to a 0600 file.
    Init {
        #[command(flatten)]
        common: CoordinatorArgs,
        /// Cluster name.
        #[arg(long, env = "CLOUDLESS_CLUSTER")]
        cluster: Option<String>,
        /// Where to write the admin credentials (default <data-dir>/admin.pem).
        #[arg(long, env = "CLOUDLESS_ADMIN_CREDENTIALS")]
        admin_credentials: Option<PathBuf>,
        /// Also print a coordinator join token (second line).
        #[arg(long)]
        coordinator_token: bool,
        /// Lifetime of the printed tokens, in seconds.
        #[arg(long, default_value_t = 86_400)]
        token_ttl_secs: u64,
    },
    /// Run this coordinator from its data dir until SIGTERM/SIGINT.
    Run {
        #[command(flatten)]
        common: CoordinatorArgs,
    },
    /// Join an existing cluster as another coordinator (enroll, receive the CA, become a raft
    /// voter), then run.
    Join {
        #[command(flatten)]
        common: CoordinatorArgs,
        /// Coordinator join token.
        #[arg(long, env = "CLOUDLESS_TOKEN")]
        token: String,
        /// Control address of an existing coordinator, repeatable.
        #[arg(long = "peer", required = true, value_delimiter = ',')]
        peers: Vec<String>,
        /// Enrollment address of the first peer (default: its port + 2).
        #[arg(long)]
        peer_enroll: Option<String>,
    },
    /// Operator snapshots of the cluster state.
    Snapshot {
        #[command(subcommand)]
        op: SnapshotOp,
    },
    /// Show the coordinators' view of the nodes (admin credentials, over the API).
    Status {
        #[command(flatten)]
        admin: AdminArgs,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a join token on a running cluster (admin credentials, over the API).
    Token {
        #[command(flatten)]
        admin: AdminArgs,
        /// `agent` or `coordinator`.
        #[arg(long, default_value = "agent")]
        role: String,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 86_400)]
        ttl_secs: u64,
        /// Uses allowed (default unlimited).
        #[arg(long)]
        max_uses: Option<u32>,
    },
}

#[derive(Debug, Subcommand)]
enum SnapshotOp {
    /// Save the state of a stopped coordinator's data dir to FILE (0600).
    Save {
        /// The snapshot file to create.
        file: PathBuf,
        /// Data directory.
        #[arg(long, env = "CLOUDLESS_DATA_DIR")]
        data_dir: PathBuf,
    },
    /// Restore FILE as the raft data of a new single-member cluster in the data dir.
    Restore {
        /// The snapshot file.
        file: PathBuf,
        #[command(flatten)]
        common: CoordinatorArgs,
    },
}

fn fail(program: &str, e: &anyhow::Error) -> ExitCode {
    eprintln!("{program}: error: {}", one_line(e));
    ExitCode::FAILURE
}

fn one_line(e: &anyhow::Error) -> String {
    format!("{e:#}").replace('\n', " ")
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow!("starting the async runtime: {e}"))
}

/// Entry point of `cloudless-coordinator`.
pub fn coordinator_main() -> ExitCode {
    let cli = CoordinatorCli::parse();
    if let Err(e) = logging::init(cli.log.log_format, DEFAULT_LOG) {
        return fail("cloudless-coordinator", &e);
    }
    let result = runtime().and_then(|rt| rt.block_on(coordinator_command(cli.command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("cloudless-coordinator", &e),
    }
}

async fn run_until_signal(signals: &mut Signals, s: &CoordinatorSettings) -> Result<()> {
    let running = coordinator::run(s).await?;
    let [control, raft, enroll, api] = running.addresses;
    tracing::info!(%control, %raft, %enroll, %api, "coordinator running");
    let sig = signals.wait().await;
    tracing::info!(signal = sig, "shutting down");
    running.shutdown().await;
    tracing::info!("stopped");
    Ok(())
}

async fn coordinator_command(cmd: CoordinatorCommand) -> Result<()> {
    match cmd {
        CoordinatorCommand::Init {
            common,
            cluster,
            admin_credentials,
            coordinator_token,
            token_ttl_secs,
        } => {
            let s = CoordinatorSettings::resolve(common.flags(cluster, admin_credentials))?;
            let out = coordinator::init(
                &s,
                coordinator_token,
                Duration::from_secs(token_ttl_secs.max(1)),
            )
            .await?;
            println!("{}", out.agent_token.as_str());
            if let Some(t) = &out.coordinator_token {
                println!("{}", t.as_str());
            }
            eprintln!(
                "cluster created in {}; admin credentials in {} (mode 0600). The line on stdout is \
                 the agent join token{}.",
                s.data_dir.display(),
                s.admin_credentials.display(),
                if out.coordinator_token.is_some() {
                    ", the second the coordinator join token"
                } else {
                    ""
                }
            );
            Ok(())
        }
        CoordinatorCommand::Run { common } => {
            let s = CoordinatorSettings::resolve(common.flags(None, None))?;
            let mut signals = Signals::install()?;
            run_until_signal(&mut signals, &s).await
        }
        CoordinatorCommand::Join {
            common,
            token,
            peers,
            peer_enroll,
        } => {
            let s = CoordinatorSettings::resolve(common.flags(None, None))?;
            let mut signals = Signals::install()?;
            coordinator::join_setup(
                &s,
                &JoinArgs {
                    token,
                    peers,
                    peer_enroll,
                },
            )
            .await?;
            run_until_signal(&mut signals, &s).await
        }
        CoordinatorCommand::Snapshot { op } => match op {
            SnapshotOp::Save { file, data_dir } => {
                let info = coordinator::snapshot_save(&data_dir, &file).await?;
                println!(
                    "saved revision {} ({} bytes) to {}",
                    info.revision.0,
                    info.bytes,
                    file.display()
                );
                Ok(())
            }
            SnapshotOp::Restore { file, common } => {
                let s = CoordinatorSettings::resolve(common.flags(None, None))?;
                let info = coordinator::snapshot_restore(&s, &file)?;
                println!(
                    "restored revision {} into {} as a single-member cluster",
                    info.revision.0,
                    s.data_dir.display()
                );
                Ok(())
            }
        },
        CoordinatorCommand::Status { admin, json } => {
            let client = coordinator::admin_client(&admin.api, &admin.admin_credentials)?;
            let nodes = client.list_nodes().await.map_err(|e| anyhow!("api: {e}"))?;
            if !json {
                println!(
                    "{:<6} {:<24} {:<10} {:<12} {:<12}",
                    "ID", "NAME", "LIVENESS", "REGION", "ZONE"
                );
            }
            for n in nodes {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({
                            "id": n.id, "name": n.name, "liveness": n.liveness,
                            "schedulability": n.schedulability, "region": n.region,
                            "zone": n.zone, "labels": n.labels,
                        })
                    );
                } else {
                    println!(
                        "{:<6} {:<24} {:<10} {:<12} {:<12}",
                        n.id, n.name, n.liveness, n.region, n.zone
                    );
                }
            }
            Ok(())
        }
        CoordinatorCommand::Token {
            admin,
            role,
            ttl_secs,
            max_uses,
        } => {
            let client = coordinator::admin_client(&admin.api, &admin.admin_credentials)?;
            let r = client
                .create_join_token(&role, Duration::from_secs(ttl_secs), max_uses)
                .await
                .map_err(|e| anyhow!("api: {e}"))?;
            println!("{}", r.token);
            Ok(())
        }
    }
}

/// `cloudless-agent`: a Cloudless worker node.
#[derive(Debug, Parser)]
#[command(name = "cloudless-agent", version, about)]
pub struct AgentCli {
    #[command(subcommand)]
    command: AgentCommand,
    #[command(flatten)]
    log: LogArgs,
}

/// Settings shared by the agent commands.
#[derive(Debug, Clone, Args)]
pub struct AgentArgs {
    /// Config file (YAML).
    #[arg(long, env = "CLOUDLESS_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory.
    #[arg(long, env = "CLOUDLESS_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Node name (DNS-1123 label; default: host name).
    #[arg(long, env = "CLOUDLESS_NAME")]
    name: Option<String>,
    /// Coordinator control address (host:port), repeatable or comma-separated.
    #[arg(
        long = "coordinator",
        env = "CLOUDLESS_COORDINATORS",
        value_delimiter = ','
    )]
    coordinators: Vec<String>,
    /// Enrollment address (default: first coordinator's port + 2).
    #[arg(long, env = "CLOUDLESS_ENROLL")]
    enroll: Option<String>,
    /// Region.
    #[arg(long, env = "CLOUDLESS_REGION")]
    region: Option<String>,
    /// Zone.
    #[arg(long, env = "CLOUDLESS_ZONE")]
    zone: Option<String>,
    /// Label key=value, repeatable.
    #[arg(long = "label", env = "CLOUDLESS_LABELS", value_delimiter = ',')]
    labels: Vec<String>,
    /// Runtime: containerd or process.
    #[arg(long, env = "CLOUDLESS_RUNTIME", value_enum)]
    runtime: Option<RuntimeKind>,
    /// containerd socket (implies --runtime containerd).
    #[arg(long, env = "CLOUDLESS_CONTAINERD_SOCKET")]
    containerd_socket: Option<PathBuf>,
    /// containerd namespace.
    #[arg(long, env = "CLOUDLESS_NAMESPACE")]
    namespace: Option<String>,
    /// Container subnet (CIDR) of this agent's bridge (containerd).
    #[arg(long, env = "CLOUDLESS_SUBNET")]
    subnet: Option<String>,
    /// Bridge name (containerd with --subnet).
    #[arg(long, env = "CLOUDLESS_BRIDGE")]
    bridge: Option<String>,
    /// Address the agent's transport binds (default 0.0.0.0:0).
    #[arg(long, env = "CLOUDLESS_LISTEN")]
    listen: Option<String>,
    /// Path of the process runtime shim (default: next to this executable).
    #[arg(long, env = "CLOUDLESS_PROCESS_SHIM")]
    process_shim: Option<PathBuf>,
    /// Path of the capped container log writer (default: `cloudless-agent-logger` next to this
    /// executable).
    #[arg(long, env = "CLOUDLESS_CONTAINER_LOGGER")]
    container_logger: Option<PathBuf>,
    /// Bytes of log kept per container on the containerd runtime (0: uncapped).
    #[arg(long, env = "CLOUDLESS_LOG_MAX_BYTES")]
    log_max_bytes: Option<u64>,
}

impl AgentArgs {
    fn flags(self) -> AgentFlags {
        AgentFlags {
            config: self.config,
            data_dir: self.data_dir,
            name: self.name,
            coordinators: self.coordinators,
            enroll: self.enroll,
            region: self.region,
            zone: self.zone,
            labels: self.labels,
            runtime: self.runtime,
            containerd_socket: self.containerd_socket,
            namespace: self.namespace,
            subnet: self.subnet,
            bridge: self.bridge,
            listen: self.listen,
            process_shim: self.process_shim,
            container_logger: self.container_logger,
            log_max_bytes: self.log_max_bytes,
        }
    }
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Enroll with a join token (once; the identity is reused afterwards).
    Join {
        #[command(flatten)]
        common: AgentArgs,
        /// Agent join token.
        #[arg(long, env = "CLOUDLESS_TOKEN")]
        token: String,
    },
    /// Run the agent until SIGTERM/SIGINT (containers keep running across restarts).
    Run {
        #[command(flatten)]
        common: AgentArgs,
        /// Join token, used only if this agent has not joined yet.
        #[arg(long, env = "CLOUDLESS_TOKEN")]
        token: Option<String>,
    },
}

/// Entry point of `cloudless-agent`.
pub fn agent_main() -> ExitCode {
    let cli = AgentCli::parse();
    if let Err(e) = logging::init(cli.log.log_format, DEFAULT_LOG) {
        return fail("cloudless-agent", &e);
    }
    let result = runtime().and_then(|rt| rt.block_on(agent_command(cli.command)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail("cloudless-agent", &e),
    }
}

async fn agent_command(cmd: AgentCommand) -> Result<()> {
    match cmd {
        AgentCommand::Join { common, token } => {
            let s = AgentSettings::resolve(common.flags())?;
            let creds = agent::join_cmd(&s, Some(token)).await?;
            println!("joined as {}", creds.identity());
            Ok(())
        }
        AgentCommand::Run { common, token } => {
            let s = AgentSettings::resolve(common.flags())?;
            let mut signals = Signals::install()?;
            let running = agent::run(&s, token).await?;
            tracing::info!(identity = %running.identity, "agent running");
            let sig = signals.wait().await;
            tracing::info!(signal = sig, "shutting down; containers keep running");
            running.shutdown().await;
            tracing::info!("stopped");
            Ok(())
        }
    }
}
