//! Admission policy vocabulary (CLD-REQ-061).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Allow and deny lists. Deny wins over allow; an empty allow list allows everything not denied.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AllowDeny {
    /// Allowed patterns (`*` wildcards).
    #[serde(default)]
    pub allow: Vec<String>,
    /// Denied patterns (`*` wildcards).
    #[serde(default)]
    pub deny: Vec<String>,
}

/// Desired state of an admission policy.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PolicySpec {
    /// Image references, e.g. `localhost/cloudless/*`.
    #[serde(default)]
    pub images: AllowDeny,
    /// Registry hosts, e.g. `registry.example.org`.
    #[serde(default)]
    pub registries: AllowDeny,
    /// Linux capabilities workloads may add.
    #[serde(default)]
    pub capabilities: AllowDeny,
    /// Egress destinations as CIDRs (`10.0.0.0/8`) or host names.
    #[serde(default)]
    pub egress: AllowDeny,
    /// Allow `unconfined` seccomp/AppArmor profiles.
    #[serde(default)]
    pub allow_unconfined: bool,
}

/// A policy as the cluster state records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Policy {
    /// Name.
    pub name: String,
    /// Rules.
    pub spec: PolicySpec,
}
