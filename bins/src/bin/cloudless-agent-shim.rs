//! The process runtime's shim, installed next to `cloudless-agent`
//! (see `cloudless_runtime::process::shim`).

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    cloudless_runtime::process::shim::shim_main(&args)
}
