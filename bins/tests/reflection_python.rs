//! A generic gRPC client (Python `grpcio` + `grpcio-reflection` from PyPI, in a venv under the
//! target dir) lists the API's services through reflection with the admin certificate and calls
//! `cloudless.v1.Cluster/Info` built from the reflected descriptors alone; without a client
//! certificate the coordinator refuses it, and the client refuses a coordinator that does not
//! carry the cluster's API server name. grpcio does the TLS itself, checking the DNS name every
//! coordinator certificate carries (`api.<cluster>.cloudless.internal`). The client is
//! `tests/reflection_client.py`.
//!
//! Prerequisites: `python3` with `venv`/`ensurepip` (Debian: python3-venv, which
//! scripts/ensure-deps.sh installs) and PyPI reachable the first time. Outside CI a missing
//! prerequisite skips the test with a message; under `CI=true` it fails.

#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use cloudless_net::identity::spiffe::api_server_name;
use common::Lab;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/reflection_client.py");
/// Pinned: the test must not change behaviour when PyPI publishes a new release.
const PACKAGES: [&str; 2] = ["grpcio==1.85.3", "grpcio-reflection==1.85.1"];

/// Fails under CI, else prints why the test is skipped; `None` either way.
fn missing(what: String) -> Option<PathBuf> {
    let msg = format!(
        "the reflection test needs {what} (Debian: apt-get install python3-venv; scripts/ensure-deps.sh installs it)"
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
    eprintln!("SKIPPED outside CI: {msg}");
    None
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?}: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The venv's python with grpcio and grpcio-reflection, made once per target dir.
fn python_with_grpc() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_TARGET_TMPDIR")).join("reflection-venv");
    let python = venv.join("bin/python3");
    let imports = || {
        run(Command::new(&python).args([
            "-c",
            "import grpc, grpc_reflection.v1alpha.proto_reflection_descriptor_database",
        ]))
    };
    if imports().is_ok() {
        return Some(python);
    }
    if let Err(e) = run(Command::new("python3").args(["-c", "import venv, ensurepip"])) {
        return missing(format!("python3 with venv and ensurepip ({e})"));
    }
    if !python.exists()
        && let Err(e) = run(Command::new("python3").arg("-m").arg("venv").arg(&venv))
    {
        return missing(format!("a python venv ({e})"));
    }
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ])
    .args(PACKAGES);
    if let Err(e) = run(&mut pip) {
        return missing(format!("{PACKAGES:?} from PyPI ({e})"));
    }
    match imports() {
        Ok(_) => Some(python),
        Err(e) => missing(format!("importable {PACKAGES:?} ({e})")),
    }
}

/// Runs the client against cluster `refl`'s API name.
fn client(
    python: &Path,
    api: &str,
    credentials: &Path,
    extra: &[&str],
) -> (i32, serde_json::Value) {
    client_named(python, api, credentials, &api_server_name("refl"), extra)
}

fn client_named(
    python: &Path,
    api: &str,
    credentials: &Path,
    server_name: &str,
    extra: &[&str],
) -> (i32, serde_json::Value) {
    let out = Command::new(python)
        .arg(SCRIPT)
        .arg(api)
        .arg(credentials)
        .arg(server_name)
        .args(extra)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let json = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| {
        panic!(
            "reflection_client.py {extra:?}: not JSON ({e}): {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap_or(-1), json)
}

#[test]
fn a_generic_reflection_client_lists_and_calls_with_a_cert_and_is_refused_without() {
    let Some(python) = python_with_grpc() else {
        return;
    };
    let mut lab = Lab::init("refl", 1);
    lab.start_coordinator(0);
    let api = lab.api(0);
    let admin = lab.admin();

    let (code, out) = client(&python, &api, &admin, &[]);
    assert_eq!(code, 0, "{out}");
    let services: Vec<&str> = out["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    for s in [
        "cloudless.v1.Workloads",
        "cloudless.v1.Nodes",
        "cloudless.v1.Events",
        "cloudless.v1.Cluster",
        "grpc.health.v1.Health",
    ] {
        assert!(services.contains(&s), "{s} not listed: {services:?}");
    }
    let workload_methods = out["methods"]["cloudless.v1.Workloads"].to_string();
    for m in ["Create", "Get", "List", "Scale", "Logs"] {
        assert!(workload_methods.contains(m), "{m}: {workload_methods}");
    }
    assert_eq!(out["info"]["cluster"], "refl", "{out}");
    assert!(
        out["info"]["caller"].as_str().unwrap().contains("/admin/"),
        "{out}"
    );
    eprintln!("with the admin cert: {services:?}; Info: {}", out["info"]);

    let (code, out) = client(&python, &api, &admin, &["--no-cert"]);
    assert_eq!(
        code, 0,
        "the server answered a client without a certificate: {out}"
    );
    // The same TLS settings with the certificate were served above, so the refusal is the
    // missing certificate (TLS 1.3 rejects it after the client's Finished; grpcio reports the
    // alert as a broken connection).
    assert_eq!(out["refused"], "UNAVAILABLE", "{out}");
    eprintln!("without a cert: {out}");

    // The client checks the server's name: another cluster's API name is refused.
    let (code, out) = client_named(&python, &api, &admin, "api.other.cloudless.internal", &[]);
    assert_eq!(code, 3, "a wrong server name was accepted: {out}");
    assert_eq!(out["refused"], "UNAVAILABLE", "{out}");
    assert!(
        out["details"]
            .to_string()
            .to_lowercase()
            .contains("hostname"),
        "{out}"
    );
    eprintln!("with a wrong server name: {out}");
    // The coordinator is still up.
    assert!(lab.coordinators[0].as_mut().unwrap().running());
}
