//! Image garbage collection under disk pressure (containerd runtime): the `image_gc:` key of
//! the config file, its resolved settings, and starting the collector.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use cloudless_runtime::ContainerdRuntime;
use cloudless_runtime::containerd::disk_gc::DEFAULT_CONTAINERD_ROOT;
use cloudless_runtime::containerd::{DiskGcPolicy, ImageGc, Statvfs, Watermark};
use serde::Deserialize;

use super::{AgentSettings, DEFAULT_IMAGE_GC_PERIOD_SECS};
use crate::config::ConfigError;

/// `image_gc:` in the agent's config file. Free space is measured on the filesystem holding
/// `path`; below the low watermark (`low_percent` of the filesystem or `low_bytes`, whichever
/// is smaller) unused images are removed until free space reaches the high one.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageGcFile {
    /// `false` turns the collector off (default on with the containerd runtime).
    pub enabled: Option<bool>,
    /// A path on the filesystem holding containerd's content (default `/var/lib/containerd`,
    /// or the agent's data dir when that does not exist).
    pub path: Option<PathBuf>,
    /// Low watermark, percent of the filesystem (default 10).
    pub low_percent: Option<u8>,
    /// Low watermark, bytes (default 1 GiB).
    pub low_bytes: Option<u64>,
    /// High watermark, percent (default 15).
    pub high_percent: Option<u8>,
    /// High watermark, bytes (default 2 GiB).
    pub high_bytes: Option<u64>,
    /// Seconds between checks (default 60).
    pub period_secs: Option<u64>,
}

/// Resolved image GC settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageGcSettings {
    /// Filesystem measured (any path on it).
    pub path: PathBuf,
    /// Whether `path` was given (an unusable given path is an error; the default falls back
    /// to the data dir).
    pub path_given: bool,
    /// Watermarks.
    pub policy: DiskGcPolicy,
    /// Time between checks.
    pub period: Duration,
}

impl ImageGcFile {
    /// Validates and fills in defaults; `None` when disabled. Errors name the key.
    pub fn resolve(self) -> Result<Option<ImageGcSettings>, ConfigError> {
        if self.enabled == Some(false) {
            return Ok(None);
        }
        let d = DiskGcPolicy::default();
        let pct = |key: &'static str, v: Option<u8>, default: u8| match v {
            Some(p) if p > 100 => Err(ConfigError::invalid(
                key,
                format!("{p} is not a percentage (0-100)"),
            )),
            Some(p) => Ok(p),
            None => Ok(default),
        };
        let policy = DiskGcPolicy {
            low: Watermark {
                percent: pct("image_gc.low_percent", self.low_percent, d.low.percent)?,
                bytes: self.low_bytes.unwrap_or(d.low.bytes),
            },
            high: Watermark {
                percent: pct("image_gc.high_percent", self.high_percent, d.high.percent)?,
                bytes: self.high_bytes.unwrap_or(d.high.bytes),
            },
        };
        if policy.high.percent < policy.low.percent {
            return Err(ConfigError::invalid(
                "image_gc.high_percent",
                format!(
                    "{} is below image_gc.low_percent {}",
                    policy.high.percent, policy.low.percent
                ),
            ));
        }
        if policy.high.bytes < policy.low.bytes {
            return Err(ConfigError::invalid(
                "image_gc.high_bytes",
                format!(
                    "{} is below image_gc.low_bytes {}",
                    policy.high.bytes, policy.low.bytes
                ),
            ));
        }
        policy
            .validate()
            .map_err(|e| ConfigError::invalid("image_gc", e))?;
        let period_secs = self.period_secs.unwrap_or(DEFAULT_IMAGE_GC_PERIOD_SECS);
        if period_secs == 0 || period_secs > 86_400 {
            return Err(ConfigError::invalid(
                "image_gc.period_secs",
                format!("{period_secs} is not 1..=86400 seconds"),
            ));
        }
        let path_given = self.path.is_some();
        let path = match self.path {
            Some(p) => std::path::absolute(&p).map_err(|e| {
                ConfigError::invalid("image_gc.path", format!("{}: {e}", p.display()))
            })?,
            None => PathBuf::from(DEFAULT_CONTAINERD_ROOT),
        };
        Ok(Some(ImageGcSettings {
            path,
            path_given,
            policy,
            period: Duration::from_secs(period_secs),
        }))
    }
}

/// Starts the image collector of `rt`, keeping what `keep` names; `None` when off. A given
/// path that cannot be measured is an error; the default falls back to the data dir.
pub(super) fn start_image_gc<K>(
    s: &AgentSettings,
    rt: ContainerdRuntime,
    keep: K,
) -> Result<Option<tokio::task::JoinHandle<()>>>
where
    K: Fn() -> BTreeSet<String> + Send + Sync + 'static,
{
    use cloudless_runtime::containerd::FreeSpace;
    let Some(gc) = &s.image_gc else {
        return Ok(None);
    };
    let mut space = Statvfs(gc.path.clone());
    if let Err(e) = space.usage() {
        if gc.path_given {
            bail!("image_gc.path: measuring {}: {e}", gc.path.display());
        }
        tracing::info!(
            default = %gc.path.display(),
            data_dir = %s.data_dir.display(),
            "image GC: {e}; measuring the agent's data dir instead"
        );
        space = Statvfs(s.data_dir.clone());
        space
            .usage()
            .map_err(|e| anyhow!("image_gc.path: measuring {}: {e}", s.data_dir.display()))?;
    }
    tracing::info!(
        path = %space.0.display(),
        low_percent = gc.policy.low.percent,
        low_bytes = gc.policy.low.bytes,
        high_percent = gc.policy.high.percent,
        high_bytes = gc.policy.high.bytes,
        period_s = gc.period.as_secs(),
        "image GC on"
    );
    let collector =
        ImageGc::new(rt, gc.policy, Arc::new(space)).map_err(|e| anyhow!("image_gc: {e}"))?;
    Ok(Some(collector.spawn(gc.period, keep)))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::agent::{AgentFlags, DEFAULT_LOG_MAX_BYTES};
    use std::path::Path;

    #[test]
    fn log_cap_and_image_gc_are_validated_naming_the_key() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent.yaml");
        let flags = AgentFlags {
            config: Some(file.clone()),
            data_dir: Some(dir.path().join("d")),
            ..AgentFlags::default()
        };
        let resolve = |text: &str| {
            std::fs::write(&file, text).unwrap();
            AgentSettings::resolve(flags.clone())
        };
        let s = resolve("containerd_socket: /run/c.sock\n").unwrap();
        assert_eq!(s.log_max_bytes, DEFAULT_LOG_MAX_BYTES);
        let gc = s.image_gc.unwrap();
        assert_eq!(gc.policy, DiskGcPolicy::default());
        assert_eq!(gc.path, PathBuf::from(DEFAULT_CONTAINERD_ROOT));
        assert!(!gc.path_given);
        assert_eq!(gc.period, Duration::from_secs(DEFAULT_IMAGE_GC_PERIOD_SECS));
        let s = resolve(
            "containerd_socket: /run/c.sock\nlog_max_bytes: 65536\nimage_gc:\n  path: /srv/ctrd\n  \
             low_percent: 5\n  low_bytes: 100\n  high_percent: 7\n  high_bytes: 200\n  \
             period_secs: 30\n",
        )
        .unwrap();
        assert_eq!(s.log_max_bytes, 65536);
        let gc = s.image_gc.unwrap();
        assert_eq!(
            (gc.policy.low, gc.policy.high),
            (
                Watermark {
                    percent: 5,
                    bytes: 100
                },
                Watermark {
                    percent: 7,
                    bytes: 200
                }
            )
        );
        assert!(gc.path_given && gc.path == Path::new("/srv/ctrd"));
        assert_eq!(gc.period, Duration::from_secs(30));
        let off = resolve(
            "containerd_socket: /run/c.sock\nlog_max_bytes: 0\nimage_gc: {enabled: false}\n",
        )
        .unwrap();
        assert_eq!((off.log_max_bytes, off.image_gc), (0, None));
        for (text, key) in [
            ("log_max_bytes: 100\n", "log_max_bytes:"),
            ("image_gc: {low_percent: 101}\n", "image_gc.low_percent:"),
            (
                "image_gc: {low_percent: 20, high_percent: 10}\n",
                "image_gc.high_percent:",
            ),
            (
                "image_gc: {low_bytes: 20, high_bytes: 10}\n",
                "image_gc.high_bytes:",
            ),
            ("image_gc: {period_secs: 0}\n", "image_gc.period_secs:"),
            ("image_gc: {low_watermark: 3}\n", "low_watermark"),
        ] {
            let e = resolve(&format!("containerd_socket: /run/c.sock\n{text}")).unwrap_err();
            assert!(e.to_string().contains(key), "{text}: {e}");
        }
        let e = resolve("runtime: process\nimage_gc: {low_percent: 5}\n").unwrap_err();
        assert!(e.to_string().starts_with("image_gc:"), "{e}");
        assert!(
            resolve("runtime: process\n").unwrap().image_gc.is_none(),
            "no image GC without containerd"
        );
    }
}
