//! Security context of a workload (CLD-REQ-062): least privilege by default.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Linux capabilities to add to or drop from the default set (names like `NET_BIND_SERVICE`).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Capabilities {
    /// Added to the default set.
    #[serde(default)]
    pub add: Vec<String>,
    /// Removed from the default set (`ALL` drops everything).
    #[serde(default)]
    pub drop: Vec<String>,
}

/// Which seccomp profile applies.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SeccompProfile {
    /// `runtimeDefault` (Cloudless's profile), `unconfined`, or `localhost` (a file on the node).
    #[serde(rename = "type", default)]
    pub kind: ProfileKind,
    /// Name of the node-local profile, required for `localhost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localhost_profile: Option<String>,
}

/// Which AppArmor profile applies (where the host supports AppArmor).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppArmorProfile {
    /// `runtimeDefault`, `unconfined`, or `localhost` (a profile loaded on the node).
    #[serde(rename = "type", default)]
    pub kind: ProfileKind,
    /// Name of the node-local profile, required for `localhost`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub localhost_profile: Option<String>,
}

/// Kind of a confinement profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum ProfileKind {
    /// The runtime's hardened default.
    #[default]
    RuntimeDefault,
    /// No confinement (must be allowed by policy).
    Unconfined,
    /// A named profile installed on the node.
    Localhost,
}

/// Security context of a workload's containers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityContext {
    /// UID to run as; the image's user when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_user: Option<u32>,
    /// GID to run as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_as_group: Option<u32>,
    /// Refuse to start as UID 0.
    #[serde(default)]
    pub run_as_non_root: bool,
    /// Mount the root filesystem read-only.
    #[serde(default)]
    pub read_only_root_filesystem: bool,
    /// Capability changes.
    #[serde(default)]
    pub capabilities: Capabilities,
    /// Seccomp profile.
    #[serde(default)]
    pub seccomp_profile: SeccompProfile,
    /// AppArmor profile.
    #[serde(default)]
    pub apparmor_profile: AppArmorProfile,
    /// Runtime class (e.g. a sandboxed runtime); the node default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime_class: Option<String>,
}
