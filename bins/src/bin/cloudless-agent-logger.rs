//! `cloudless-agent-logger`: the capped container log writer of the agent's containerd runtime,
//! shipped next to `cloudless-agent` (which finds it beside its own executable). containerd's
//! shim runs it for each container (`binary://` stdio); same code as cloudless-runtime's
//! `cloudless-logger` (see `cloudless_runtime::containerd::logger`).

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    cloudless_runtime::containerd::logger::logger_main("cloudless-agent-logger", &args)
}
