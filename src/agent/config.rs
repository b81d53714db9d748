//! The agent's configuration: where it keeps its state, how it paces itself, and what it says
//! about the device (region, zone, labels, bandwidth, power, reserve).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use cloudless_core::node::{Platform, PowerSource};
use cloudless_core::resources::{IopsClass, Resources};

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("agent config field `{field}`: {reason}")]
pub struct ConfigError {
    /// The offending field, e.g. `heartbeat_interval`.
    pub field: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

fn bad(field: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        reason: reason.into(),
    }
}

/// Configuration of one agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentConfig {
    /// Directory holding the agent's persisted state (assignments, replica records); created
    /// with mode 0700 if missing.
    pub data_dir: PathBuf,
    /// Heartbeat period until the first acknowledgement names one.
    pub heartbeat_interval: Duration,
    /// First delay before retrying an unreachable control plane.
    pub control_retry_initial: Duration,
    /// Largest delay between control-plane retries.
    pub control_retry_max: Duration,
    /// Node-wide cap on a workload's restart backoff.
    pub max_restart_backoff: Duration,
    /// A container that ran this long before exiting starts a fresh backoff sequence.
    pub restart_reset_after: Duration,
    /// Grace period when stopping a container (SIGTERM, then SIGKILL).
    pub stop_grace: Duration,
    /// How often the agent lists the runtime's containers even without events.
    pub resync_interval: Duration,
    /// Region reported to the coordinators.
    pub region: String,
    /// Zone reported to the coordinators.
    pub zone: String,
    /// Labels reported to the coordinators.
    pub labels: BTreeMap<String, String>,
    /// Platform; detected from the build target when absent.
    pub platform: Option<Platform>,
    /// Power source; detected from `/sys/class/power_supply` when absent (no battery: mains).
    pub power: Option<PowerSource>,
    /// Egress bandwidth in Mbps (not detected; 0 means "unknown").
    pub egress_mbps: u64,
    /// Storage performance class of the data dir's device.
    pub storage_iops: IopsClass,
    /// Overrides the detected CPU in millicores.
    pub cpu_millis: Option<u64>,
    /// Overrides the detected memory in MiB.
    pub memory_mib: Option<u64>,
    /// Overrides the detected storage in GiB.
    pub storage_gib: Option<u64>,
    /// Kept back for the system: allocatable = capacity - reserved.
    pub reserved: Resources,
}

impl AgentConfig {
    /// Defaults with `data_dir`.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            data_dir: data_dir.into(),
            ..Self::default()
        }
    }

    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(bad("data_dir", "must not be empty"));
        }
        let positive = [
            ("heartbeat_interval", self.heartbeat_interval),
            ("control_retry_initial", self.control_retry_initial),
            ("control_retry_max", self.control_retry_max),
            ("max_restart_backoff", self.max_restart_backoff),
            ("resync_interval", self.resync_interval),
        ];
        for (field, d) in positive {
            if d.is_zero() {
                return Err(bad(field, "must be greater than zero"));
            }
            if d > Duration::from_secs(24 * 3600) {
                return Err(bad(field, "must be at most 24h"));
            }
        }
        if self.control_retry_max < self.control_retry_initial {
            return Err(bad(
                "control_retry_max",
                "must not be smaller than control_retry_initial",
            ));
        }
        if self.stop_grace > Duration::from_secs(3600) {
            return Err(bad("stop_grace", "must be at most 1h"));
        }
        if self.cpu_millis == Some(0) {
            return Err(bad("cpu_millis", "an override must be greater than zero"));
        }
        if self.memory_mib == Some(0) {
            return Err(bad("memory_mib", "an override must be greater than zero"));
        }
        if let Some(PowerSource::Battery { level_percent, .. }) = self.power
            && level_percent > 100
        {
            return Err(bad("power", "battery level must be 0..=100 percent"));
        }
        Ok(())
    }
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("/var/lib/cloudless/agent"),
            heartbeat_interval: Duration::from_millis(500),
            control_retry_initial: Duration::from_millis(500),
            control_retry_max: Duration::from_secs(5),
            max_restart_backoff: Duration::from_secs(300),
            restart_reset_after: Duration::from_secs(60),
            stop_grace: Duration::from_secs(10),
            resync_interval: Duration::from_secs(10),
            region: String::new(),
            zone: String::new(),
            labels: BTreeMap::new(),
            platform: None,
            power: None,
            egress_mbps: 0,
            storage_iops: IopsClass::Standard,
            cpu_millis: None,
            memory_mib: None,
            storage_gib: None,
            reserved: Resources::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_errors_name_the_field() {
        assert_eq!(AgentConfig::new("/tmp/x").validate(), Ok(()));
        let mut c = AgentConfig::new("/tmp/x");
        c.heartbeat_interval = Duration::ZERO;
        assert_eq!(c.validate().map_err(|e| e.field), Err("heartbeat_interval"));
        let mut c = AgentConfig::new("");
        c.stop_grace = Duration::from_secs(1);
        assert_eq!(c.validate().map_err(|e| e.field), Err("data_dir"));
        let mut c = AgentConfig::new("/tmp/x");
        c.control_retry_max = Duration::from_millis(1);
        let e = c.validate().err();
        assert_eq!(e.as_ref().map(|e| e.field), Some("control_retry_max"));
        assert!(
            e.map(|e| e.to_string())
                .unwrap_or_default()
                .contains("control_retry_max")
        );
        let mut c = AgentConfig::new("/tmp/x");
        c.power = Some(PowerSource::Battery {
            level_percent: 101,
            charging: false,
        });
        assert_eq!(c.validate().map_err(|e| e.field), Err("power"));
    }
}
