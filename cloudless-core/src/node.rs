//! Nodes: what a device is, what it offers, and how alive and schedulable it is.
//!
//! Liveness (is it there?) and schedulability (may new work go there?) are separate: a cordoned
//! node can still be Ready or Down (DESIGN §5, Membership).

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::ids::{NodeId, NodeName};
use crate::resources::Resources;

/// CPU architecture and operating system, in OCI terms (`amd64`/`arm64`/`arm`, `linux`).
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Platform {
    /// OCI architecture, e.g. `amd64`, `arm64`, `arm`, `riscv64`.
    pub architecture: String,
    /// OCI operating system, e.g. `linux`.
    pub os: String,
    /// Optional architecture variant, e.g. `v7` for `arm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// `linux/amd64`.
    pub fn linux_amd64() -> Self {
        Self {
            architecture: "amd64".into(),
            os: "linux".into(),
            variant: None,
        }
    }

    /// True if an image built for `self` runs on a node of platform `node`.
    pub fn runs_on(&self, node: &Platform) -> bool {
        self.os == node.os
            && self.architecture == node.architecture
            && (self.variant.is_none() || self.variant == node.variant)
    }
}

impl std::fmt::Display for Platform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Where a node's power comes from (reliability input, CLD-REQ-010).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", tag = "kind")]
pub enum PowerSource {
    /// Mains power (or unknown, treated as mains).
    #[default]
    Mains,
    /// Running on battery.
    Battery {
        /// Charge level in percent, 0..=100.
        level_percent: u8,
        /// True while plugged in and charging.
        charging: bool,
    },
}

/// Is the node there? Driven by the failure detector; only changes are committed.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    JsonSchema,
    Default,
)]
#[serde(rename_all = "camelCase")]
pub enum Liveness {
    /// Enrolled, first heartbeat not yet seen.
    #[default]
    Joining,
    /// Heartbeating.
    Ready,
    /// Missed heartbeats; not yet declared down.
    Suspect,
    /// Declared down; its replicas are rescheduled.
    Down,
    /// Left the cluster gracefully (or removed).
    Left,
}

/// May new work be placed on the node? Set by operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Schedulability {
    /// No new replicas are placed here.
    pub cordoned: bool,
    /// Cordoned, and existing replicas are being moved away.
    pub draining: bool,
}

impl Schedulability {
    /// True if neither cordoned nor draining.
    pub fn is_schedulable(&self) -> bool {
        !self.cordoned && !self.draining
    }
}

/// What a taint does to replicas that do not tolerate it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
pub enum TaintEffect {
    /// Never placed here.
    NoSchedule,
    /// Placed here only when nothing else fits (a score penalty).
    PreferNoSchedule,
    /// Not placed here, and running replicas are evicted.
    NoExecute,
}

/// A node taint: `key=value:effect`.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Taint {
    /// Taint key.
    pub key: String,
    /// Taint value (may be empty).
    #[serde(default)]
    pub value: String,
    /// Effect on replicas that do not tolerate it.
    pub effect: TaintEffect,
}

/// Inputs to the reliability score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Reliability {
    /// Seconds since the node's agent last started.
    pub uptime_secs: u64,
    /// Failures (crashes, Down transitions) in the recent window.
    pub recent_failures: u32,
}

/// What an agent reports about itself at enrollment and in heartbeats (CLD-REQ-010).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct NodeReport {
    /// Platform of the node.
    pub platform: Platform,
    /// Region, e.g. `eu-west`.
    #[serde(default)]
    pub region: String,
    /// Zone within the region, e.g. `home-1`.
    #[serde(default)]
    pub zone: String,
    /// Free-form labels.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Total resources of the device.
    pub capacity: Resources,
    /// What Cloudless may hand out (capacity minus the system reserve).
    pub allocatable: Resources,
    /// Power source.
    #[serde(default)]
    pub power: PowerSource,
    /// Reliability inputs.
    #[serde(default)]
    pub reliability: Reliability,
}

/// A node as the cluster state knows it.
///
/// Nodes are created by the state machine from an agent's [`NodeReport`]; reading one:
///
/// ```rust
/// use cloudless_core::ids::{NodeId, NodeName};
/// use cloudless_core::node::{Liveness, Node, NodeReport, Platform, Schedulability};
/// use cloudless_core::resources::Resources;
///
/// let size = Resources { cpu_millis: 4_000, memory_mib: 4_096, ..Resources::ZERO };
/// let mut node = Node {
///     id: NodeId(3),
///     name: NodeName::new("pi-3")?,
///     report: NodeReport {
///         platform: Platform::linux_amd64(),
///         region: "home".into(),
///         zone: "attic".into(),
///         labels: [("disk".to_owned(), "ssd".to_owned())].into(),
///         capacity: size,
///         allocatable: size,
///         power: Default::default(),
///         reliability: Default::default(),
///     },
///     taints: Vec::new(),
///     liveness: Liveness::Ready,
///     schedulability: Schedulability::default(),
///     registered_at_ms: 1_000,
///     last_seen_ms: 5_000,
/// };
/// assert!(node.accepts_new_work());
/// assert_eq!(node.report.platform.to_string(), "linux/amd64");
///
/// node.schedulability.cordoned = true; // `cloudlessctl node cordon pi-3`
/// assert!(!node.accepts_new_work());
/// # Ok::<(), cloudless_core::ids::NameError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Node {
    /// Cluster-wide id.
    pub id: NodeId,
    /// Human name.
    pub name: NodeName,
    /// The latest report.
    pub report: NodeReport,
    /// Operator-set taints.
    #[serde(default)]
    pub taints: Vec<Taint>,
    /// Liveness as last committed.
    pub liveness: Liveness,
    /// Cordon/drain state.
    #[serde(default)]
    pub schedulability: Schedulability,
    /// When the node registered (ms since the Unix epoch, from the command).
    pub registered_at_ms: u64,
    /// Last heartbeat or report the state saw (ms since the Unix epoch, from the command).
    pub last_seen_ms: u64,
}

impl Node {
    /// True if new replicas may be placed here: Ready and neither cordoned nor draining.
    pub fn accepts_new_work(&self) -> bool {
        self.liveness == Liveness::Ready && self.schedulability.is_schedulable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn platform_matching() {
        let amd = Platform::linux_amd64();
        let arm7 = Platform {
            architecture: "arm".into(),
            os: "linux".into(),
            variant: Some("v7".into()),
        };
        let arm = Platform {
            architecture: "arm".into(),
            os: "linux".into(),
            variant: None,
        };
        assert!(amd.runs_on(&amd));
        assert!(!amd.runs_on(&arm7));
        assert!(arm.runs_on(&arm7));
        assert!(!arm7.runs_on(&arm));
        assert_eq!(arm7.to_string(), "linux/arm/v7");
    }

    #[test]
    fn liveness_and_schedulability_are_separate() {
        let s = Schedulability {
            cordoned: true,
            draining: false,
        };
        assert!(!s.is_schedulable());
        assert!(Schedulability::default().is_schedulable());
    }
}
