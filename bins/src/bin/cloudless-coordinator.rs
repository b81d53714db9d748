//! `cloudless-coordinator init | run | join | snapshot save|restore | status | token`.

fn main() -> std::process::ExitCode {
    cloudless_bins::cli::coordinator_main()
}
