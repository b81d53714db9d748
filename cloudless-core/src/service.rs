//! Services and their endpoints (CLD-REQ-041, -042).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, ReplicaId};
use crate::workload::ServicePort;

/// Which replicas back a service.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSelector {
    /// Replicas of this workload (same namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workload: Option<String>,
    /// Replicas of workloads carrying all these labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

/// Desired state of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ServiceSpec {
    /// Backing replicas.
    pub selector: ServiceSelector,
    /// Ports.
    pub ports: Vec<ServicePort>,
    /// Prefer endpoints in the caller's zone (CLD-REQ-042).
    #[serde(default = "yes")]
    pub locality_aware: bool,
}

fn yes() -> bool {
    true
}

/// A service as the cluster state records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Service {
    /// Namespace.
    pub namespace: String,
    /// Name (DNS-1123 label).
    pub name: String,
    /// Desired state.
    pub spec: ServiceSpec,
    /// Virtual IP, once allocated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub virtual_ip: Option<String>,
}

/// One backend of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Endpoint {
    /// The replica behind it.
    pub replica: ReplicaId,
    /// Its node.
    pub node: NodeId,
    /// The container's address.
    pub address: String,
    /// Passing readiness (only ready endpoints receive traffic).
    pub ready: bool,
    /// Relative weight for load balancing.
    pub weight: u32,
    /// Zone of the node, for locality-aware balancing.
    #[serde(default)]
    pub zone: String,
}
