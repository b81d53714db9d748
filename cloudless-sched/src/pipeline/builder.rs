//! Assembling a [`WeightedScheduler`]: the defaults from a config, plus researchers' plugins.

use std::collections::BTreeSet;

use cloudless_core::scheduler::{Filter, SchedulerError, Scorer};

use super::{Term, WeightedScheduler};
use crate::config::{SchedulerConfig, check_weight};
use crate::filters::default_filters;
use crate::scorers::{
    CostScorer, LocalityScorer, NetworkPenaltyScorer, ReliabilityScorer, TaintPreferenceScorer,
    UtilizationScorer, WorkloadAffinityScorer,
};

/// Builds a [`WeightedScheduler`]; see [`WeightedScheduler::builder`].
///
/// ```
/// use cloudless_core::node::Node;
/// use cloudless_core::scheduler::{PlacementContext, Scorer};
/// use cloudless_sched::pipeline::WeightedScheduler;
///
/// struct PreferArm;
/// impl Scorer for PreferArm {
///     fn name(&self) -> &str { "prefer_arm" }
///     fn score(&self, _ctx: &PlacementContext<'_>, node: &Node) -> f64 {
///         if node.report.platform.architecture == "arm64" { 1.0 } else { 0.0 }
///     }
/// }
///
/// let sched = WeightedScheduler::builder().with_scorer("prefer_arm", 0.5, PreferArm).build()?;
/// assert!(sched.score_terms().contains(&("prefer_arm", 0.5)));
/// # Ok::<(), cloudless_core::scheduler::SchedulerError>(())
/// ```
#[derive(Default)]
pub struct WeightedSchedulerBuilder {
    config: SchedulerConfig,
    filters: Vec<Box<dyn Filter>>,
    scorers: Vec<(String, f64, bool, Box<dyn Scorer>)>,
}

impl std::fmt::Debug for WeightedSchedulerBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightedSchedulerBuilder")
            .field("config", &self.config)
            .field("extra_filters", &self.filters.len())
            .field("extra_scorers", &self.scorers.len())
            .finish()
    }
}

impl WeightedSchedulerBuilder {
    /// Uses `config` for the built-in weights and per-node inputs.
    pub fn with_config(mut self, config: SchedulerConfig) -> Self {
        self.config = config;
        self
    }

    /// Adds a hard constraint, evaluated after the built-in filters.
    pub fn with_filter(mut self, filter: impl Filter) -> Self {
        self.filters.push(Box::new(filter));
        self
    }

    /// Adds a score term `weight · scorer` (weight finite and ≥ 0).
    pub fn with_scorer(
        mut self,
        name: impl Into<String>,
        weight: f64,
        scorer: impl Scorer,
    ) -> Self {
        self.scorers
            .push((name.into(), weight, false, Box::new(scorer)));
        self
    }

    /// Adds a penalty term `− weight · scorer` (weight finite and ≥ 0).
    pub fn with_penalty(
        mut self,
        name: impl Into<String>,
        weight: f64,
        scorer: impl Scorer,
    ) -> Self {
        self.scorers
            .push((name.into(), weight, true, Box::new(scorer)));
        self
    }

    /// Validates the config and the added terms (names unique; weights finite, ≥ 0, not all
    /// zero) and builds the scheduler.
    pub fn build(self) -> Result<WeightedScheduler, SchedulerError> {
        self.config.validate_fields()?;
        for (name, weight, _, _) in &self.scorers {
            check_weight(&format!("scorer `{name}` weight"), *weight)?;
        }
        let extra: f64 = self.scorers.iter().map(|(_, w, _, _)| *w).sum();
        // A researcher may zero every built-in weight and score by their own terms alone.
        if self.config.total_weight() + extra == 0.0 {
            return Err(SchedulerError::InvalidConfig(
                crate::config::ALL_ZERO.into(),
            ));
        }
        let (mut filters, mut terms) = defaults(&self.config);
        let mut names: BTreeSet<String> = terms.iter().map(|t| t.name.clone()).collect();
        names.extend(self.config.weights.named().map(|(n, _)| n.to_owned()));
        for (name, weight, penalty, scorer) in self.scorers {
            if !names.insert(name.clone()) {
                return Err(SchedulerError::InvalidConfig(format!(
                    "scorer name `{name}` is used twice"
                )));
            }
            if weight != 0.0 {
                let weight = if penalty { -weight } else { weight };
                terms.push(Term {
                    name,
                    weight,
                    scorer,
                });
            }
        }
        filters.extend(self.filters);
        Ok(WeightedScheduler { filters, terms })
    }
}

/// The built-in filters and the non-zero built-in score terms of `config`.
pub(super) fn defaults(config: &SchedulerConfig) -> (Vec<Box<dyn Filter>>, Vec<Term>) {
    let w = &config.weights;
    let all: [(&str, f64, Box<dyn Scorer>); 7] = [
        (
            "locality",
            w.locality,
            Box::new(LocalityScorer::new(config.node_rtt_ms.clone())),
        ),
        ("reliability", w.reliability, Box::new(ReliabilityScorer)),
        (
            "cost",
            w.cost,
            Box::new(CostScorer::new(config.node_costs.clone())),
        ),
        ("utilization", w.utilization, Box::new(UtilizationScorer)),
        (
            "network_penalty",
            -w.network_penalty,
            Box::new(NetworkPenaltyScorer),
        ),
        (
            "workload_affinity",
            w.workload_affinity,
            Box::new(WorkloadAffinityScorer),
        ),
        (
            "prefer_no_schedule",
            -w.prefer_no_schedule,
            Box::new(TaintPreferenceScorer),
        ),
    ];
    let terms = all
        .into_iter()
        .filter(|(_, weight, _)| *weight != 0.0)
        .map(|(name, weight, scorer)| Term {
            name: name.to_owned(),
            weight,
            scorer,
        })
        .collect();
    (default_filters(), terms)
}
