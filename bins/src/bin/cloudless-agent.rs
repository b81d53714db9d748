//! `cloudless-agent join | run`.

fn main() -> std::process::ExitCode {
    cloudless_bins::cli::agent_main()
}
