//! `cloudless-process-shim`: sits between the agent and each `ProcessRuntime` replica's process
//! (see `cloudless_runtime::process::shim`).

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    cloudless_runtime::process::shim::shim_main(&args)
}
