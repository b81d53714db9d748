//! Conversions for nodes, node reports and heartbeats.

use cloudless_core::ids::{NodeId, NodeName};
use cloudless_core::node::{
    Liveness, Node, NodeReport, Platform, PowerSource, Reliability, Schedulability, Taint,
    TaintEffect,
};

use super::error::{WireError, required};
use super::pb;
use super::resources::enum_field;

/// An agent's heartbeat: who it is and its latest report (method
/// `cloudless.v1.Membership/Heartbeat`). Core has no type for it; it exists on the wire only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// The reporting node.
    pub node: NodeId,
    /// Its report.
    pub report: NodeReport,
}

/// The largest battery level accepted, in percent.
const MAX_BATTERY_PERCENT: u32 = 100;

impl From<Platform> for pb::Platform {
    fn from(p: Platform) -> Self {
        pb::Platform {
            architecture: p.architecture,
            os: p.os,
            variant: p.variant,
        }
    }
}

impl TryFrom<pb::Platform> for Platform {
    type Error = WireError;
    fn try_from(p: pb::Platform) -> Result<Self, WireError> {
        Ok(Platform {
            architecture: p.architecture,
            os: p.os,
            variant: p.variant,
        })
    }
}

impl From<PowerSource> for pb::PowerSource {
    fn from(p: PowerSource) -> Self {
        use pb::power_source::{Battery, Mains, Source};
        let source = match p {
            PowerSource::Mains => Source::Mains(Mains {}),
            PowerSource::Battery {
                level_percent,
                charging,
            } => Source::Battery(Battery {
                level_percent: u32::from(level_percent),
                charging,
            }),
        };
        pb::PowerSource {
            source: Some(source),
        }
    }
}

impl TryFrom<pb::PowerSource> for PowerSource {
    type Error = WireError;
    fn try_from(p: pb::PowerSource) -> Result<Self, WireError> {
        use pb::power_source::Source;
        match p.source.ok_or_else(|| WireError::missing("source"))? {
            Source::Mains(_) => Ok(PowerSource::Mains),
            Source::Battery(b) => {
                let level = u8::try_from(b.level_percent)
                    .ok()
                    .filter(|l| u32::from(*l) <= MAX_BATTERY_PERCENT)
                    .ok_or(WireError::OutOfRange {
                        field: "source.battery.level_percent".to_owned(),
                        value: u64::from(b.level_percent),
                        allowed: "0..=100",
                    })?;
                Ok(PowerSource::Battery {
                    level_percent: level,
                    charging: b.charging,
                })
            }
        }
    }
}

impl From<Liveness> for pb::Liveness {
    fn from(l: Liveness) -> Self {
        match l {
            Liveness::Joining => pb::Liveness::Joining,
            Liveness::Ready => pb::Liveness::Ready,
            Liveness::Suspect => pb::Liveness::Suspect,
            Liveness::Down => pb::Liveness::Down,
            Liveness::Left => pb::Liveness::Left,
        }
    }
}

impl TryFrom<pb::Liveness> for Liveness {
    type Error = WireError;
    fn try_from(l: pb::Liveness) -> Result<Self, WireError> {
        Ok(match l {
            pb::Liveness::Unspecified => return Err(WireError::missing("liveness")),
            pb::Liveness::Joining => Liveness::Joining,
            pb::Liveness::Ready => Liveness::Ready,
            pb::Liveness::Suspect => Liveness::Suspect,
            pb::Liveness::Down => Liveness::Down,
            pb::Liveness::Left => Liveness::Left,
        })
    }
}

impl From<Schedulability> for pb::Schedulability {
    fn from(s: Schedulability) -> Self {
        pb::Schedulability {
            cordoned: s.cordoned,
            draining: s.draining,
        }
    }
}

impl TryFrom<pb::Schedulability> for Schedulability {
    type Error = WireError;
    fn try_from(s: pb::Schedulability) -> Result<Self, WireError> {
        Ok(Schedulability {
            cordoned: s.cordoned,
            draining: s.draining,
        })
    }
}

fn effect_to_wire(e: TaintEffect) -> pb::TaintEffect {
    match e {
        TaintEffect::NoSchedule => pb::TaintEffect::NoSchedule,
        TaintEffect::PreferNoSchedule => pb::TaintEffect::PreferNoSchedule,
        TaintEffect::NoExecute => pb::TaintEffect::NoExecute,
    }
}

impl From<Taint> for pb::Taint {
    fn from(t: Taint) -> Self {
        pb::Taint {
            key: t.key,
            value: t.value,
            effect: effect_to_wire(t.effect) as i32,
        }
    }
}

impl TryFrom<pb::Taint> for Taint {
    type Error = WireError;
    fn try_from(t: pb::Taint) -> Result<Self, WireError> {
        let effect = match enum_field(t.effect, "effect")? {
            pb::TaintEffect::Unspecified => return Err(WireError::missing("effect")),
            pb::TaintEffect::NoSchedule => TaintEffect::NoSchedule,
            pb::TaintEffect::PreferNoSchedule => TaintEffect::PreferNoSchedule,
            pb::TaintEffect::NoExecute => TaintEffect::NoExecute,
        };
        Ok(Taint {
            key: t.key,
            value: t.value,
            effect,
        })
    }
}

impl From<Reliability> for pb::Reliability {
    fn from(r: Reliability) -> Self {
        pb::Reliability {
            uptime_secs: r.uptime_secs,
            recent_failures: r.recent_failures,
        }
    }
}

impl TryFrom<pb::Reliability> for Reliability {
    type Error = WireError;
    fn try_from(r: pb::Reliability) -> Result<Self, WireError> {
        Ok(Reliability {
            uptime_secs: r.uptime_secs,
            recent_failures: r.recent_failures,
        })
    }
}

impl From<NodeReport> for pb::NodeReport {
    fn from(r: NodeReport) -> Self {
        pb::NodeReport {
            platform: Some(r.platform.into()),
            region: r.region,
            zone: r.zone,
            labels: r.labels,
            capacity: Some(r.capacity.into()),
            allocatable: Some(r.allocatable.into()),
            power: Some(r.power.into()),
            reliability: Some(r.reliability.into()),
        }
    }
}

impl TryFrom<pb::NodeReport> for NodeReport {
    type Error = WireError;
    fn try_from(r: pb::NodeReport) -> Result<Self, WireError> {
        Ok(NodeReport {
            platform: required(r.platform, "platform")?,
            region: r.region,
            zone: r.zone,
            labels: r.labels,
            capacity: required(r.capacity, "capacity")?,
            allocatable: required(r.allocatable, "allocatable")?,
            power: required(r.power, "power")?,
            reliability: required(r.reliability, "reliability")?,
        })
    }
}

impl From<Node> for pb::Node {
    fn from(n: Node) -> Self {
        pb::Node {
            id: Some(n.id.into()),
            name: n.name.into(),
            report: Some(n.report.into()),
            taints: n.taints.into_iter().map(Into::into).collect(),
            liveness: pb::Liveness::from(n.liveness) as i32,
            schedulability: Some(n.schedulability.into()),
            registered_at_ms: n.registered_at_ms,
            last_seen_ms: n.last_seen_ms,
        }
    }
}

impl TryFrom<pb::Node> for Node {
    type Error = WireError;
    fn try_from(n: pb::Node) -> Result<Self, WireError> {
        let id = n.id.ok_or_else(|| WireError::missing("id"))?.into();
        let name = NodeName::new(n.name).map_err(|reason| WireError::InvalidName {
            field: "name".to_owned(),
            reason,
        })?;
        let liveness: pb::Liveness = enum_field(n.liveness, "liveness")?;
        let taints = n
            .taints
            .into_iter()
            .enumerate()
            .map(|(i, t)| Taint::try_from(t).map_err(|e| e.within(&format!("taints[{i}]"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Node {
            id,
            name,
            report: required(n.report, "report")?,
            taints,
            liveness: Liveness::try_from(liveness)?,
            schedulability: required(n.schedulability, "schedulability")?,
            registered_at_ms: n.registered_at_ms,
            last_seen_ms: n.last_seen_ms,
        })
    }
}

impl From<Heartbeat> for pb::Heartbeat {
    fn from(h: Heartbeat) -> Self {
        pb::Heartbeat {
            node: Some(h.node.into()),
            report: Some(h.report.into()),
        }
    }
}

impl TryFrom<pb::Heartbeat> for Heartbeat {
    type Error = WireError;
    fn try_from(h: pb::Heartbeat) -> Result<Self, WireError> {
        Ok(Heartbeat {
            node: h.node.ok_or_else(|| WireError::missing("node"))?.into(),
            report: required(h.report, "report")?,
        })
    }
}
