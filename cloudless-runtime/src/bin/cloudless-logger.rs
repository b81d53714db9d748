//! `cloudless-logger`: the capped container log writer containerd's shim runs for each container
//! (see `cloudless_runtime::containerd::logger`).

use std::process::ExitCode;

use cloudless_runtime::containerd::logger::{LoggerArgs, run};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match LoggerArgs::parse(&args) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("cloudless-logger: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&parsed) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cloudless-logger: {e}");
            ExitCode::FAILURE
        }
    }
}
