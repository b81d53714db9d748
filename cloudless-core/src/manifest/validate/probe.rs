//! `spec.probes`: exactly one action, sane timing.

use crate::manifest::decode::Report;
use crate::manifest::path::FieldPath;
use crate::workload::{Probe, Probes};

pub(super) fn check(r: &mut Report<'_>, p: &FieldPath, probes: &Probes) {
    if let Some(probe) = &probes.liveness {
        one(r, &p.key("liveness"), probe);
    }
    if let Some(probe) = &probes.readiness {
        one(r, &p.key("readiness"), probe);
    }
}

fn one(r: &mut Report<'_>, p: &FieldPath, probe: &Probe) {
    match probe.actions().len() {
        1 => {}
        0 => r.fail(p, "set exactly one of exec, tcp or http"),
        n => r.fail(p, format!("set exactly one of exec, tcp or http (got {n})")),
    }
    if let Some(exec) = &probe.exec
        && exec.command.first().is_none_or(String::is_empty)
    {
        r.fail(&p.key("exec").key("command"), "must name a program");
    }
    if probe.tcp.as_ref().is_some_and(|t| t.port == 0) {
        r.fail(&p.key("tcp").key("port"), "must be between 1 and 65535");
    }
    if let Some(http) = &probe.http {
        if http.port == 0 {
            r.fail(&p.key("http").key("port"), "must be between 1 and 65535");
        }
        if !http.path.starts_with('/') {
            r.fail(
                &p.key("http").key("path"),
                format!("must start with '/' (got {:?})", http.path),
            );
        }
    }
    if probe.period.millis() == 0 {
        r.fail(&p.key("period"), "must be greater than zero");
    }
    if probe.timeout.millis() == 0 {
        r.fail(&p.key("timeout"), "must be greater than zero");
    } else if probe.timeout > probe.period && probe.period.millis() > 0 {
        r.fail(
            &p.key("timeout"),
            format!(
                "{} is longer than the period ({})",
                probe.timeout, probe.period
            ),
        );
    }
    if probe.success_threshold < 1 {
        r.fail(&p.key("successThreshold"), "must be at least 1");
    }
    if probe.failure_threshold < 1 {
        r.fail(&p.key("failureThreshold"), "must be at least 1");
    }
}
