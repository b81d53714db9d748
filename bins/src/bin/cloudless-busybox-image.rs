//! `cloudless-busybox-image OUT.tar`: writes an OCI image layout tarball of the host's static
//! busybox (image `localhost/cloudless/busybox:latest`), built locally with no registry and no
//! network. An agent imports it at start when its config lists it under `images:`; the local
//! fabric (`scripts/run-local-fabric.sh`) and the quickstart use it.

use std::path::PathBuf;
use std::process::ExitCode;

use cloudless_runtime::busybox;

const USAGE: &str = "usage: cloudless-busybox-image OUT.tar\n\n\
Writes an OCI image layout tarball of the host's static busybox (apt-get install busybox-static)\n\
as image localhost/cloudless/busybox:latest. List it under `images:` in an agent's config file\n\
(runtime: containerd) and the agent imports it into its containerd namespace at start.";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.as_slice() {
        [flag] if flag == "-h" || flag == "--help" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        [out] if !out.starts_with('-') => PathBuf::from(out),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let built = busybox::find_busybox().and_then(|bb| {
        busybox::write_oci_layout(&bb, &out)?;
        Ok(bb)
    });
    match built {
        Ok(bb) => {
            let size = std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0);
            println!(
                "{}: image {} from {} ({} KiB)",
                out.display(),
                busybox::IMAGE,
                bb.display(),
                size / 1024
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cloudless-busybox-image: error: {e}");
            ExitCode::FAILURE
        }
    }
}
