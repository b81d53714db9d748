//! `cloudlessctl`: the operator CLI of Cloudless. Everything lives in `cloudless_bins::ctl`.

fn main() -> std::process::ExitCode {
    cloudless_bins::ctl::main()
}
