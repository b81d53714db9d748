//! Resource quantities a node offers and a fragment reserves (CLD-REQ-010, -011).
//!
//! All arithmetic is checked: an overflow or an underflow is an error, never a wrap.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Storage performance class. Ordered: a node of a higher class satisfies a request for a lower one.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    Serialize,
    Deserialize,
    JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub enum IopsClass {
    /// SD cards, USB sticks, spinning disks.
    Low,
    /// Ordinary SSDs.
    #[default]
    Standard,
    /// NVMe and provisioned-IOPS volumes.
    High,
}

/// A bundle of resources: what a node has, what is left, or what a fragment reserves.
///
/// ```rust
/// use cloudless_core::resources::{Dimension, ResourceError, Resources};
///
/// let node = Resources { cpu_millis: 2_000, memory_mib: 1_024, ..Resources::ZERO };
/// let replica = Resources { cpu_millis: 500, memory_mib: 768, ..Resources::ZERO };
///
/// assert!(node.fits(&replica));
/// let left = node.checked_sub(&replica)?;
/// assert_eq!(left.memory_mib, 256);
/// // A second replica runs out of memory, and says so.
/// assert_eq!(left.shortfalls(&replica), vec![Dimension::Memory]);
/// assert_eq!(left.checked_sub(&replica), Err(ResourceError::Underflow(Dimension::Memory)));
/// # Ok::<(), ResourceError>(())
/// ```
///
/// `storage_iops` is not additive: for a node it is the class the node offers, for a request
/// the minimum class needed. Arithmetic keeps the left-hand side's class.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Resources {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Storage in GiB.
    pub storage_gib: u64,
    /// Storage performance class.
    pub storage_iops: IopsClass,
    /// Egress bandwidth in Mbps.
    pub egress_mbps: u64,
    /// Whole GPUs.
    pub gpus: u32,
}

/// A resource dimension, used in explanations and errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Dimension {
    /// CPU millicores.
    Cpu,
    /// Memory MiB.
    Memory,
    /// Storage GiB.
    Storage,
    /// Storage IOPS class.
    StorageIops,
    /// Egress Mbps.
    Egress,
    /// GPUs.
    Gpus,
}

impl std::fmt::Display for Dimension {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Dimension::Cpu => "cpu",
            Dimension::Memory => "memory",
            Dimension::Storage => "storage",
            Dimension::StorageIops => "storage iops class",
            Dimension::Egress => "egress bandwidth",
            Dimension::Gpus => "gpus",
        })
    }
}

/// Resource arithmetic went out of range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ResourceError {
    /// A sum exceeded the integer range.
    #[error("{0} overflowed")]
    Overflow(Dimension),
    /// A difference went below zero.
    #[error("{0} went below zero")]
    Underflow(Dimension),
}

impl Resources {
    /// No resources.
    pub const ZERO: Resources = Resources {
        cpu_millis: 0,
        memory_mib: 0,
        storage_gib: 0,
        storage_iops: IopsClass::Low,
        egress_mbps: 0,
        gpus: 0,
    };

    /// `self + other`, or which dimension overflowed.
    pub fn checked_add(&self, other: &Resources) -> Result<Resources, ResourceError> {
        Ok(Resources {
            cpu_millis: self
                .cpu_millis
                .checked_add(other.cpu_millis)
                .ok_or(ResourceError::Overflow(Dimension::Cpu))?,
            memory_mib: self
                .memory_mib
                .checked_add(other.memory_mib)
                .ok_or(ResourceError::Overflow(Dimension::Memory))?,
            storage_gib: self
                .storage_gib
                .checked_add(other.storage_gib)
                .ok_or(ResourceError::Overflow(Dimension::Storage))?,
            storage_iops: self.storage_iops,
            egress_mbps: self
                .egress_mbps
                .checked_add(other.egress_mbps)
                .ok_or(ResourceError::Overflow(Dimension::Egress))?,
            gpus: self
                .gpus
                .checked_add(other.gpus)
                .ok_or(ResourceError::Overflow(Dimension::Gpus))?,
        })
    }

    /// `self - other`, or which dimension went below zero.
    pub fn checked_sub(&self, other: &Resources) -> Result<Resources, ResourceError> {
        Ok(Resources {
            cpu_millis: self
                .cpu_millis
                .checked_sub(other.cpu_millis)
                .ok_or(ResourceError::Underflow(Dimension::Cpu))?,
            memory_mib: self
                .memory_mib
                .checked_sub(other.memory_mib)
                .ok_or(ResourceError::Underflow(Dimension::Memory))?,
            storage_gib: self
                .storage_gib
                .checked_sub(other.storage_gib)
                .ok_or(ResourceError::Underflow(Dimension::Storage))?,
            storage_iops: self.storage_iops,
            egress_mbps: self
                .egress_mbps
                .checked_sub(other.egress_mbps)
                .ok_or(ResourceError::Underflow(Dimension::Egress))?,
            gpus: self
                .gpus
                .checked_sub(other.gpus)
                .ok_or(ResourceError::Underflow(Dimension::Gpus))?,
        })
    }

    /// `self - other`, clamped at zero per dimension (for reporting free capacity).
    pub fn saturating_sub(&self, other: &Resources) -> Resources {
        Resources {
            cpu_millis: self.cpu_millis.saturating_sub(other.cpu_millis),
            memory_mib: self.memory_mib.saturating_sub(other.memory_mib),
            storage_gib: self.storage_gib.saturating_sub(other.storage_gib),
            storage_iops: self.storage_iops,
            egress_mbps: self.egress_mbps.saturating_sub(other.egress_mbps),
            gpus: self.gpus.saturating_sub(other.gpus),
        }
    }

    /// `self * n` for `n` identical reservations.
    pub fn checked_mul(&self, n: u64) -> Result<Resources, ResourceError> {
        let gpus = u64::from(self.gpus)
            .checked_mul(n)
            .and_then(|g| u32::try_from(g).ok())
            .ok_or(ResourceError::Overflow(Dimension::Gpus))?;
        Ok(Resources {
            cpu_millis: self
                .cpu_millis
                .checked_mul(n)
                .ok_or(ResourceError::Overflow(Dimension::Cpu))?,
            memory_mib: self
                .memory_mib
                .checked_mul(n)
                .ok_or(ResourceError::Overflow(Dimension::Memory))?,
            storage_gib: self
                .storage_gib
                .checked_mul(n)
                .ok_or(ResourceError::Overflow(Dimension::Storage))?,
            storage_iops: self.storage_iops,
            egress_mbps: self
                .egress_mbps
                .checked_mul(n)
                .ok_or(ResourceError::Overflow(Dimension::Egress))?,
            gpus,
        })
    }

    /// Every dimension in which `request` does not fit into `self` (free capacity), in a fixed order.
    /// Empty means it fits.
    pub fn shortfalls(&self, request: &Resources) -> Vec<Dimension> {
        let mut out = Vec::new();
        if request.cpu_millis > self.cpu_millis {
            out.push(Dimension::Cpu);
        }
        if request.memory_mib > self.memory_mib {
            out.push(Dimension::Memory);
        }
        if request.storage_gib > self.storage_gib {
            out.push(Dimension::Storage);
        }
        if request.storage_gib > 0 && request.storage_iops > self.storage_iops {
            out.push(Dimension::StorageIops);
        }
        if request.egress_mbps > self.egress_mbps {
            out.push(Dimension::Egress);
        }
        if request.gpus > self.gpus {
            out.push(Dimension::Gpus);
        }
        out
    }

    /// True if `request` fits into `self` on every dimension.
    pub fn fits(&self, request: &Resources) -> bool {
        self.shortfalls(request).is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn r(cpu: u64, mem: u64) -> Resources {
        Resources {
            cpu_millis: cpu,
            memory_mib: mem,
            ..Resources::ZERO
        }
    }

    #[test]
    fn checked_arithmetic() {
        assert_eq!(r(1, 2).checked_add(&r(3, 4)).unwrap(), r(4, 6));
        assert_eq!(
            r(u64::MAX, 0).checked_add(&r(1, 0)),
            Err(ResourceError::Overflow(Dimension::Cpu))
        );
        assert_eq!(
            r(0, 1).checked_sub(&r(0, 2)),
            Err(ResourceError::Underflow(Dimension::Memory))
        );
        assert_eq!(r(5, 5).saturating_sub(&r(9, 1)), r(0, 4));
        assert_eq!(r(2, 3).checked_mul(3).unwrap(), r(6, 9));
    }

    #[test]
    fn shortfalls_name_each_dimension() {
        let free = Resources {
            cpu_millis: 1000,
            memory_mib: 512,
            storage_gib: 10,
            storage_iops: IopsClass::Standard,
            egress_mbps: 10,
            gpus: 0,
        };
        let req = Resources {
            cpu_millis: 2000,
            memory_mib: 100,
            storage_gib: 1,
            storage_iops: IopsClass::High,
            egress_mbps: 10,
            gpus: 1,
        };
        assert_eq!(
            free.shortfalls(&req),
            vec![Dimension::Cpu, Dimension::StorageIops, Dimension::Gpus]
        );
        assert!(free.fits(&r(1000, 512)));
    }

    proptest! {
        #[test]
        fn add_then_sub_is_identity(a in 0u64..u64::MAX / 2, b in 0u64..u64::MAX / 2) {
            let x = r(a, b);
            let y = r(b, a);
            prop_assert_eq!(x.checked_add(&y).unwrap().checked_sub(&y).unwrap(), x);
        }
    }
}
