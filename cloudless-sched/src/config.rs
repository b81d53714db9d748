//! Operator-tunable settings of the [`WeightedScheduler`](crate::pipeline::WeightedScheduler):
//! the score weights and the per-node inputs of the cost and locality scorers.

use std::collections::BTreeMap;

use cloudless_core::ids::NodeId;
use cloudless_core::scheduler::SchedulerError;

/// Label an operator sets on a node to give its relative cost (a non-negative number; `1` is the
/// reference cost, `0` is free). [`SchedulerConfig::node_costs`] overrides it.
pub const COST_LABEL: &str = "cloudless.dev/cost";

/// Weights of the built-in score terms: `S = Σ wᵢ·sᵢ − w_network·network_penalty`.
///
/// Every weight is non-negative; the network term is subtracted by design, so its weight is
/// given as a positive magnitude.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Weights {
    /// Preferred node affinity terms and round-trip time (`w_l`).
    pub locality: f64,
    /// Uptime, recent failures and power source (`w_r`).
    pub reliability: f64,
    /// Operator-assigned node cost, cheaper is better (`w_c`).
    pub cost: f64,
    /// Bin-pack or spread utilization balance (`w_u`).
    pub utilization: f64,
    /// Penalty for nodes outside the workload's preferred region (`w_n`, subtracted).
    pub network_penalty: f64,
    /// Soft workload affinity and anti-affinity terms. Constant (and so without effect) for
    /// workloads that declare no preferred workload terms.
    pub workload_affinity: f64,
    /// Penalty for an untolerated `PreferNoSchedule` taint (subtracted). The default 2.0
    /// exceeds the sum of the other weights, so such a node is chosen only when no untainted
    /// node fits.
    pub prefer_no_schedule: f64,
}

impl Default for Weights {
    /// DESIGN §3 defaults: 0.3 / 0.25 / 0.15 / 0.2 / 0.1; 0.2 for soft workload terms and
    /// 2.0 for the `PreferNoSchedule` penalty.
    fn default() -> Self {
        Self {
            locality: 0.3,
            reliability: 0.25,
            cost: 0.15,
            utilization: 0.2,
            network_penalty: 0.1,
            workload_affinity: 0.2,
            prefer_no_schedule: 2.0,
        }
    }
}

impl Weights {
    /// The weights by field name, in declaration order.
    pub fn named(&self) -> [(&'static str, f64); 7] {
        [
            ("locality", self.locality),
            ("reliability", self.reliability),
            ("cost", self.cost),
            ("utilization", self.utilization),
            ("network_penalty", self.network_penalty),
            ("workload_affinity", self.workload_affinity),
            ("prefer_no_schedule", self.prefer_no_schedule),
        ]
    }
}

/// Configuration of the default scheduler.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SchedulerConfig {
    /// Score weights.
    pub weights: Weights,
    /// Relative cost per node, overriding the [`COST_LABEL`] label (non-negative, finite).
    pub node_costs: BTreeMap<NodeId, f64>,
    /// Measured round-trip time to each node in milliseconds, when known (non-negative, finite).
    pub node_rtt_ms: BTreeMap<NodeId, f64>,
}

impl SchedulerConfig {
    /// Checks every weight and per-node input, naming the first offending field, and that not
    /// every weight is zero.
    pub fn validate(&self) -> Result<(), SchedulerError> {
        self.validate_fields()?;
        if self.total_weight() == 0.0 {
            return Err(SchedulerError::InvalidConfig(ALL_ZERO.into()));
        }
        Ok(())
    }

    /// Checks every weight and per-node input, naming the first offending field.
    pub(crate) fn validate_fields(&self) -> Result<(), SchedulerError> {
        for (name, w) in self.weights.named() {
            check_weight(&format!("weights.{name}"), w)?;
        }
        for (field, map) in [
            ("node_costs", &self.node_costs),
            ("node_rtt_ms", &self.node_rtt_ms),
        ] {
            for (node, v) in map {
                if !v.is_finite() || *v < 0.0 {
                    return Err(SchedulerError::InvalidConfig(format!(
                        "{field}[{node}] must be a finite, non-negative number, got {v}"
                    )));
                }
            }
        }
        Ok(())
    }

    /// Sum of the built-in weights (meaningful once the fields are valid).
    pub(crate) fn total_weight(&self) -> f64 {
        self.weights.named().iter().map(|(_, w)| w).sum()
    }
}

/// The error text for a configuration whose weights are all zero.
pub(crate) const ALL_ZERO: &str =
    "weights: all weights are zero, so every node would score the same";

/// Rejects NaN, infinite and negative weights, naming `field`.
pub(crate) fn check_weight(field: &str, w: f64) -> Result<(), SchedulerError> {
    if w.is_nan() {
        return Err(SchedulerError::InvalidConfig(format!(
            "{field} is NaN; weights must be finite numbers ≥ 0"
        )));
    }
    if w.is_infinite() {
        return Err(SchedulerError::InvalidConfig(format!(
            "{field} is infinite; weights must be finite numbers ≥ 0"
        )));
    }
    if w < 0.0 {
        return Err(SchedulerError::InvalidConfig(format!(
            "{field} is negative ({w}); weights are magnitudes ≥ 0 (penalties are subtracted by design)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_design() {
        let c = SchedulerConfig::default();
        assert!(c.validate().is_ok());
        let w = c.weights;
        assert_eq!(
            [
                w.locality,
                w.reliability,
                w.cost,
                w.utilization,
                w.network_penalty
            ],
            [0.3, 0.25, 0.15, 0.2, 0.1]
        );
    }

    #[test]
    fn bad_weights_name_the_field() {
        let mut c = SchedulerConfig::default();
        c.weights.cost = f64::NAN;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("weights.cost is NaN"), "{e}");

        let mut c = SchedulerConfig::default();
        c.weights.reliability = f64::INFINITY;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("weights.reliability is infinite"), "{e}");

        let mut c = SchedulerConfig::default();
        c.weights.network_penalty = -0.1;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("weights.network_penalty is negative"), "{e}");

        let c = SchedulerConfig {
            weights: Weights {
                locality: 0.0,
                reliability: 0.0,
                cost: 0.0,
                utilization: 0.0,
                network_penalty: 0.0,
                workload_affinity: 0.0,
                prefer_no_schedule: 0.0,
            },
            ..SchedulerConfig::default()
        };
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("all weights are zero"), "{e}");
    }

    #[test]
    fn bad_node_inputs_name_the_node() {
        let mut c = SchedulerConfig::default();
        c.node_costs.insert(NodeId(7), -1.0);
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("node_costs[n7]"), "{e}");
    }
}
