//! The command tree (clap derive). Kinds are subcommands (`node`, `workload`, ...), so later
//! kinds (`storage`, `network`, `secret`) slot in as new variants of [`Command`] without
//! touching the others; `apply`/`delete`/`validate` take manifests of every kind.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXAMPLES: &str = "\
Examples:
  cloudlessctl validate -f web.yaml            check manifests offline
  cloudlessctl apply -f manifests/ --wait      create or update, wait for the rollouts
  cloudlessctl workload ls -o wide             list workloads
  cloudlessctl workload describe web -n demo   status, conditions, events, placement reasons
  cloudlessctl workload scale web --replicas 5
  cloudlessctl node drain edge-1
  cloudlessctl -o json node ls | jq '.items[].name'
  cloudlessctl --context prod cluster info

Configuration: ~/.config/cloudless/config.yaml (or $CLOUDLESSCTL_CONFIG) holds contexts with
endpoints and credential paths; CLOUDLESSCTL_ENDPOINT, CLOUDLESSCTL_CREDENTIALS, CLOUDLESSCTL_CERT,
CLOUDLESSCTL_KEY, CLOUDLESSCTL_CA, CLOUDLESSCTL_CONTEXT and CLOUDLESSCTL_NAMESPACE override it.

Exit codes: 0 ok, 1 usage/config/validation, 2 not found, 3 cluster unavailable,
4 permission denied, 5 conflict, 6 not supported by the cluster, 7 timed out.
See docs/cli.md.";

/// `cloudlessctl`: operate a Cloudless cluster.
#[derive(Debug, Parser)]
#[command(name = "cloudlessctl", version, about, after_help = EXAMPLES)]
pub(crate) struct Cli {
    #[command(flatten)]
    pub(crate) global: GlobalArgs,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalArgs {
    /// Output format.
    #[arg(short, long, global = true, value_enum, default_value_t = OutputFormat::Table)]
    pub(crate) output: OutputFormat,
    /// Namespace of workloads (default: the context's, else `default`).
    #[arg(short, long, global = true, env = "CLOUDLESSCTL_NAMESPACE")]
    pub(crate) namespace: Option<String>,
    /// Context of the config file to use (default: its `currentContext`).
    #[arg(long, global = true, env = "CLOUDLESSCTL_CONTEXT")]
    pub(crate) context: Option<String>,
    /// Config file (default: ~/.config/cloudless/config.yaml).
    #[arg(long, global = true, env = "CLOUDLESSCTL_CONFIG")]
    pub(crate) config: Option<PathBuf>,
    /// Coordinator API endpoints, host:port, comma-separated (overrides the context).
    #[arg(
        long,
        global = true,
        env = "CLOUDLESSCTL_ENDPOINT",
        value_delimiter = ','
    )]
    pub(crate) endpoint: Vec<String>,
    /// Credentials file: key, certificate and CA certificate in PEM, as `cloudless-coordinator
    /// init` writes them (overrides the context).
    #[arg(long, global = true, env = "CLOUDLESSCTL_CREDENTIALS")]
    pub(crate) credentials: Option<PathBuf>,
    /// Client certificate (PEM; may hold the CA certificate after it).
    #[arg(long, global = true, env = "CLOUDLESSCTL_CERT")]
    pub(crate) cert: Option<PathBuf>,
    /// Client private key (PEM, mode 0600).
    #[arg(long, global = true, env = "CLOUDLESSCTL_KEY")]
    pub(crate) key: Option<PathBuf>,
    /// Cluster CA certificate (PEM).
    #[arg(long, global = true, env = "CLOUDLESSCTL_CA")]
    pub(crate) ca: Option<PathBuf>,
}

/// `-o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Aligned columns.
    Table,
    /// Aligned columns with more of them.
    Wide,
    /// JSON, stable (docs/cli.md).
    Json,
    /// The same document as YAML.
    Yaml,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create or update the objects in manifests (idempotent).
    #[command(
        after_help = "Examples:\n  cloudlessctl apply -f web.yaml\n  cloudlessctl apply -f manifests/ --wait --timeout 2m\n  cat web.yaml | cloudlessctl apply -f -"
    )]
    Apply(ApplyArgs),
    /// Delete the objects named in manifests.
    #[command(after_help = "Example:\n  cloudlessctl delete -f web.yaml")]
    Delete(DeleteArgs),
    /// Check manifests offline (no cluster needed); errors name file, line and field.
    #[command(after_help = "Example:\n  cloudlessctl validate -f manifests/")]
    Validate(FilesArg),
    /// Nodes: list, inspect, cordon, drain, remove.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Workloads: list, inspect, scale, rollouts, logs, exec.
    #[command(subcommand, visible_alias = "wl")]
    Workload(WorkloadCommand),
    /// Cluster events and changes.
    #[command(subcommand)]
    Event(EventCommand),
    /// Join tokens for new agents and coordinators.
    #[command(subcommand)]
    Token(TokenCommand),
    /// The cluster as a whole.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Print a shell completion script.
    #[command(
        after_help = "Example:\n  cloudlessctl completion bash > /etc/bash_completion.d/cloudlessctl"
    )]
    Completion {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// `-f FILE|DIR|-` (repeatable).
#[derive(Debug, Clone, Args)]
pub(crate) struct FilesArg {
    /// Manifest file, directory (its *.yaml, *.yml, *.json files) or `-` for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub(crate) files: Vec<PathBuf>,
}

/// `apply`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ApplyArgs {
    #[command(flatten)]
    pub(crate) files: FilesArg,
    /// Wait until every applied workload's rollout is complete.
    #[arg(long)]
    pub(crate) wait: bool,
    /// Longest wait with --wait (e.g. 90s, 5m).
    #[arg(long, value_parser = parse_duration, default_value = "5m")]
    pub(crate) timeout: Duration,
}

/// `delete`.
#[derive(Debug, Clone, Args)]
pub(crate) struct DeleteArgs {
    #[command(flatten)]
    pub(crate) files: FilesArg,
    /// Succeed for objects that do not exist.
    #[arg(long)]
    pub(crate) ignore_not_found: bool,
}

/// `node ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum NodeCommand {
    /// List nodes.
    #[command(visible_alias = "list")]
    Ls,
    /// One node.
    Get {
        /// Node name.
        name: String,
    },
    /// A node in detail: resources, labels, replicas.
    Describe {
        /// Node name.
        name: String,
    },
    /// Stop placing new replicas on a node.
    Cordon {
        /// Node name.
        name: String,
    },
    /// End a cordon or drain.
    Uncordon {
        /// Node name.
        name: String,
    },
    /// Cordon a node and move its replicas elsewhere.
    Drain {
        /// Node name.
        name: String,
    },
    /// Remove a node from the cluster (its replicas fail over).
    #[command(visible_alias = "remove")]
    Rm {
        /// Node name.
        name: String,
        /// Never admit the node's identity again.
        #[arg(long)]
        revoke: bool,
    },
}

/// `workload ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum WorkloadCommand {
    /// List workloads.
    #[command(visible_alias = "list")]
    Ls {
        /// Every namespace.
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// One workload.
    Get {
        /// Workload name.
        name: String,
    },
    /// A workload in detail: status, conditions, replicas, events, placement problems.
    Describe {
        /// Workload name.
        name: String,
    },
    /// Delete a workload.
    #[command(visible_alias = "rm")]
    Delete {
        /// Workload name.
        name: String,
    },
    /// Set the replica count.
    #[command(after_help = "Example:\n  cloudlessctl workload scale web --replicas 5")]
    Scale {
        /// Workload name.
        name: String,
        /// New replica count.
        #[arg(long)]
        replicas: u32,
    },
    /// Rollouts: status, pause, resume.
    #[command(subcommand)]
    Rollout(RolloutCommand),
    /// Container logs of a workload's replicas.
    #[command(
        after_help = "Examples:\n  cloudlessctl workload logs web\n  cloudlessctl workload logs web -f --tail 20\n  cloudlessctl workload logs web --replica 12 --from-offset 4096"
    )]
    Logs {
        /// Workload name.
        name: String,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Only this replica id (default: every replica).
        #[arg(long)]
        replica: Option<u64>,
        /// Only the last N lines of each replica.
        #[arg(long)]
        tail: Option<u32>,
        /// Start at this byte offset of each replica's log (resume an earlier read).
        #[arg(long, value_name = "BYTES")]
        from_offset: Option<u64>,
        /// Start every line with `[r<replica>] ` (useful when several replicas interleave).
        #[arg(long)]
        prefix: bool,
    },
    /// Run a command in a replica's container.
    #[command(after_help = "Example:\n  cloudlessctl workload exec web -- cat /etc/hostname")]
    Exec {
        /// Workload name.
        name: String,
        /// Replica id (default: the cluster picks one).
        #[arg(long)]
        replica: Option<u64>,
        /// Longest run in seconds.
        #[arg(long, default_value_t = 30)]
        timeout_seconds: u32,
        /// The command and its arguments (after `--`).
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

/// `workload rollout ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum RolloutCommand {
    /// Show a rollout; with --watch, follow it until complete.
    Status {
        /// Workload name.
        name: String,
        /// Follow until the rollout completes (or --timeout).
        #[arg(short, long)]
        watch: bool,
        /// Longest wait with --watch.
        #[arg(long, value_parser = parse_duration, default_value = "5m")]
        timeout: Duration,
    },
    /// Pause a workload's rollouts.
    Pause {
        /// Workload name.
        name: String,
    },
    /// Resume a workload's rollouts.
    Resume {
        /// Workload name.
        name: String,
    },
}

/// `event ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum EventCommand {
    /// Print changes as they commit (Ctrl-C to stop).
    #[command(
        after_help = "Examples:\n  cloudlessctl event watch --kind event\n  cloudlessctl -o json event watch --from 1 --limit 10"
    )]
    Watch {
        /// First revision (0: the oldest retained).
        #[arg(long, default_value_t = 0)]
        from: u64,
        /// Only these kinds: node, workload, replica, service, joinToken, event.
        #[arg(long = "kind")]
        kinds: Vec<String>,
        /// Stop after this many changes.
        #[arg(long)]
        limit: Option<u64>,
    },
}

/// `token ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Create a join token; the secret is shown once.
    Create {
        /// `agent` or `coordinator`.
        #[arg(long, default_value = "agent")]
        role: String,
        /// Lifetime (e.g. 1h, 24h).
        #[arg(long, value_parser = parse_duration, default_value = "24h")]
        ttl: Duration,
        /// Most joins (default: unlimited).
        #[arg(long)]
        max_uses: Option<u32>,
    },
    /// List join tokens (no secrets).
    #[command(visible_alias = "list")]
    Ls,
    /// Revoke a join token.
    Revoke {
        /// Token id.
        id: String,
    },
}

/// `cluster ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum ClusterCommand {
    /// Cluster name, leader, members, sizes, the caller's identity.
    Info,
}

/// `90`, `90s`, `5m`, `2h`, `1d`.
pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 90s, 5m or 2h"))?;
    let secs = match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        "d" => n.checked_mul(86_400),
        _ => None,
    }
    .ok_or_else(|| format!("{s:?} is not a duration like 90s, 5m or 2h"))?;
    Ok(Duration::from_secs(secs))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_tree_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
    }
}
