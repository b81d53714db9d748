//! Conversions for ids and resources.

use cloudless_core::ids::NodeId;
use cloudless_core::resources::{IopsClass, Resources};

use super::error::WireError;
use super::pb;

/// Reads a required enum field: UNSPECIFIED (0) is missing, an unknown number is rejected.
pub(crate) fn enum_field<E>(value: i32, field: &str) -> Result<E, WireError>
where
    E: TryFrom<i32>,
{
    if value == 0 {
        return Err(WireError::missing(field));
    }
    E::try_from(value).map_err(|_| WireError::UnknownEnum {
        field: field.to_owned(),
        value,
    })
}

impl From<NodeId> for pb::NodeId {
    fn from(id: NodeId) -> Self {
        pb::NodeId { value: id.get() }
    }
}

impl From<pb::NodeId> for NodeId {
    fn from(id: pb::NodeId) -> Self {
        NodeId(id.value)
    }
}

impl From<IopsClass> for pb::IopsClass {
    fn from(c: IopsClass) -> Self {
        match c {
            IopsClass::Low => pb::IopsClass::Low,
            IopsClass::Standard => pb::IopsClass::Standard,
            IopsClass::High => pb::IopsClass::High,
        }
    }
}

impl TryFrom<pb::IopsClass> for IopsClass {
    type Error = WireError;
    fn try_from(c: pb::IopsClass) -> Result<Self, WireError> {
        match c {
            pb::IopsClass::Unspecified => Err(WireError::missing("iops_class")),
            pb::IopsClass::Low => Ok(IopsClass::Low),
            pb::IopsClass::Standard => Ok(IopsClass::Standard),
            pb::IopsClass::High => Ok(IopsClass::High),
        }
    }
}

impl From<Resources> for pb::Resources {
    fn from(r: Resources) -> Self {
        pb::Resources {
            cpu_millis: r.cpu_millis,
            memory_mib: r.memory_mib,
            storage_gib: r.storage_gib,
            storage_iops: pb::IopsClass::from(r.storage_iops) as i32,
            egress_mbps: r.egress_mbps,
            gpus: r.gpus,
        }
    }
}

impl TryFrom<pb::Resources> for Resources {
    type Error = WireError;
    fn try_from(r: pb::Resources) -> Result<Self, WireError> {
        let iops: pb::IopsClass = enum_field(r.storage_iops, "storage_iops")?;
        Ok(Resources {
            cpu_millis: r.cpu_millis,
            memory_mib: r.memory_mib,
            storage_gib: r.storage_gib,
            storage_iops: IopsClass::try_from(iops).map_err(|e| e.within("storage_iops"))?,
            egress_mbps: r.egress_mbps,
            gpus: r.gpus,
        })
    }
}
