//! Waiting for rollouts: a redrawn status line on a terminal, plain lines (one per change)
//! otherwise. Progress goes to stderr so stdout stays machine-readable.

use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

use cloudless::Client;
use cloudless::api::pb;

use super::error::{CtlError, CtlResult, exit};

/// How often the rollout is polled.
const POLL: Duration = Duration::from_millis(500);

/// One line describing a rollout's progress.
pub(crate) fn summary(r: &pb::RolloutStatusResponse) -> String {
    let (ns, name) = r
        .workload
        .as_ref()
        .map(|w| (w.namespace.as_str(), w.name.as_str()))
        .unwrap_or_default();
    let mut s = format!(
        "{ns}/{name}: generation {}: {}/{} updated, {}/{} ready, {}/{} available",
        r.generation, r.updated, r.desired, r.ready, r.desired, r.available, r.desired
    );
    if r.paused {
        s.push_str(" (paused)");
    }
    if let Some(c) = unschedulable(&r.conditions) {
        s.push_str(&format!(
            " (cannot place: {})",
            super::error::one_line(&c.message)
        ));
    }
    if r.complete {
        s.push_str(": complete");
    }
    s
}

/// The `Unschedulable` condition when it holds.
pub(crate) fn unschedulable(conditions: &[pb::Condition]) -> Option<&pb::Condition> {
    conditions
        .iter()
        .find(|c| c.kind == "Unschedulable" && c.status == "True")
}

/// Waits until every workload's rollout is complete or `timeout` passes.
pub(crate) async fn wait_all(
    client: &Client,
    workloads: &[(String, String)],
    timeout: Duration,
) -> CtlResult<Vec<pb::RolloutStatusResponse>> {
    let tty = std::io::stderr().is_terminal();
    let deadline = Instant::now() + timeout;
    let mut done = Vec::new();
    for (ns, name) in workloads {
        let mut last = String::new();
        loop {
            let r = client
                .rollout_status(ns, name)
                .await
                .map_err(|e| CtlError::api(&format!("rollout status of {ns}/{name}"), &e))?;
            let line = summary(&r);
            if line != last {
                let mut err = std::io::stderr().lock();
                if tty {
                    let _ = write!(err, "\r\x1b[2K{line}");
                } else {
                    let _ = writeln!(err, "{line}");
                }
                let _ = err.flush();
                last = line;
            }
            if r.complete {
                if tty {
                    eprintln!();
                }
                done.push(r);
                break;
            }
            if Instant::now() >= deadline {
                if tty {
                    eprintln!();
                }
                return Err(CtlError::new(
                    exit::TIMEOUT,
                    format!(
                        "rollout of {ns}/{name} not complete after {}s: {last}; see `cloudlessctl workload describe {name} -n {ns}`",
                        timeout.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }
    Ok(done)
}
