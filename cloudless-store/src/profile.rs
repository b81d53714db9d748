//! Raft timing profiles and the openraft configuration built from them.
//!
//! Raft needs `heartbeat ≪ election timeout` and an election timeout well above the round
//! trip between coordinators, or leaders are deposed by slow links. The profiles:
//!
//! | profile | for | heartbeat | election timeout |
//! |---|---|---|---|
//! | `lan` | coordinators in one site or cloud region (RTT < 10 ms) | 100 ms | 500–1000 ms |
//! | `wan` | coordinators on VPSes across continents (RTT up to ~300 ms) | 500 ms | 3–6 s |
//!
//! `lan` matches etcd's default heartbeat (100 ms) with half its election timeout, since our
//! fsync is sub-millisecond; `wan` keeps the heartbeat above one worst-case RTT and the
//! election timeout ≥ 10 RTTs, as etcd's tuning guide recommends for cross-continent members.

use std::time::Duration;

use openraft::{Config, ConfigError, SnapshotPolicy};

/// Heartbeat and election timing of a raft member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// Interval of leader heartbeats.
    pub heartbeat: Duration,
    /// Smallest randomized election timeout.
    pub election_min: Duration,
    /// Largest randomized election timeout (exclusive).
    pub election_max: Duration,
    /// Longest wait for one snapshot chunk to be acknowledged.
    pub snapshot_chunk: Duration,
}

impl Timeouts {
    /// Coordinators in one site or region (RTT < 10 ms).
    pub const fn lan() -> Self {
        Self {
            heartbeat: Duration::from_millis(100),
            election_min: Duration::from_millis(500),
            election_max: Duration::from_millis(1000),
            snapshot_chunk: Duration::from_secs(2),
        }
    }

    /// Coordinators across continents (RTT up to ~300 ms).
    pub const fn wan() -> Self {
        Self {
            heartbeat: Duration::from_millis(500),
            election_min: Duration::from_secs(3),
            election_max: Duration::from_secs(6),
            snapshot_chunk: Duration::from_secs(10),
        }
    }

    /// A profile by name: `lan` or `wan`.
    pub fn by_name(name: &str) -> Option<Self> {
        match name {
            "lan" => Some(Self::lan()),
            "wan" => Some(Self::wan()),
            _ => None,
        }
    }
}

/// Log compaction: when to snapshot and how much log to keep behind a snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compaction {
    /// Build a snapshot after this many applied entries since the last one.
    pub snapshot_every: u64,
    /// Also build one when the log entries appended since the last snapshot exceed this many
    /// bytes (`None`: by count only). openraft 0.9's policy counts entries only, so this is
    /// our own trigger (`raft.trigger().snapshot()`), checked every heartbeat interval.
    pub snapshot_log_bytes: Option<u64>,
    /// Entries kept in the log behind the snapshot, so slightly lagging followers catch up
    /// from the log instead of by snapshot.
    pub keep_behind_snapshot: u64,
    /// Largest snapshot chunk sent in one `InstallSnapshot` call, in bytes. A chunk's bytes
    /// may double in CBOR and a frame is at most 4 MiB, so at most 1 MiB.
    pub snapshot_chunk_bytes: u64,
}

impl Default for Compaction {
    fn default() -> Self {
        Self {
            snapshot_every: 10_000,
            snapshot_log_bytes: Some(DEFAULT_SNAPSHOT_LOG_BYTES),
            keep_behind_snapshot: 1_000,
            snapshot_chunk_bytes: MAX_SNAPSHOT_CHUNK_BYTES,
        }
    }
}

/// Default size trigger: snapshot once 64 MiB of log were appended since the last snapshot.
pub const DEFAULT_SNAPSHOT_LOG_BYTES: u64 = 64 << 20;

/// Largest snapshot chunk: a chunk's bytes may double in CBOR, and a frame is at most 4 MiB.
pub const MAX_SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;

/// The openraft configuration for `cluster` with these timings and compaction.
///
/// With `election` = `(seed, member id)`, the member's election timeout is drawn from the
/// seed instead of openraft's OS-seeded thread RNG: openraft 0.9 draws one timeout per `Raft`
/// instance (`EngineConfig::new`, uniformly in `[min, max)`), so we draw it ourselves and pass
/// the range `[t, t + 1)`, which leaves openraft exactly `t`. (The same range also sets
/// openraft's leader lease and "smaller log" timeout, `max` and `2·max`, to `t + 1` and
/// `2·(t + 1)`; both only delay elections, never affect safety.)
pub(crate) fn openraft_config(
    cluster: &str,
    t: Timeouts,
    c: Compaction,
    election: Option<(u64, u64)>,
) -> Result<Config, ConfigError> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let (mut min, mut max) = (ms(t.election_min), ms(t.election_max));
    if let Some((seed, id)) = election
        && max > min
    {
        min += splitmix64(seed ^ id.rotate_left(32)) % (max - min);
        max = min + 1;
    }
    let config = Config {
        cluster_name: cluster.to_owned(),
        heartbeat_interval: ms(t.heartbeat),
        election_timeout_min: min,
        election_timeout_max: max,
        install_snapshot_timeout: ms(t.snapshot_chunk),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(c.snapshot_every.max(1)),
        max_in_snapshot_log_to_keep: c.keep_behind_snapshot,
        snapshot_max_chunk_size: c.snapshot_chunk_bytes.clamp(1, MAX_SNAPSHOT_CHUNK_BYTES),
        ..Config::default()
    };
    config.validate()
}

/// SplitMix64: one well-mixed draw from a seed.
fn splitmix64(seed: u64) -> u64 {
    let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_seeded_election_timeout_is_fixed_per_seed_and_member_and_within_the_range() {
        let t = Timeouts::lan();
        let c = Compaction::default();
        let draw = |seed, id| {
            let cfg = openraft_config("x", t, c, Some((seed, id))).unwrap();
            assert_eq!(cfg.election_timeout_max, cfg.election_timeout_min + 1);
            cfg.election_timeout_min
        };
        let mut seen = std::collections::BTreeSet::new();
        for id in 1..=5 {
            let a = draw(7, id);
            assert_eq!(a, draw(7, id), "same seed and member, same timeout");
            assert!((500..1000).contains(&a), "{a}");
            seen.insert(a);
        }
        assert!(seen.len() > 1, "members draw different timeouts: {seen:?}");
        assert_ne!(
            (1..=5).map(|id| draw(7, id)).collect::<Vec<_>>(),
            (1..=5).map(|id| draw(8, id)).collect::<Vec<_>>()
        );
        // Without a seed openraft draws from the configured range.
        let cfg = openraft_config("x", t, c, None).unwrap();
        assert_eq!(
            (cfg.election_timeout_min, cfg.election_timeout_max),
            (500, 1000)
        );
    }
}
