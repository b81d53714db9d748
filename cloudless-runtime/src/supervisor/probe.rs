//! The probe state machine of one probe of one container (CLD-REQ-032): when it is due, and
//! whether it passes, from consecutive results against the thresholds.
//!
//! The first probe is due `initial_delay` after the container started; each later one `period`
//! after the previous one was sent, never while one is in flight. `success_threshold`
//! consecutive successes make it pass, `failure_threshold` consecutive failures make it fail.

use cloudless_core::workload::Probe;

use super::types::ProbeKind;

/// One probe of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeTracker {
    kind: ProbeKind,
    probe: Probe,
    next_due_ms: u64,
    in_flight: bool,
    successes: u32,
    failures: u32,
    passing: Option<bool>,
}

impl ProbeTracker {
    /// A tracker for a container whose start this node saw at `started_ms` (monotonic), with
    /// `passing` as the verdict so far (`None`: no verdict yet).
    pub fn new(kind: ProbeKind, probe: Probe, started_ms: u64, passing: Option<bool>) -> Self {
        let next_due_ms = started_ms.saturating_add(probe.initial_delay.millis());
        Self {
            kind,
            probe,
            next_due_ms,
            in_flight: false,
            successes: 0,
            failures: 0,
            passing,
        }
    }

    /// Which probe this is.
    pub fn kind(&self) -> ProbeKind {
        self.kind
    }

    /// The probe.
    pub fn probe(&self) -> &Probe {
        &self.probe
    }

    /// True if a probe should be sent at `now_ms`.
    pub fn is_due(&self, now_ms: u64) -> bool {
        !self.in_flight && now_ms >= self.next_due_ms
    }

    /// When the next probe is due (`None` while one is in flight).
    pub fn next_due(&self) -> Option<u64> {
        (!self.in_flight).then_some(self.next_due_ms)
    }

    /// Records that a probe was sent at `now_ms`.
    pub fn sent(&mut self, now_ms: u64) {
        self.in_flight = true;
        self.next_due_ms = now_ms.saturating_add(self.probe.period.millis().max(1));
    }

    /// Records a result; returns the new verdict if it changed.
    pub fn record(&mut self, success: bool) -> Option<bool> {
        self.in_flight = false;
        if success {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
        }
        let verdict = if self.successes >= self.probe.success_threshold.max(1) {
            Some(true)
        } else if self.failures >= self.probe.failure_threshold.max(1) {
            Some(false)
        } else {
            None
        };
        match verdict {
            Some(v) if self.passing != Some(v) => {
                self.passing = Some(v);
                Some(v)
            }
            _ => None,
        }
    }

    /// The verdict so far (`None`: not enough results yet).
    pub fn passing(&self) -> Option<bool> {
        self.passing
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloudless_core::quantity::DurationSpec;
    use cloudless_core::workload::TcpAction;

    fn probe(success: u32, failure: u32) -> Probe {
        Probe {
            exec: None,
            tcp: Some(TcpAction { port: 80 }),
            http: None,
            initial_delay: DurationSpec::from_secs(5),
            period: DurationSpec::from_secs(10),
            timeout: DurationSpec::from_secs(1),
            success_threshold: success,
            failure_threshold: failure,
        }
    }

    #[test]
    fn timing_follows_initial_delay_and_period() {
        let mut t = ProbeTracker::new(ProbeKind::Readiness, probe(1, 3), 1_000, None);
        assert!(!t.is_due(5_999));
        assert!(t.is_due(6_000));
        t.sent(6_500);
        assert!(!t.is_due(100_000), "never two in flight");
        assert_eq!(t.next_due(), None);
        t.record(true);
        assert_eq!(t.next_due(), Some(16_500));
    }

    #[test]
    fn thresholds_need_consecutive_results() {
        let mut t = ProbeTracker::new(ProbeKind::Liveness, probe(2, 3), 0, Some(true));
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(true), None, "a success resets the failure count");
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), None);
        assert_eq!(t.record(false), Some(false));
        assert_eq!(t.passing(), Some(false));
        assert_eq!(t.record(true), None, "needs two successes");
        assert_eq!(t.record(true), Some(true));
        assert_eq!(t.record(true), None, "no change, no transition");
    }
}
