//! Reliability: long uptime, few recent failures, mains power or a well-charged battery.

use cloudless_core::node::{Node, PowerSource};
use cloudless_core::scheduler::{PlacementContext, PlacementRequest, Scorer, Volatility};

/// Uptime at which the uptime part reaches one half.
const UPTIME_HALF_SECS: f64 = 86_400.0;

/// `0.4·uptime + 0.3·failures + 0.3·power`, where uptime is `u / (u + 1 day)`, failures is
/// `1 / (1 + recent failures)`, and power is 1 on mains, and on battery the charge level
/// (halved when not charging).
#[derive(Debug, Clone, Copy, Default)]
pub struct ReliabilityScorer;

impl Scorer for ReliabilityScorer {
    fn name(&self) -> &str {
        "reliability"
    }

    fn score(&self, _ctx: &PlacementContext<'_>, node: &Node) -> f64 {
        let r = node.report.reliability;
        let uptime = r.uptime_secs as f64;
        let uptime = uptime / (uptime + UPTIME_HALF_SECS);
        let failures = 1.0 / (1.0 + f64::from(r.recent_failures));
        let power = match node.report.power {
            PowerSource::Mains => 1.0,
            PowerSource::Battery {
                level_percent,
                charging,
            } => {
                let level = f64::from(level_percent.min(100)) / 100.0;
                if charging { level } else { level / 2.0 }
            }
        };
        0.4 * uptime + 0.3 * failures + 0.3 * power
    }

    fn volatility(&self, _request: &PlacementRequest) -> Volatility {
        Volatility::Fixed
    }
}
