//! The coordinator's configuration: heartbeat pacing and budget, failure-detector timeouts,
//! eviction throttling, and the actuation loop's pace.

use std::time::Duration;

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("coordinator config field `{field}`: {reason}")]
pub struct ConfigError {
    /// The offending field, e.g. `down_after`.
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

/// Configuration of one coordinator.
///
/// The failure-detector timeouts are given for the base heartbeat interval; when the cluster
/// is large enough that the interval grows (see [`CoordinatorConfig::heartbeat_budget_per_sec`])
/// they grow by the same factor, so a node is always allowed the same number of missed
/// heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorConfig {
    /// Heartbeat period asked of agents in a small cluster (default 500 ms).
    pub heartbeat_interval: Duration,
    /// Silence after which a Ready node becomes Suspect (default 1 s).
    pub suspect_after: Duration,
    /// Silence after which a node becomes Down (default 1.8 s, so with the detector's tick a
    /// silent node is Down within 2 s).
    pub down_after: Duration,
    /// How often the failure detector looks at its timers and commits liveness changes
    /// (default 100 ms).
    pub detector_tick: Duration,
    /// Heartbeats per second the leader accepts at most; the interval handed to agents is
    /// `max(heartbeat_interval, nodes / budget)` (default 10 000/s: 5 000 nodes at 500 ms).
    pub heartbeat_budget_per_sec: u32,
    /// Eviction throttling: when more than this percentage of the live nodes (Ready or Suspect)
    /// is silent past `suspect_after` at once, Down transitions are rate-limited (default 33).
    pub mass_silence_percent: u32,
    /// ... and at least this many nodes are silent (default 3), so one failure in a tiny
    /// cluster is never throttled.
    pub mass_silence_min_nodes: u32,
    /// While throttled, at most one node goes Down per this interval, longest-silent first
    /// (default 10 s).
    pub throttled_down_interval: Duration,
    /// The actuation loop runs after every state change and at least this often (default 1 s).
    pub actuation_interval: Duration,
    /// How long after its agent fetched an assignment set without a Stopping replica the
    /// replica is recorded finished, releasing its reservation (default 12 s: the agent's
    /// default stop grace of 10 s plus a margin). The fallback for agents that are down,
    /// silent or older: an agent's stop report (`ControlPlane::report_stopped`) finishes the
    /// replica as soon as its containers are gone.
    pub stop_grace: Duration,
    /// How often the coordinator asks its consensus member who leads (default 200 ms).
    pub leadership_poll: Duration,
    /// Expired join-token records are kept this long (for operators and audits), then the
    /// leader prunes them with `PruneJoinTokens` (default 1 h).
    pub expired_token_retention: Duration,
    /// After a leader change, no node goes Down before this much silence under the new leader
    /// (default 10 s). Agents that lost every coordinator retry with backoff (at most 5 s plus
    /// jitter by default), so a shorter window would mark healthy nodes Down and reschedule
    /// their replicas after every coordinator outage. Never shorter than `down_after`.
    pub takeover_grace: Duration,
}

impl Default for CoordinatorConfig {
    fn default() -> Self {
        Self {
            heartbeat_interval: Duration::from_millis(500),
            suspect_after: Duration::from_millis(1000),
            down_after: Duration::from_millis(1800),
            detector_tick: Duration::from_millis(100),
            heartbeat_budget_per_sec: 10_000,
            mass_silence_percent: 33,
            mass_silence_min_nodes: 3,
            throttled_down_interval: Duration::from_secs(10),
            actuation_interval: Duration::from_secs(1),
            stop_grace: Duration::from_secs(12),
            leadership_poll: Duration::from_millis(200),
            expired_token_retention: Duration::from_secs(3600),
            takeover_grace: Duration::from_secs(10),
        }
    }
}

impl CoordinatorConfig {
    /// Checks every field; the error names the first bad one.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let day = Duration::from_secs(24 * 3600);
        for (field, d) in [
            ("heartbeat_interval", self.heartbeat_interval),
            ("suspect_after", self.suspect_after),
            ("down_after", self.down_after),
            ("detector_tick", self.detector_tick),
            ("throttled_down_interval", self.throttled_down_interval),
            ("actuation_interval", self.actuation_interval),
            ("leadership_poll", self.leadership_poll),
        ] {
            if d.is_zero() {
                return Err(bad(field, "must be greater than zero"));
            }
            if d > day {
                return Err(bad(field, "must be at most 24h"));
            }
        }
        if self.stop_grace > day {
            return Err(bad("stop_grace", "must be at most 24h"));
        }
        if self.takeover_grace > day {
            return Err(bad("takeover_grace", "must be at most 24h"));
        }
        if self.expired_token_retention > 30 * day {
            return Err(bad("expired_token_retention", "must be at most 30 days"));
        }
        if self.suspect_after <= self.heartbeat_interval {
            return Err(bad(
                "suspect_after",
                "must be longer than heartbeat_interval (a node would be suspected between two heartbeats)",
            ));
        }
        if self.down_after <= self.suspect_after {
            return Err(bad("down_after", "must be longer than suspect_after"));
        }
        if self.heartbeat_budget_per_sec == 0 {
            return Err(bad("heartbeat_budget_per_sec", "must be greater than zero"));
        }
        if self.mass_silence_percent == 0 || self.mass_silence_percent > 100 {
            return Err(bad("mass_silence_percent", "must be 1..=100"));
        }
        if self.mass_silence_min_nodes == 0 {
            return Err(bad("mass_silence_min_nodes", "must be at least 1"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_down_within_two_seconds() {
        let c = CoordinatorConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert!(c.down_after + c.detector_tick <= Duration::from_secs(2));
    }

    #[test]
    fn errors_name_the_field() {
        let field = |f: fn(&mut CoordinatorConfig)| {
            let mut c = CoordinatorConfig::default();
            f(&mut c);
            c.validate().map_err(|e| e.field)
        };
        assert_eq!(
            field(|c| c.heartbeat_interval = Duration::ZERO),
            Err("heartbeat_interval")
        );
        assert_eq!(
            field(|c| c.suspect_after = Duration::from_millis(400)),
            Err("suspect_after")
        );
        assert_eq!(
            field(|c| c.down_after = Duration::from_millis(900)),
            Err("down_after")
        );
        assert_eq!(
            field(|c| c.heartbeat_budget_per_sec = 0),
            Err("heartbeat_budget_per_sec")
        );
        assert_eq!(
            field(|c| c.mass_silence_percent = 101),
            Err("mass_silence_percent")
        );
        assert_eq!(
            field(|c| c.mass_silence_min_nodes = 0),
            Err("mass_silence_min_nodes")
        );
        assert_eq!(
            field(|c| c.stop_grace = Duration::from_secs(90_000)),
            Err("stop_grace")
        );
        let e = CoordinatorConfig {
            detector_tick: Duration::ZERO,
            ..CoordinatorConfig::default()
        }
        .validate()
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("detector_tick"), "{e}");
    }
}
