//! What the device offers: CPU from the scheduler's view of the process (`available_parallelism`,
//! which honours cgroup quotas and affinity), memory from `/proc/meminfo`, storage from
//! `statvfs` of the data dir, power from `/sys/class/power_supply`. Bandwidth, region, zone and
//! labels come from the config (which may also override everything detected).

use std::path::Path;

use cloudless_core::node::PowerSource;

/// Detected capacity of the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HostResources {
    /// CPU in millicores.
    pub cpu_millis: u64,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Storage available to the data dir's file system, in GiB.
    pub storage_gib: u64,
    /// Power source, when it could be detected.
    pub power: Option<PowerSource>,
}

/// Why the host's resources could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ResourceProbeError {
    /// A source could not be read.
    #[error("reading {what}: {reason}")]
    Read {
        /// What was read, e.g. `/proc/meminfo`.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// A source had an unexpected shape.
    #[error("parsing {what}: {reason}")]
    Parse {
        /// What was parsed.
        what: String,
        /// What was wrong.
        reason: String,
    },
}

/// Reads the host's capacity.
///
/// # Contract
/// - `probe` does no network I/O, returns quickly and never panics.
pub trait ResourceProbe: Send + Sync + 'static {
    /// The host's capacity; `data_dir` is where storage is measured.
    fn probe(&self, data_dir: &Path) -> Result<HostResources, ResourceProbeError>;
}

/// The real probe: `available_parallelism`, `/proc/meminfo`, `statvfs(data_dir)`,
/// `/sys/class/power_supply`.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcResourceProbe;

impl ResourceProbe for ProcResourceProbe {
    fn probe(&self, data_dir: &Path) -> Result<HostResources, ResourceProbeError> {
        let cpus = std::thread::available_parallelism().map_err(|e| ResourceProbeError::Read {
            what: "available CPU parallelism".into(),
            reason: e.to_string(),
        })?;
        let cpu_millis = u64::try_from(cpus.get())
            .unwrap_or(u64::MAX)
            .saturating_mul(1000);
        let meminfo =
            std::fs::read_to_string("/proc/meminfo").map_err(|e| ResourceProbeError::Read {
                what: "/proc/meminfo".into(),
                reason: e.to_string(),
            })?;
        let memory_mib = parse_meminfo_total_kib(&meminfo)? / 1024;
        let vfs = rustix::fs::statvfs(data_dir).map_err(|e| ResourceProbeError::Read {
            what: format!("statvfs of {}", data_dir.display()),
            reason: e.to_string(),
        })?;
        let storage_bytes = vfs.f_blocks.saturating_mul(vfs.f_frsize);
        Ok(HostResources {
            cpu_millis,
            memory_mib,
            storage_gib: storage_bytes >> 30,
            power: detect_power(Path::new("/sys/class/power_supply")),
        })
    }
}

/// The power source from a `power_supply` class directory: the first supply of type `Battery`
/// that reports a capacity gives level and charging state (`Charging` or `Full`); with no
/// battery the device runs on mains. `None` if the directory cannot be read.
pub(crate) fn detect_power(class_dir: &Path) -> Option<PowerSource> {
    let read = |p: &Path| std::fs::read_to_string(p).ok().map(|s| s.trim().to_owned());
    let mut supplies: Vec<_> = std::fs::read_dir(class_dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    supplies.sort();
    for dir in supplies {
        if read(&dir.join("type")).as_deref() != Some("Battery") {
            continue;
        }
        let Some(level) = read(&dir.join("capacity")).and_then(|c| c.parse::<u8>().ok()) else {
            continue;
        };
        let charging = matches!(
            read(&dir.join("status")).as_deref(),
            Some("Charging" | "Full")
        );
        return Some(PowerSource::Battery {
            level_percent: level.min(100),
            charging,
        });
    }
    Some(PowerSource::Mains)
}

/// `MemTotal` of a `/proc/meminfo` text, in KiB.
pub(crate) fn parse_meminfo_total_kib(text: &str) -> Result<u64, ResourceProbeError> {
    let parse_err = |reason: &str| ResourceProbeError::Parse {
        what: "/proc/meminfo".into(),
        reason: reason.into(),
    };
    let line = text
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .ok_or_else(|| parse_err("no MemTotal line"))?;
    let mut parts = line["MemTotal:".len()..].split_whitespace();
    let value = parts
        .next()
        .ok_or_else(|| parse_err("MemTotal has no value"))?
        .parse::<u64>()
        .map_err(|_| parse_err("MemTotal is not a whole number"))?;
    match parts.next() {
        Some("kB") | None => Ok(value),
        Some(_) => Err(parse_err("MemTotal has a unit other than kB")),
    }
}

/// Fixed numbers, for tests and simulations (and devices that know better than `/proc`).
#[derive(Debug, Clone, Copy, Default)]
pub struct FixedResourceProbe(pub HostResources);

impl ResourceProbe for FixedResourceProbe {
    fn probe(&self, _data_dir: &Path) -> Result<HostResources, ResourceProbeError> {
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_parsing() {
        let text = "MemTotal:       24563844 kB\nMemFree:        1000 kB\n";
        assert_eq!(parse_meminfo_total_kib(text).ok(), Some(24_563_844));
        assert!(parse_meminfo_total_kib("MemFree: 1 kB\n").is_err());
        assert!(parse_meminfo_total_kib("MemTotal: x kB\n").is_err());
        assert!(parse_meminfo_total_kib("MemTotal: 5 MB\n").is_err());
    }

    #[test]
    fn power_from_a_fake_sysfs() {
        let dir = tempfile::tempdir().expect("tempdir");
        let class = dir.path();
        assert_eq!(detect_power(class), Some(PowerSource::Mains), "no supplies");
        let ac = class.join("AC");
        std::fs::create_dir(&ac).expect("mkdir");
        std::fs::write(ac.join("type"), "Mains\n").expect("write");
        assert_eq!(detect_power(class), Some(PowerSource::Mains));
        let bat = class.join("BAT0");
        std::fs::create_dir(&bat).expect("mkdir");
        std::fs::write(bat.join("type"), "Battery\n").expect("write");
        std::fs::write(bat.join("capacity"), "42\n").expect("write");
        std::fs::write(bat.join("status"), "Discharging\n").expect("write");
        assert_eq!(
            detect_power(class),
            Some(PowerSource::Battery {
                level_percent: 42,
                charging: false
            })
        );
        std::fs::write(bat.join("status"), "Charging\n").expect("write");
        std::fs::write(bat.join("capacity"), "250\n").expect("write");
        assert_eq!(
            detect_power(class),
            Some(PowerSource::Battery {
                level_percent: 100,
                charging: true
            })
        );
        std::fs::write(bat.join("capacity"), "lots\n").expect("write");
        assert_eq!(
            detect_power(class),
            Some(PowerSource::Mains),
            "unreadable level"
        );
        assert_eq!(detect_power(&class.join("missing")), None);
    }

    #[test]
    fn the_real_probe_reads_this_host() {
        let dir = std::env::temp_dir();
        let r = ProcResourceProbe.probe(&dir).expect("probe");
        assert!(r.cpu_millis >= 1000);
        assert!(r.memory_mib > 0);
        assert!(ProcResourceProbe.probe(Path::new("/no/such/dir")).is_err());
    }
}
