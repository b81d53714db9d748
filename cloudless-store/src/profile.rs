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
            keep_behind_snapshot: 1_000,
            snapshot_chunk_bytes: MAX_SNAPSHOT_CHUNK_BYTES,
        }
    }
}

/// Largest snapshot chunk: a chunk's bytes may double in CBOR, and a frame is at most 4 MiB.
pub const MAX_SNAPSHOT_CHUNK_BYTES: u64 = 1 << 20;

/// The openraft configuration for `cluster` with these timings and compaction.
pub(crate) fn openraft_config(
    cluster: &str,
    t: Timeouts,
    c: Compaction,
) -> Result<Config, ConfigError> {
    let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    let config = Config {
        cluster_name: cluster.to_owned(),
        heartbeat_interval: ms(t.heartbeat),
        election_timeout_min: ms(t.election_min),
        election_timeout_max: ms(t.election_max),
        install_snapshot_timeout: ms(t.snapshot_chunk),
        snapshot_policy: SnapshotPolicy::LogsSinceLast(c.snapshot_every.max(1)),
        max_in_snapshot_log_to_keep: c.keep_behind_snapshot,
        snapshot_max_chunk_size: c.snapshot_chunk_bytes.clamp(1, MAX_SNAPSHOT_CHUNK_BYTES),
        ..Config::default()
    };
    config.validate()
}
