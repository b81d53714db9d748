//! The default [`Scheduler`]: filter → score → normalize → select, over an immutable snapshot.
//!
//! ```text
//!  nodes ─▶ filters (first failure = reason) ─▶ scorers sᵢ ∈ [0,1] (NaN→0, clamped)
//!        ─▶ S = Σ wᵢ·sᵢ − Σ w_p·s_p ─▶ best S, ties by hash(seed, node id)
//!        ─▶ reserve, re-evaluate changed nodes, next replica of the batch
//! ```

mod batch;
mod builder;
mod spread;
pub mod synthetic;
mod tiebreak;

pub use batch::SKEW_REASON;
pub use builder::WeightedSchedulerBuilder;

use cloudless_core::scheduler::{
    ClusterSnapshot, Filter, PlacementRequest, PlacementResult, Scheduler, SchedulerError, Scorer,
    Volatility,
};

use crate::config::SchedulerConfig;

/// One weighted score term.
pub(crate) struct Term {
    /// Name used in errors and introspection.
    pub(crate) name: String,
    /// Signed weight: negative for penalties.
    pub(crate) weight: f64,
    /// The scorer.
    pub(crate) scorer: Box<dyn Scorer>,
}

/// The weighted filter/score pipeline (DESIGN §3, §8).
///
/// Deterministic: the same snapshot, request and seed give the same placements; among equal
/// scores the node with the larger `hash(seed, node id)` wins.
///
/// ```rust
/// use cloudless_sched::{SchedulerConfig, WeightedScheduler, Weights};
///
/// let scheduler = WeightedScheduler::new(SchedulerConfig::default())?;
/// assert!(scheduler.filter_names().contains(&"resource_fit"));
/// assert!(scheduler.score_terms().iter().any(|(name, _)| *name == "locality"));
///
/// // Weights are checked: every one finite and non-negative, not all zero.
/// let bad = SchedulerConfig { weights: Weights { locality: f64::NAN, ..Weights::default() }, ..SchedulerConfig::default() };
/// assert!(WeightedScheduler::new(bad).is_err());
/// # Ok::<(), cloudless_core::scheduler::SchedulerError>(())
/// ```
pub struct WeightedScheduler {
    filters: Vec<Box<dyn Filter>>,
    terms: Vec<Term>,
}

impl std::fmt::Debug for WeightedScheduler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WeightedScheduler")
            .field("filters", &self.filter_names())
            .field("terms", &self.score_terms())
            .finish()
    }
}

impl Default for WeightedScheduler {
    /// The default filters and scorers with [`SchedulerConfig::default`].
    fn default() -> Self {
        let (filters, terms) = builder::defaults(&SchedulerConfig::default());
        Self { filters, terms }
    }
}

impl WeightedScheduler {
    /// The default pipeline with `config`, validated.
    pub fn new(config: SchedulerConfig) -> Result<Self, SchedulerError> {
        Self::builder().with_config(config).build()
    }

    /// A builder starting from the default filters and scorers, to which researchers add their
    /// own [`Filter`]s and weighted [`Scorer`]s.
    pub fn builder() -> WeightedSchedulerBuilder {
        WeightedSchedulerBuilder::default()
    }

    /// Names of the filters, in evaluation order.
    pub fn filter_names(&self) -> Vec<&str> {
        self.filters.iter().map(|f| f.name()).collect()
    }

    /// Score terms as `(name, signed weight)`; penalties have negative weights. Terms with a
    /// zero weight are left out of the pipeline entirely.
    pub fn score_terms(&self) -> Vec<(&str, f64)> {
        self.terms
            .iter()
            .map(|t| (t.name.as_str(), t.weight))
            .collect()
    }

    /// The widest [`Volatility`] of any filter or scorer for `request`.
    fn volatility(&self, request: &PlacementRequest) -> Volatility {
        let filters = self.filters.iter().map(|f| f.volatility(request));
        let scorers = self.terms.iter().map(|t| t.scorer.volatility(request));
        filters
            .chain(scorers)
            .fold(Volatility::Fixed, Volatility::widen)
    }
}

impl Scheduler for WeightedScheduler {
    fn place(&self, snapshot: &ClusterSnapshot, request: &PlacementRequest) -> PlacementResult {
        batch::place(self, snapshot, request)
    }
}
