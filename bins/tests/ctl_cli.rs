//! `cloudlessctl` end to end: the real binary against an API server with a test CA.
#![allow(clippy::unwrap_used, clippy::expect_used)] // Tests fail loudly.

mod ctl_common;

use std::time::{Duration, Instant};

use cloudless_core::transport::Role;
use ctl_common::{Cluster, creds, run_ctl, save_creds, workload_manifest};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_reports_created_then_unchanged_then_configured() {
    let c = Cluster::start().await;
    let file = c.write_config("web.yaml", &workload_manifest("web", "busybox:1", 2));
    let f = file.to_str().unwrap();
    assert_eq!(
        c.ctl(&["apply", "-f", f]).await.ok(),
        "workload/demo/web created\n"
    );
    assert_eq!(
        c.ctl(&["apply", "-f", f]).await.ok(),
        "workload/demo/web unchanged\n"
    );
    c.write_config("web.yaml", &workload_manifest("web", "busybox:2", 2));
    let out = c.ctl(&["apply", "-f", f, "-o", "json"]).await.json();
    assert_eq!(out["kind"], "ApplyResultList");
    assert_eq!(out["items"][0]["action"], "configured");
    assert_eq!(out["items"][0]["kind"], "Workload");
    assert_eq!(out["items"][0]["namespace"], "demo");
    assert_eq!(out["items"][0]["name"], "web");
    assert_eq!(out["items"][0]["generation"], 2);
    assert_eq!(out["items"][0]["file"], f);

    // A directory and stdin are inputs too; both objects report separately.
    std::fs::create_dir(c.path("dir")).unwrap();
    std::fs::write(c.path("dir/a.yaml"), workload_manifest("a", "busybox:1", 1)).unwrap();
    std::fs::write(c.path("dir/b.yaml"), workload_manifest("b", "busybox:1", 1)).unwrap();
    std::fs::write(c.path("dir/notes.txt"), "ignored").unwrap();
    let dir = c.path("dir");
    assert_eq!(
        c.ctl(&["apply", "-f", dir.to_str().unwrap()]).await.ok(),
        "workload/demo/a created\nworkload/demo/b created\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_and_list_in_every_output_format() {
    let c = Cluster::start().await;
    let file = c.write_config("web.yaml", &workload_manifest("web", "busybox:1", 2));
    c.ctl(&["apply", "-f", file.to_str().unwrap()]).await.ok();

    let table = c.ctl(&["workload", "get", "web"]).await.ok().to_owned();
    let mut lines = table.lines();
    let header = lines.next().unwrap();
    for col in [
        "NAMESPACE",
        "NAME",
        "READY",
        "AVAILABLE",
        "GENERATION",
        "AGE",
    ] {
        assert!(header.contains(col), "{header}");
    }
    assert!(!header.contains("IMAGE"), "{header}");
    let row: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(&row[..3], ["demo", "web", "0/2"]);

    let wide = c
        .ctl(&["workload", "ls", "-o", "wide"])
        .await
        .ok()
        .to_owned();
    assert!(wide.lines().next().unwrap().contains("IMAGE"), "{wide}");
    assert!(wide.contains("busybox:1"), "{wide}");

    let w = c
        .ctl(&["workload", "get", "web", "-o", "json"])
        .await
        .json();
    assert_eq!(w["namespace"], "demo");
    assert_eq!(w["name"], "web");
    assert_eq!(w["image"], "busybox:1");
    assert_eq!(w["replicas"], 2);
    assert_eq!(w["generation"], 1);
    assert_eq!(w["paused"], false);
    assert_eq!(w["labels"]["app"], "web");
    assert_eq!(w["spec"]["image"], "busybox:1");
    assert!(w["conditions"].is_array());
    assert!(w["createdAtMs"].as_u64().unwrap() > 0);

    let list = c.ctl(&["workload", "ls", "-o", "json"]).await.json();
    assert_eq!(list["kind"], "WorkloadList");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    assert_eq!(list["items"][0]["name"], "web");
    // Another namespace is empty; -A sees every namespace.
    let other = c
        .ctl(&["workload", "ls", "-n", "other", "-o", "json"])
        .await
        .json();
    assert_eq!(other["items"].as_array().unwrap().len(), 0);
    let all = c
        .ctl(&["workload", "ls", "-A", "-n", "other", "-o", "json"])
        .await
        .json();
    assert_eq!(all["items"].as_array().unwrap().len(), 1);

    let yaml = c
        .ctl(&["workload", "get", "web", "-o", "yaml"])
        .await
        .ok()
        .to_owned();
    assert!(yaml.lines().any(|l| l == "name: web"), "{yaml}");
    assert!(yaml.lines().any(|l| l == "replicas: 2"), "{yaml}");

    let info = c.ctl(&["cluster", "info", "-o", "json"]).await.json();
    assert_eq!(info["cluster"], ctl_common::CLUSTER);
    assert_eq!(info["workloads"], 1);
    assert_eq!(info["endpoint"], c.addr());
    let nodes = c.ctl(&["node", "ls", "-o", "json"]).await.json();
    assert_eq!(nodes["kind"], "NodeList");
    assert_eq!(nodes["items"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_then_delete_then_not_found() {
    let c = Cluster::start().await;
    let file = c.write_config("web.yaml", &workload_manifest("web", "busybox:1", 2));
    c.ctl(&["apply", "-f", file.to_str().unwrap()]).await.ok();
    assert_eq!(
        c.ctl(&["workload", "scale", "web", "--replicas", "4"])
            .await
            .ok(),
        "workload/demo/web scaled to 4\n"
    );
    let w = c
        .ctl(&["workload", "get", "web", "-o", "json"])
        .await
        .json();
    assert_eq!(w["replicas"], 4);
    // Scaling makes no new generation.
    assert_eq!(w["generation"], 1);

    assert_eq!(
        c.ctl(&["workload", "delete", "web"]).await.ok(),
        "workload/demo/web deleted\n"
    );
    let err = c
        .ctl(&["workload", "get", "web"])
        .await
        .fails_with(2)
        .to_owned();
    assert!(
        err.starts_with("error: getting workload demo/web:"),
        "{err}"
    );
    assert!(err.contains("not found"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    c.ctl(&["workload", "scale", "nope", "--replicas", "1"])
        .await
        .fails_with(2);
    c.ctl(&["workload", "describe", "nope"]).await.fails_with(2);
    c.ctl(&["node", "get", "nope"]).await.fails_with(2);

    // delete -f: the second time the object is gone (exit 2) unless --ignore-not-found.
    c.ctl(&["apply", "-f", file.to_str().unwrap()]).await.ok();
    let f = file.to_str().unwrap();
    assert_eq!(
        c.ctl(&["delete", "-f", f]).await.ok(),
        "workload/demo/web deleted\n"
    );
    c.ctl(&["delete", "-f", f]).await.fails_with(2);
    let out = c
        .ctl(&["delete", "-f", f, "--ignore-not-found", "-o", "json"])
        .await
        .json();
    assert_eq!(out["items"][0]["action"], "notFound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_name_the_file_and_field_and_send_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "apiVersion: cloudless.dev/v1\nkind: Workload\nmetadata:\n  name: web\nspec:\n  image: x\n  replicas: 1\n  bogus: 1\n",
    )
    .unwrap();
    let good = dir.path().join("good.yaml");
    std::fs::write(&good, workload_manifest("web", "busybox:1", 1)).unwrap();
    let (b, g) = (bad.to_str().unwrap(), good.to_str().unwrap());

    // Offline: no config file, no endpoint, no credentials.
    let home = dir.path().to_owned();
    let r = run_ctl(None, home.clone(), &["validate", "-f", b]).await;
    let err = r.fails_with(1);
    assert!(
        err.contains(&format!("{b}:8: spec.bogus: unknown field `bogus`")),
        "{err}"
    );
    let r = run_ctl(None, home.clone(), &["validate", "-f", g]).await;
    assert_eq!(r.ok(), format!("{g}: valid (workload/demo/web)\n"));
    let r = run_ctl(
        None,
        home.clone(),
        &["validate", "-f", g, "-f", b, "-o", "json"],
    )
    .await;
    assert_eq!(r.code, 1);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["items"][0]["valid"], true);
    assert_eq!(report["items"][1]["valid"], false);
    assert_eq!(report["items"][1]["errors"][0]["path"], "spec.bogus");
    assert_eq!(report["items"][1]["errors"][0]["line"], 8);
    assert_eq!(report["items"][1]["errors"][0]["file"], b);

    // A semantic error names its field too.
    std::fs::write(&bad, workload_manifest("Not_A_Name", "busybox:1", 1)).unwrap();
    let err = run_ctl(None, home.clone(), &["validate", "-f", b])
        .await
        .fails_with(1)
        .to_owned();
    assert!(err.contains("metadata.name"), "{err}");
    let missing = dir.path().join("missing.yaml");
    let err = run_ctl(
        None,
        home.clone(),
        &["validate", "-f", missing.to_str().unwrap()],
    )
    .await
    .fails_with(1)
    .to_owned();
    assert!(err.contains("missing.yaml: cannot open"), "{err}");

    // apply refuses before contacting the cluster: nothing is created.
    let c = Cluster::start().await;
    let err = c
        .ctl(&["apply", "-f", g, "-f", b])
        .await
        .fails_with(1)
        .to_owned();
    assert!(err.contains("metadata.name"), "{err}");
    assert!(err.contains("nothing was sent"), "{err}");
    let list = c.ctl(&["workload", "ls", "-o", "json"]).await.json();
    assert_eq!(list["items"].as_array().unwrap().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_and_connection_errors_are_one_clear_line_with_their_exit_codes() {
    let c = Cluster::start().await;
    // No credentials in the context.
    let cfg = c.write_config(
        "nocreds.yaml",
        &format!(
            "currentContext: x\ncontexts:\n  - name: x\n    endpoints: [\"{}\"]\n",
            c.addr()
        ),
    );
    let err = c
        .ctl_with(&cfg, &["workload", "ls"])
        .await
        .fails_with(1)
        .to_owned();
    assert!(
        err.starts_with("error: no client credentials in context \"x\""),
        "{err}"
    );
    assert!(err.contains("CLOUDLESSCTL_CREDENTIALS"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    // No config at all.
    let err = run_ctl(None, c.path("empty-home"), &["workload", "ls"])
        .await
        .fails_with(1)
        .to_owned();
    assert!(err.contains("no endpoints"), "{err}");
    // An unknown context.
    let err = c
        .ctl(&["--context", "prod", "cluster", "info"])
        .await
        .fails_with(1)
        .to_owned();
    assert!(
        err.contains("context \"prod\" not found") && err.contains("test"),
        "{err}"
    );
    // A config file with a typo names the field.
    let cfg = c.write_config("typo.yaml", "contexts:\n  - name: x\n    endpoint: [a]\n");
    let err = c
        .ctl_with(&cfg, &["cluster", "info"])
        .await
        .fails_with(1)
        .to_owned();
    assert!(
        err.contains("typo.yaml") && err.contains("endpoint"),
        "{err}"
    );

    // Environment overrides: a dead endpoint is unavailable (exit 3).
    let r = run_ctl_env(
        &c,
        &[("CLOUDLESSCTL_ENDPOINT", "127.0.0.1:1")],
        &["cluster", "info"],
    )
    .await;
    let err = r.fails_with(3);
    assert!(err.contains("check the endpoints"), "{err}");

    // Credentials of another cluster: refused (exit 4, or 3 if the handshake fails first).
    let foreign =
        cloudless_net::identity::ClusterCa::init("other", std::time::SystemTime::now()).unwrap();
    save_creds(&creds(&foreign, Role::Admin, 0), &c.path("foreign"));
    let r = c
        .ctl(&[
            "--cert",
            c.path("foreign/node.pem").to_str().unwrap(),
            "--key",
            c.path("foreign/node.key").to_str().unwrap(),
            "cluster",
            "info",
        ])
        .await;
    assert!(r.code == 3 || r.code == 4, "{} {}", r.code, r.stderr);

    // An agent certificate of this cluster may read but not change (exit 4).
    save_creds(&creds(&c.ca, Role::Agent, 9), &c.path("agent"));
    let cert = c.path("agent/node.pem");
    let key = c.path("agent/node.key");
    let file = c.write_config("web.yaml", &workload_manifest("web", "busybox:1", 1));
    let as_agent = |args: &[&str]| {
        let mut v = vec![
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ];
        v.extend_from_slice(args);
        v.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let args = as_agent(&["apply", "-f", file.to_str().unwrap()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let err = c.ctl(&args).await.fails_with(4).to_owned();
    assert!(err.contains("admin"), "{err}");
}

async fn run_ctl_env(c: &Cluster, env: &[(&str, &str)], args: &[&str]) -> ctl_common::Run {
    // The config's context stays; the variables override it.
    let config = c.path("config.yaml");
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| ((*k).into(), (*v).into()))
        .collect();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cloudlessctl"))
            .env("CLOUDLESSCTL_CONFIG", config)
            .envs(env)
            .args(args)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    ctl_common::Run {
        args: "env override".into(),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_shows_why_replicas_cannot_be_placed_and_logs_exec_say_none_runs() {
    let c = Cluster::start().await;
    let file = c.write_config("web.yaml", &workload_manifest("web", "busybox:1", 2));
    c.ctl(&["apply", "-f", file.to_str().unwrap()]).await.ok();
    // No nodes: the coordinator records why the replicas cannot be placed.
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let r = c.ctl(&["workload", "describe", "web"]).await;
        let out = r.ok().to_owned();
        if out.contains("Unplaced:") || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(text.contains("Unplaced:"), "{text}");
    assert!(text.contains("Unschedulable"), "{text}");
    assert!(text.contains("Events:"), "{text}");
    let d = c
        .ctl(&["workload", "describe", "web", "-o", "json"])
        .await
        .json();
    assert!(
        d["unplaced"].as_str().unwrap().contains("unplaceable"),
        "{d}"
    );
    assert_eq!(d["rollout"]["desired"], 2);
    assert_eq!(d["rollout"]["complete"], false);
    assert_eq!(d["workload"]["name"], "web");

    // A wait that cannot finish times out with exit 7 and names the problem.
    let err = c
        .ctl(&[
            "apply",
            "-f",
            file.to_str().unwrap(),
            "--wait",
            "--timeout",
            "1s",
        ])
        .await
        .fails_with(7)
        .to_owned();
    assert!(err.contains("rollout of demo/web not complete"), "{err}");

    // Logs and exec of a workload none of whose replicas runs: failed precondition (exit 5).
    let err = c
        .ctl(&["workload", "logs", "web"])
        .await
        .fails_with(5)
        .to_owned();
    assert!(
        err.contains("demo/web has no replica running on any node"),
        "{err}"
    );
    let err = c
        .ctl(&["workload", "exec", "web", "--", "true"])
        .await
        .fails_with(5)
        .to_owned();
    assert!(
        err.contains("demo/web has no replica running on any node"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_rollouts_events_and_completion() {
    let c = Cluster::start().await;
    let t = c
        .ctl(&[
            "token",
            "create",
            "--ttl",
            "1h",
            "--max-uses",
            "2",
            "-o",
            "json",
        ])
        .await
        .json();
    let id = t["record"]["id"].as_str().unwrap().to_owned();
    assert!(!t["token"].as_str().unwrap().is_empty());
    assert_eq!(t["record"]["maxUses"], 2);
    let ls = c.ctl(&["token", "ls", "-o", "json"]).await.json();
    assert_eq!(ls["kind"], "JoinTokenList");
    assert_eq!(ls["items"][0]["id"], id.as_str());
    assert_eq!(ls["items"][0]["revoked"], false);
    assert_eq!(
        c.ctl(&["token", "revoke", &id]).await.ok(),
        format!("token/{id} revoked\n")
    );
    let ls = c.ctl(&["token", "ls", "-o", "json"]).await.json();
    assert_eq!(ls["items"][0]["revoked"], true);

    let file = c.write_config("web.yaml", &workload_manifest("web", "busybox:1", 1));
    c.ctl(&["apply", "-f", file.to_str().unwrap()]).await.ok();
    let r = c
        .ctl(&["workload", "rollout", "pause", "web", "-o", "json"])
        .await
        .json();
    assert_eq!(r["paused"], true);
    let r = c
        .ctl(&["workload", "rollout", "status", "web", "-o", "json"])
        .await
        .json();
    assert_eq!(r["paused"], true);
    assert_eq!(r["name"], "web");
    let r = c
        .ctl(&["workload", "rollout", "resume", "web", "-o", "json"])
        .await
        .json();
    assert_eq!(r["paused"], false);

    // The history so far, as JSON lines.
    let w = c
        .ctl(&[
            "event", "watch", "--kind", "workload", "--limit", "1", "-o", "json",
        ])
        .await;
    let first: serde_json::Value = serde_json::from_str(w.ok().lines().next().unwrap()).unwrap();
    assert_eq!(first["kind"], "workload");
    assert_eq!(first["object"]["name"], "web");
    assert_eq!(first["deleted"], false);

    let bash = c.ctl(&["completion", "bash"]).await.ok().to_owned();
    assert!(bash.contains("cloudlessctl"), "{bash}");
    let help = c.ctl(&["--help"]).await.ok().to_owned();
    assert!(
        help.contains("Examples:") && help.contains("Exit codes:"),
        "{help}"
    );
    // Usage errors exit 1.
    c.ctl(&["workload", "scale", "web"]).await.fails_with(1);
}
