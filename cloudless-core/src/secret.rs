//! Secret vocabulary (CLD-REQ-063). Values never appear in these types.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A secret as written in a manifest. Values are delivered to the `SecretStore` and never
/// stored in cluster state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretSpec {
    /// Values, base64-encoded.
    #[serde(default)]
    pub data: BTreeMap<String, String>,
    /// Values as plain strings (convenience for authoring).
    #[serde(default)]
    pub string_data: BTreeMap<String, String>,
}

/// Metadata about a stored secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecretMeta {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// Keys held (values are never listed).
    pub keys: Vec<String>,
    /// Increases on every put or rotation.
    pub version: u64,
    /// Creation time (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// Last change (ms since the Unix epoch).
    pub updated_at_ms: u64,
}
