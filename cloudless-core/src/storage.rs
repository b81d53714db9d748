//! Object store vocabulary: buckets and object metadata (CLD-REQ-050, -051, -053).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::quantity::Storage;

/// Erasure coding for cold data (CLD-REQ-053).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ErasureCoding {
    /// Data shards.
    pub data_shards: u32,
    /// Parity shards.
    pub parity_shards: u32,
}

/// Desired state of a bucket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BucketSpec {
    /// Copies of every chunk (R, default 3).
    #[serde(default = "three")]
    pub replication: u32,
    /// Erasure coding instead of replication for cold data (needs ≥ 6 nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erasure_coding: Option<ErasureCoding>,
    /// Keep old versions of overwritten objects.
    #[serde(default)]
    pub versioning: bool,
    /// Maximum total size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quota: Option<Storage>,
}

fn three() -> u32 {
    3
}

impl Default for BucketSpec {
    fn default() -> Self {
        Self {
            replication: 3,
            erasure_coding: None,
            versioning: false,
            quota: None,
        }
    }
}

/// A bucket as the cluster state records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Bucket {
    /// Name (DNS-1123 label), cluster-wide.
    pub name: String,
    /// Desired state.
    pub spec: BucketSpec,
    /// Creation time (ms since the Unix epoch).
    pub created_at_ms: u64,
}

/// Metadata of one stored object version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ObjectMeta {
    /// Bucket name.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// Version id, increasing per key.
    pub version: u64,
    /// Size in bytes.
    pub size: u64,
    /// SHA-256 of the content, lowercase hex.
    pub sha256: String,
    /// Content type.
    #[serde(default)]
    pub content_type: String,
    /// Creation time (ms since the Unix epoch).
    pub created_at_ms: u64,
}
