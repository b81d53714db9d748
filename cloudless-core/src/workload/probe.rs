//! Liveness and readiness probes (CLD-REQ-032).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::DurationSpec;

/// Run a command in the container; exit code 0 is success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExecAction {
    /// argv of the command.
    pub command: Vec<String>,
}

/// Open a TCP connection to the container's port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TcpAction {
    /// Port on the container's address.
    pub port: u16,
}

/// HTTP GET; a 2xx or 3xx status is success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpAction {
    /// Port on the container's address.
    pub port: u16,
    /// Path, starting with `/`.
    #[serde(default = "root_path")]
    pub path: String,
}

fn root_path() -> String {
    "/".to_owned()
}

/// One probe: exactly one of `exec`, `tcp`, `http`, plus timing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probe {
    /// Exec action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    /// TCP action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tcp: Option<TcpAction>,
    /// HTTP action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http: Option<HttpAction>,
    /// Wait this long after start before the first probe.
    #[serde(default = "zero")]
    pub initial_delay: DurationSpec,
    /// Interval between probes.
    #[serde(default = "ten_s")]
    pub period: DurationSpec,
    /// A probe that takes longer fails.
    #[serde(default = "one_s")]
    pub timeout: DurationSpec,
    /// Consecutive successes to count as passing.
    #[serde(default = "one")]
    pub success_threshold: u32,
    /// Consecutive failures to count as failing.
    #[serde(default = "three")]
    pub failure_threshold: u32,
}

fn zero() -> DurationSpec {
    DurationSpec(0)
}
fn ten_s() -> DurationSpec {
    DurationSpec::from_secs(10)
}
fn one_s() -> DurationSpec {
    DurationSpec::from_secs(1)
}
fn one() -> u32 {
    1
}
fn three() -> u32 {
    3
}

/// The probe action, once validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeAction<'a> {
    /// Exec.
    Exec(&'a ExecAction),
    /// TCP.
    Tcp(&'a TcpAction),
    /// HTTP.
    Http(&'a HttpAction),
}

impl Probe {
    /// The configured actions; a valid probe has exactly one.
    pub fn actions(&self) -> Vec<ProbeAction<'_>> {
        let mut v = Vec::new();
        if let Some(a) = &self.exec {
            v.push(ProbeAction::Exec(a));
        }
        if let Some(a) = &self.tcp {
            v.push(ProbeAction::Tcp(a));
        }
        if let Some(a) = &self.http {
            v.push(ProbeAction::Http(a));
        }
        v
    }
}

/// The probes of a workload.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Probes {
    /// Failing liveness restarts the container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub liveness: Option<Probe>,
    /// Failing readiness removes the replica from service endpoints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub readiness: Option<Probe>,
}
