//! `cloudlessctl`, the operator CLI (CLD-REQ-072): kubectl-like commands over the public API
//! ([`cloudless::Client`]).
//!
//! ```text
//!  argv ──clap (args)──▶ Command ──context (config file < CLOUDLESSCTL_* < flags)──▶ Client
//!       ──commands (apply, node, workload, event, token, cluster)──▶ API calls
//!       ──output (table | wide | json | yaml)──▶ stdout;  errors ──▶ one line on stderr + exit code
//! ```
//!
//! `validate` and `completion` need no cluster. The command tree, the JSON documents and the
//! exit codes are documented in `docs/cli.md`.

mod apply;
mod args;
mod context;
mod error;
mod files;
mod misc;
mod node;
mod output;
mod progress;
mod workload;

use std::io::Write;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use args::{Cli, Command};
use error::{CtlError, CtlResult};

/// Runs `cloudlessctl` with the process arguments; returns the exit code (see `docs/cli.md`).
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                error::exit::GENERAL
            } else {
                0
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CtlError::general(format!("starting the async runtime: {e}")))
        .and_then(|rt| rt.block_on(run(cli)));
    let _ = std::io::stdout().flush();
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", e.message);
            e.exit_code()
        }
    }
}

async fn run(cli: Cli) -> CtlResult<u8> {
    let g = cli.global;
    match cli.command {
        Command::Validate(f) => apply::validate(&g, &f).map(|()| 0),
        Command::Completion { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "cloudlessctl", &mut std::io::stdout());
            Ok(0)
        }
        Command::Apply(a) => apply::apply(&g, &a).await.map(|()| 0),
        Command::Delete(d) => apply::delete(&g, &d).await.map(|()| 0),
        Command::Node(c) => node::run(&g, c).await.map(|()| 0),
        Command::Workload(c) => workload::run(&g, c).await,
        Command::Event(c) => misc::event(&g, c).await.map(|()| 0),
        Command::Token(c) => misc::token(&g, c).await.map(|()| 0),
        Command::Cluster(c) => misc::cluster(&g, c).await.map(|()| 0),
    }
}
