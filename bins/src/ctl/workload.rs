//! `workload ...`.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use cloudless::Client;
use cloudless::api::pb;
use serde::Serialize;

use super::args::{GlobalArgs, OutputFormat, RolloutCommand, WorkloadCommand};
use super::context;
use super::error::{CtlError, CtlResult};
use super::output::{self, EventView, List, RolloutView, Table, WorkloadView, age};
use super::progress;

/// How long `describe` waits for the event history.
const EVENTS_WAIT: Duration = Duration::from_secs(2);

fn table(g: &GlobalArgs, items: &[pb::Workload]) {
    let wide = g.output == OutputFormat::Wide;
    let mut headers = vec![
        "NAMESPACE",
        "NAME",
        "READY",
        "AVAILABLE",
        "GENERATION",
        "AGE",
    ];
    if wide {
        headers.extend(["IMAGE", "PAUSED", "CONDITIONS"]);
    }
    let mut t = Table::new(&headers);
    for w in items {
        let mut row = vec![
            w.namespace.clone(),
            w.name.clone(),
            format!("{}/{}", w.ready, w.replicas),
            w.available.to_string(),
            if w.observed_generation == w.generation {
                w.generation.to_string()
            } else {
                format!("{} (observed {})", w.generation, w.observed_generation)
            },
            age(w.created_at_ms),
        ];
        if wide {
            let conds: Vec<String> = w
                .conditions
                .iter()
                .filter(|c| c.status == "True")
                .map(|c| c.kind.clone())
                .collect();
            row.extend([
                w.image.clone(),
                w.paused.to_string(),
                if conds.is_empty() {
                    "-".into()
                } else {
                    conds.join(",")
                },
            ]);
        }
        t.row(row);
    }
    t.print();
}

fn show(g: &GlobalArgs, items: &[pb::Workload], single: bool) -> CtlResult {
    match g.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            let views: Vec<WorkloadView> = items.iter().map(WorkloadView::from).collect();
            match (single, views.first()) {
                (true, Some(v)) => output::print_doc(g.output, v),
                _ => output::print_doc(g.output, &List::new("Workload", views)),
            }
        }
        _ => {
            table(g, items);
            Ok(())
        }
    }
}

/// `workload describe -o json`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct Description {
    workload: WorkloadView,
    rollout: RolloutView,
    /// The scheduler's explanation when a replica cannot be placed.
    unplaced: Option<String>,
    events: Vec<EventView>,
}

/// Events about `subject` up to `revision` (the history the cluster still keeps).
pub(crate) async fn events_about(
    client: &Client,
    subject: &str,
    revision: u64,
) -> Result<Vec<EventView>, String> {
    let mut stream = client
        .watch(0, &["event"])
        .await
        .map_err(|e| super::error::one_line(&e.to_string()))?;
    let mut out = Vec::new();
    let read = async {
        while let Ok(Some(c)) = stream.message().await {
            if let Some(e) = c.event.as_ref().filter(|e| e.subject == subject) {
                out.push(EventView::from(e));
            }
            if c.revision >= revision {
                break;
            }
        }
    };
    // Partial history is still useful: stop at the deadline with what arrived.
    let _ = tokio::time::timeout(EVENTS_WAIT, read).await;
    Ok(out)
}

async fn describe(g: &GlobalArgs, client: &Client, ns: &str, name: &str) -> CtlResult {
    let what = format!("describing workload {ns}/{name}");
    let w = client
        .get_workload(ns, name)
        .await
        .map_err(|e| CtlError::api(&what, &e))?;
    let r = client
        .rollout_status(ns, name)
        .await
        .map_err(|e| CtlError::api(&what, &e))?;
    let subject = format!("workload/{ns}/{name}");
    let (events, events_error) = match events_about(client, &subject, r.revision).await {
        Ok(e) => (e, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let unplaced = progress::unschedulable(&w.conditions).map(|c| c.message.clone());
    if let OutputFormat::Json | OutputFormat::Yaml = g.output {
        return output::print_doc(
            g.output,
            &Description {
                workload: WorkloadView::from(&w),
                rollout: RolloutView::from(&r),
                unplaced,
                events,
            },
        );
    }
    let nodes: BTreeMap<u64, String> = client
        .list_nodes()
        .await
        .map(|ns| ns.into_iter().map(|n| (n.id, n.name)).collect())
        .unwrap_or_default();
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{:<14}{v}\n", format!("{k}:")));
    line("Name", w.name.clone());
    line("Namespace", w.namespace.clone());
    line("Image", w.image.clone());
    line(
        "Labels",
        output::labels(&w.labels.clone().into_iter().collect()),
    );
    line(
        "Replicas",
        format!(
            "{} desired | {} assigned | {} ready | {} available | {} updated",
            w.replicas, w.assigned, w.ready, w.available, r.updated
        ),
    );
    line(
        "Generation",
        format!("{} (observed {})", w.generation, w.observed_generation),
    );
    line(
        "Rollout",
        if r.complete {
            "complete".into()
        } else if r.paused {
            "paused".into()
        } else {
            "in progress".into()
        },
    );
    line("Created", format!("{} ago", age(w.created_at_ms)));
    if let Some(u) = &unplaced {
        line("Unplaced", super::error::one_line(u));
    }
    out.push_str("Conditions:\n");
    let mut t = Table::new(&["  TYPE", "STATUS", "REASON", "MESSAGE"]);
    for c in &w.conditions {
        t.row(vec![
            format!("  {}", c.kind),
            c.status.clone(),
            c.reason.clone(),
            super::error::one_line(&c.message),
        ]);
    }
    out.push_str(&t.render());
    out.push_str("Replicas:\n");
    let mut t = Table::new(&[
        "  ID",
        "NODE",
        "GENERATION",
        "PHASE",
        "READY",
        "RESTARTS",
        "ADDRESS",
        "MESSAGE",
    ]);
    for p in &r.replicas {
        t.row(vec![
            format!("  {}", p.id),
            nodes
                .get(&p.node)
                .cloned()
                .unwrap_or_else(|| p.node.to_string()),
            p.generation.to_string(),
            p.phase.clone(),
            p.ready.to_string(),
            p.restarts.to_string(),
            if p.address.is_empty() {
                "-".into()
            } else {
                p.address.clone()
            },
            super::error::one_line(&p.message),
        ]);
    }
    out.push_str(&t.render());
    out.push_str("Events:\n");
    if let Some(e) = events_error {
        out.push_str(&format!("  (cannot read events: {e})\n"));
    } else if events.is_empty() {
        out.push_str("  <none>\n");
    } else {
        let mut t = Table::new(&["  AGE", "SEVERITY", "REASON", "MESSAGE"]);
        for e in &events {
            t.row(vec![
                format!("  {}", age(e.at_ms)),
                e.severity.clone(),
                e.reason.clone(),
                super::error::one_line(&e.message),
            ]);
        }
        out.push_str(&t.render());
    }
    print!("{out}");
    Ok(())
}

fn show_rollout(g: &GlobalArgs, r: &pb::RolloutStatusResponse) -> CtlResult {
    match g.output {
        OutputFormat::Json | OutputFormat::Yaml => {
            output::print_doc(g.output, &RolloutView::from(r))
        }
        _ => {
            println!("{}", progress::summary(r));
            Ok(())
        }
    }
}

/// Runs a `workload` command; the exit code is the remote command's for `exec`.
pub(crate) async fn run(g: &GlobalArgs, c: WorkloadCommand) -> CtlResult<u8> {
    let ctx = context::resolve(g)?;
    let ns = ctx.namespace();
    let client = ctx.client()?;
    match c {
        WorkloadCommand::Ls { all_namespaces } => {
            let scope = if all_namespaces { "" } else { ns.as_str() };
            let list = client
                .list_workloads(scope)
                .await
                .map_err(|e| CtlError::api("listing workloads", &e))?;
            show(g, &list, false)?;
        }
        WorkloadCommand::Get { name } => {
            let w = client
                .get_workload(&ns, &name)
                .await
                .map_err(|e| CtlError::api(&format!("getting workload {ns}/{name}"), &e))?;
            show(g, &[w], true)?;
        }
        WorkloadCommand::Describe { name } => describe(g, &client, &ns, &name).await?,
        WorkloadCommand::Delete { name } => {
            client
                .delete_workload(&ns, &name)
                .await
                .map_err(|e| CtlError::api(&format!("deleting workload {ns}/{name}"), &e))?;
            if let OutputFormat::Json | OutputFormat::Yaml = g.output {
                output::print_doc(
                    g.output,
                    &serde_json::json!({"kind": "Workload", "namespace": ns, "name": name, "action": "deleted"}),
                )?;
            } else {
                println!("workload/{ns}/{name} deleted");
            }
        }
        WorkloadCommand::Scale { name, replicas } => {
            let w = client
                .scale(&ns, &name, replicas)
                .await
                .map_err(|e| CtlError::api(&format!("scaling workload {ns}/{name}"), &e))?;
            if let OutputFormat::Json | OutputFormat::Yaml = g.output {
                show(g, &[w], true)?;
            } else {
                println!("workload/{ns}/{name} scaled to {}", w.replicas);
            }
        }
        WorkloadCommand::Rollout(r) => rollout(g, &client, &ns, r).await?,
        WorkloadCommand::Logs {
            name,
            follow,
            replica,
            tail,
            from_offset,
            prefix,
        } => {
            let req = pb::LogsRequest {
                workload: Some(pb::WorkloadRef {
                    namespace: ns.clone(),
                    name: name.clone(),
                }),
                replica: replica.unwrap_or(0),
                follow,
                tail_lines: tail.unwrap_or(0),
                from_offset: from_offset.unwrap_or(0),
            };
            logs(&client, &ns, &name, req, prefix).await?;
        }
        WorkloadCommand::Exec {
            name,
            replica,
            timeout_seconds,
            command,
        } => {
            let r = client
                .exec(pb::ExecRequest {
                    workload: Some(pb::WorkloadRef {
                        namespace: ns.clone(),
                        name: name.clone(),
                    }),
                    replica: replica.unwrap_or(0),
                    command,
                    timeout_seconds,
                })
                .await
                .map_err(|e| CtlError::api(&format!("exec in workload {ns}/{name}"), &e))?;
            let _ = std::io::stdout().write_all(&r.stdout);
            let _ = std::io::stdout().flush();
            let _ = std::io::stderr().write_all(&r.stderr);
            for (cut, stream) in [
                (r.stdout_truncated, "stdout"),
                (r.stderr_truncated, "stderr"),
            ] {
                if cut {
                    eprintln!(
                        "cloudlessctl: the command's {stream} was cut to the first 1 MiB (the cluster keeps no more)"
                    );
                }
            }
            // A code outside 0..=255 (e.g. a negative one for a signal) is a failure, never 0.
            return Ok(u8::try_from(r.exit_code).unwrap_or(255));
        }
    }
    Ok(0)
}

async fn rollout(g: &GlobalArgs, client: &Client, ns: &str, r: RolloutCommand) -> CtlResult {
    let pause = matches!(r, RolloutCommand::Pause { .. });
    match r {
        RolloutCommand::Status {
            name,
            watch,
            timeout,
        } => {
            if watch {
                let done =
                    progress::wait_all(client, &[(ns.to_owned(), name.clone())], timeout).await?;
                if let Some(r) = done.first() {
                    show_rollout(g, r)?;
                }
            } else {
                let r = client
                    .rollout_status(ns, &name)
                    .await
                    .map_err(|e| CtlError::api(&format!("rollout status of {ns}/{name}"), &e))?;
                show_rollout(g, &r)?;
            }
        }
        RolloutCommand::Pause { name } | RolloutCommand::Resume { name } => {
            let verb = if pause { "pausing" } else { "resuming" };
            let s = client
                .set_rollout_paused(ns, &name, pause)
                .await
                .map_err(|e| CtlError::api(&format!("{verb} the rollout of {ns}/{name}"), &e))?;
            show_rollout(g, &s)?;
        }
    }
    Ok(())
}

async fn logs(
    client: &Client,
    ns: &str,
    name: &str,
    req: pb::LogsRequest,
    prefix: bool,
) -> CtlResult {
    let what = format!("logs of workload {ns}/{name}");
    let mut stream = client
        .logs(req)
        .await
        .map_err(|e| CtlError::api(&what, &e))?;
    // With --prefix: each replica's unfinished line, until its newline arrives.
    let mut partial: std::collections::BTreeMap<u64, Vec<u8>> = Default::default();
    let mut out = std::io::stdout();
    loop {
        let chunk = match stream.message().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(s) => return Err(CtlError::api(&what, &s.into())),
        };
        let r = if prefix {
            let buf = partial.entry(chunk.replica).or_default();
            buf.extend_from_slice(&chunk.data);
            let mut text = Vec::new();
            while let Some(i) = buf.iter().position(|b| *b == b'\n') {
                text.extend_from_slice(format!("[r{}] ", chunk.replica).as_bytes());
                text.extend(buf.drain(..=i));
            }
            out.write_all(&text)
        } else if chunk.stream == "stderr" {
            std::io::stderr().write_all(&chunk.data)
        } else {
            out.write_all(&chunk.data)
        };
        // Followed bytes show at once, not when a buffer fills.
        if r.and_then(|()| out.flush()).is_err() {
            // The reader went away (e.g. `| head`): stop quietly.
            return Ok(());
        }
    }
    for (replica, rest) in partial {
        if !rest.is_empty() {
            let _ = out.write_all(format!("[r{replica}] ").as_bytes());
            let _ = out.write_all(&rest);
            let _ = out.write_all(b"\n");
        }
    }
    let _ = out.flush();
    Ok(())
}
