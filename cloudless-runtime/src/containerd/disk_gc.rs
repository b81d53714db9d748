//! Image garbage collection under disk pressure (small devices): when free space on the
//! filesystem holding containerd's root falls below the low watermark, remove the images no
//! container uses and no current assignment needs, least recently used first, until free space
//! is back above the high watermark. containerd's own collector then frees their content and
//! snapshots.
//!
//! The decision ([`DiskGcPolicy::plan`]) is pure; [`ImageGc`] gathers the inputs (free space
//! from a [`FreeSpace`] source, the images and their use from containerd), removes what the
//! plan names and measures again. "Last used" is a label, [`LABEL_LAST_USED`], that each
//! collection stamps on every image in use, so it survives agent restarts; an image never seen
//! in use counts from its creation (pull or import).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cloudless_core::runtime::RuntimeError;
use containerd_client::services::v1::{Image, UpdateImageRequest};
use containerd_client::tonic::Code;

use super::client::status_error;
use super::{ContainerdRuntime, gc, image};

/// Image label holding when a container last used the image (ms since the Unix epoch).
pub const LABEL_LAST_USED: &str = "cloudless.io/last-used-ms";

/// Containerd's default root directory (its content store and snapshots live under it).
pub const DEFAULT_CONTAINERD_ROOT: &str = "/var/lib/containerd";

/// Size and free space of a filesystem, in bytes (free: what unprivileged users may still
/// allocate).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsUsage {
    /// Size of the filesystem.
    pub total_bytes: u64,
    /// Free space.
    pub free_bytes: u64,
}

/// Where free space is measured (a fake in tests).
pub trait FreeSpace: Send + Sync {
    /// The filesystem's current usage.
    fn usage(&self) -> std::io::Result<FsUsage>;
}

/// `statvfs(2)` of a path: the filesystem holding containerd's root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statvfs(pub PathBuf);

impl FreeSpace for Statvfs {
    fn usage(&self) -> std::io::Result<FsUsage> {
        let st = rustix::fs::statvfs(&self.0)?;
        Ok(FsUsage {
            total_bytes: st.f_blocks.saturating_mul(st.f_frsize),
            free_bytes: st.f_bavail.saturating_mul(st.f_frsize),
        })
    }
}

impl<F> FreeSpace for F
where
    F: Fn() -> std::io::Result<FsUsage> + Send + Sync,
{
    fn usage(&self) -> std::io::Result<FsUsage> {
        self()
    }
}

/// A free-space level: `percent` of the filesystem or `bytes`, whichever is smaller (so small
/// devices count in percent and large disks in bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watermark {
    /// Percent of the filesystem's size (0-100).
    pub percent: u8,
    /// Absolute bytes.
    pub bytes: u64,
}

impl Watermark {
    /// The level in bytes on a filesystem of `total` bytes.
    pub fn bytes_of(&self, total: u64) -> u64 {
        let pct = u128::from(total) * u128::from(self.percent.min(100)) / 100;
        u64::try_from(pct).unwrap_or(u64::MAX).min(self.bytes)
    }
}

/// When to collect images and how far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DiskGcPolicy {
    /// Collect when free space is below this.
    pub low: Watermark,
    /// Collect until free space is at least this.
    pub high: Watermark,
}

impl Default for DiskGcPolicy {
    /// Collect below 10 % or 1 GiB free (whichever is smaller), up to 15 % or 2 GiB.
    fn default() -> Self {
        Self {
            low: Watermark {
                percent: 10,
                bytes: 1 << 30,
            },
            high: Watermark {
                percent: 15,
                bytes: 2 << 30,
            },
        }
    }
}

/// An image as the policy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageUse {
    /// Image name.
    pub name: String,
    /// Last use (or creation), ms since the Unix epoch.
    pub last_used_ms: u64,
    /// Estimated bytes its removal frees (content of its manifest, config and layers; layers
    /// shared with other images make this an over-estimate, which the next measurement
    /// corrects).
    pub size_bytes: u64,
    /// A container (of any state) references it.
    pub in_use: bool,
}

impl DiskGcPolicy {
    /// Checks that the watermarks make sense.
    pub fn validate(&self) -> Result<(), String> {
        if self.low.percent > 100 || self.high.percent > 100 {
            return Err("watermark percentages must be at most 100".to_owned());
        }
        if self.high.percent < self.low.percent || self.high.bytes < self.low.bytes {
            return Err("the high watermark must not be below the low one".to_owned());
        }
        Ok(())
    }

    /// Whether `usage` is under pressure (free below the low watermark).
    pub fn under_pressure(&self, usage: FsUsage) -> bool {
        usage.free_bytes < self.low.bytes_of(usage.total_bytes)
    }

    /// Whether `usage` has reached the high watermark.
    pub fn satisfied(&self, usage: FsUsage) -> bool {
        usage.free_bytes >= self.high.bytes_of(usage.total_bytes)
    }

    /// The images to remove, in order: nothing unless under pressure; else the images that are
    /// not in use and not in `keep`, least recently used first (then by name), until their
    /// estimated sizes bring free space to the high watermark (all of them if they cannot).
    pub fn plan(
        &self,
        usage: FsUsage,
        images: &[ImageUse],
        keep: &BTreeSet<String>,
    ) -> Vec<String> {
        if !self.under_pressure(usage) {
            return Vec::new();
        }
        let target = self.high.bytes_of(usage.total_bytes);
        let mut candidates: Vec<&ImageUse> = images
            .iter()
            .filter(|i| !i.in_use && !keep.contains(&i.name))
            .collect();
        candidates.sort_by(|a, b| (a.last_used_ms, &a.name).cmp(&(b.last_used_ms, &b.name)));
        let mut free = usage.free_bytes;
        let mut out = Vec::new();
        for c in candidates {
            if free >= target {
                break;
            }
            free = free.saturating_add(c.size_bytes);
            out.push(c.name.clone());
        }
        out
    }
}

/// What one collection saw and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GcReport {
    /// Usage before.
    pub before: FsUsage,
    /// Usage after.
    pub after: FsUsage,
    /// Removed images, in removal order.
    pub removed: Vec<String>,
}

/// Why a collection failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskGcError {
    /// Free space could not be measured.
    #[error("measuring free space: {0}")]
    FreeSpace(#[source] std::io::Error),
    /// containerd failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn last_used(image: &Image) -> u64 {
    image
        .labels
        .get(LABEL_LAST_USED)
        .and_then(|v| v.parse().ok())
        .or_else(|| {
            image.created_at.as_ref().map(|t| {
                u64::try_from(t.seconds).unwrap_or(0) * 1000
                    + u64::try_from(t.nanos / 1_000_000).unwrap_or(0)
            })
        })
        .unwrap_or(0)
}

impl ContainerdRuntime {
    /// The images of this namespace with their last use, estimated size and whether a
    /// container references them; stamps [`LABEL_LAST_USED`] on the used ones and on `keep`.
    pub async fn image_usage(
        &self,
        keep: &BTreeSet<String>,
    ) -> Result<Vec<ImageUse>, RuntimeError> {
        let client = &self.inner.client;
        let (images, used) = gc::images_and_users(&self.inner).await?;
        let now = now_ms();
        let mut out = Vec::with_capacity(images.len());
        for img in images {
            let in_use = used.contains(&img.name);
            let mut last = last_used(&img);
            if in_use || keep.contains(&img.name) {
                last = now;
                let mut labels = std::collections::HashMap::new();
                labels.insert(LABEL_LAST_USED.to_owned(), now.to_string());
                let update = client
                    .images()
                    .update(client.req(UpdateImageRequest {
                        image: Some(Image {
                            name: img.name.clone(),
                            labels,
                            ..Image::default()
                        }),
                        update_mask: Some(prost_types::FieldMask {
                            paths: vec![format!("labels.{LABEL_LAST_USED}")],
                        }),
                        source_date_epoch: None,
                    }))
                    .await;
                match update {
                    Ok(_) => {}
                    // Removed meanwhile.
                    Err(s) if s.code() == Code::NotFound => continue,
                    Err(s) => return Err(status_error(s, "image update")),
                }
            }
            let target_size = img
                .target
                .as_ref()
                .map_or(0, |t| u64::try_from(t.size).unwrap_or(0));
            // An image whose manifest cannot be read still counts (its record's own size).
            let layers: u64 = match image::resolve(client, &img.name).await {
                Ok(r) => r
                    .layers
                    .iter()
                    .map(|(d, _)| u64::try_from(d.size).unwrap_or(0))
                    .sum(),
                Err(_) => 0,
            };
            out.push(ImageUse {
                name: img.name,
                last_used_ms: last,
                size_bytes: target_size.saturating_add(layers),
                in_use,
            });
        }
        Ok(out)
    }
}

/// Collects images under disk pressure for one [`ContainerdRuntime`].
#[derive(Clone)]
pub struct ImageGc {
    runtime: ContainerdRuntime,
    policy: DiskGcPolicy,
    space: Arc<dyn FreeSpace>,
}

impl std::fmt::Debug for ImageGc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageGc")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl ImageGc {
    /// A collector for `runtime` with `policy`, measuring free space with `space` (usually
    /// [`Statvfs`] of containerd's root, e.g. [`DEFAULT_CONTAINERD_ROOT`]).
    pub fn new(
        runtime: ContainerdRuntime,
        policy: DiskGcPolicy,
        space: Arc<dyn FreeSpace>,
    ) -> Result<Self, String> {
        policy.validate()?;
        Ok(Self {
            runtime,
            policy,
            space,
        })
    }

    fn measure(&self) -> Result<FsUsage, DiskGcError> {
        self.space.usage().map_err(DiskGcError::FreeSpace)
    }

    /// One collection: stamps the images in use, and under pressure removes images no
    /// container uses and `keep` (the images current assignments need) does not name, least
    /// recently used first, measuring again after each round until the high watermark.
    pub async fn run_once(&self, keep: &BTreeSet<String>) -> Result<GcReport, DiskGcError> {
        let before = self.measure()?;
        let images = self.runtime.image_usage(keep).await?;
        let mut after = before;
        let mut removed = Vec::new();
        let mut left: BTreeMap<String, ImageUse> =
            images.into_iter().map(|i| (i.name.clone(), i)).collect();
        loop {
            let candidates: Vec<ImageUse> = left.values().cloned().collect();
            let plan = self.policy.plan(after, &candidates, keep);
            if plan.is_empty() {
                break;
            }
            let last = plan.len();
            for (i, name) in plan.into_iter().enumerate() {
                left.remove(&name);
                // The last removal of a round waits for containerd's collector, so the next
                // measurement sees the space freed.
                if gc::delete(&self.runtime.inner, &name, i + 1 == last).await? {
                    tracing::info!(image = %name, "image removed under disk pressure");
                    removed.push(name);
                }
            }
            after = self.measure()?;
            if self.policy.satisfied(after) {
                break;
            }
        }
        if self.policy.under_pressure(after) {
            tracing::warn!(
                free = after.free_bytes,
                total = after.total_bytes,
                "still under disk pressure after removing every unused image"
            );
        }
        Ok(GcReport {
            before,
            after,
            removed,
        })
    }

    /// Runs [`Self::run_once`] every `period` (first run after one period), with `keep`
    /// asked afresh each time; errors are logged. Abort the handle to stop.
    pub fn spawn<K>(self, period: Duration, keep: K) -> tokio::task::JoinHandle<()>
    where
        K: Fn() -> BTreeSet<String> + Send + Sync + 'static,
    {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                match self.run_once(&keep()).await {
                    Ok(r) if !r.removed.is_empty() => tracing::info!(
                        removed = r.removed.len(),
                        free_before = r.before.free_bytes,
                        free_after = r.after.free_bytes,
                        "image collection under disk pressure"
                    ),
                    Ok(_) => {}
                    Err(e) => tracing::warn!("image collection: {e}"),
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn img(name: &str, last: u64, size: u64, in_use: bool) -> ImageUse {
        ImageUse {
            name: name.into(),
            last_used_ms: last,
            size_bytes: size,
            in_use,
        }
    }

    fn usage(total: u64, free: u64) -> FsUsage {
        FsUsage {
            total_bytes: total,
            free_bytes: free,
        }
    }

    #[test]
    fn watermarks_take_the_smaller_of_percent_and_bytes() {
        let p = DiskGcPolicy::default();
        // Small device (8 GiB): 10 % = 819 MiB < 1 GiB.
        assert_eq!(p.low.bytes_of(8 << 30), (8u64 << 30) / 10);
        // Large disk: 1 GiB.
        assert_eq!(p.low.bytes_of(1 << 40), 1 << 30);
        assert_eq!(p.high.bytes_of(1 << 40), 2 << 30);
        assert!(p.under_pressure(usage(1 << 40, (1 << 30) - 1)));
        assert!(!p.under_pressure(usage(1 << 40, 1 << 30)));
        assert!(!p.satisfied(usage(1 << 40, (2 << 30) - 1)));
        assert!(p.satisfied(usage(1 << 40, 2 << 30)));
        assert_eq!(
            Watermark {
                percent: 100,
                bytes: u64::MAX
            }
            .bytes_of(u64::MAX),
            u64::MAX
        );
        assert!(p.validate().is_ok());
        let mut bad = p;
        bad.high.bytes = 1;
        assert!(bad.validate().is_err());
        bad = p;
        bad.low.percent = 101;
        assert!(bad.validate().is_err());
    }

    #[test]
    fn nothing_is_removed_without_pressure() {
        let p = DiskGcPolicy::default();
        let images = vec![img("a", 1, MIB, false)];
        assert!(
            p.plan(usage(8 << 30, 4 << 30), &images, &BTreeSet::new())
                .is_empty()
        );
    }

    #[test]
    fn removes_least_recently_used_unused_images_until_the_high_watermark() {
        let p = DiskGcPolicy {
            low: Watermark {
                percent: 100,
                bytes: 10 * MIB,
            },
            high: Watermark {
                percent: 100,
                bytes: 20 * MIB,
            },
        };
        let images = vec![
            img("newest", 50, 8 * MIB, false),
            img("oldest", 10, 4 * MIB, false),
            img("running", 1, 100 * MIB, true),
            img("assigned", 2, 100 * MIB, false),
            img("middle", 30, 4 * MIB, false),
            img("middle-twin", 30, 4 * MIB, false),
        ];
        let keep: BTreeSet<String> = ["assigned".to_owned()].into();
        // 8 MiB free: needs 12 more; oldest (4) + middle (4) + middle-twin (4).
        assert_eq!(
            p.plan(usage(1 << 30, 8 * MIB), &images, &keep),
            vec!["oldest", "middle", "middle-twin"]
        );
        // 15 MiB free is not under pressure.
        assert!(p.plan(usage(1 << 30, 15 * MIB), &images, &keep).is_empty());
        // 9 MiB free: oldest (13) and middle (17)... and middle-twin (21).
        assert_eq!(p.plan(usage(1 << 30, 9 * MIB), &images, &keep).len(), 3);
        // Far below: every removable image, never the used or kept ones.
        let all = p.plan(usage(1 << 30, 0), &images, &keep);
        assert_eq!(all, vec!["oldest", "middle", "middle-twin", "newest"]);
    }

    #[test]
    fn statvfs_measures_a_real_filesystem() {
        let u = Statvfs(std::env::temp_dir()).usage().expect("statvfs");
        assert!(u.total_bytes > 0 && u.free_bytes <= u.total_bytes, "{u:?}");
        let missing = Statvfs("/nonexistent/cloudless".into()).usage();
        assert!(missing.is_err());
    }
}
