//! The built-in hard constraints, one [`Filter`] per file.
//!
//! Each filter answers "may this replica go on this node?" with a short, stable reason when not;
//! the pipeline counts rejections per reason to explain an unplaceable replica.

mod host_port;
mod liveness;
mod node_affinity;
mod node_selector;
mod platform;
mod resource_fit;
mod taints;
mod workload_affinity;

pub use host_port::HostPortFilter;
pub use liveness::LivenessFilter;
pub use node_affinity::{NodeAffinityFilter, node_matches, node_value};
pub use node_selector::NodeSelectorFilter;
pub use platform::PlatformFilter;
pub use resource_fit::ResourceFitFilter;
pub use taints::TaintFilter;
pub use workload_affinity::WorkloadAffinityFilter;
pub(crate) use workload_affinity::own_terms_volatility;

use cloudless_core::scheduler::Filter;

/// The default filters, cheapest and most selective first (the first failing filter names the
/// reason a node is counted under).
pub fn default_filters() -> Vec<Box<dyn Filter>> {
    vec![
        Box::new(LivenessFilter),
        Box::new(PlatformFilter),
        Box::new(TaintFilter),
        Box::new(NodeSelectorFilter),
        Box::new(NodeAffinityFilter),
        Box::new(ResourceFitFilter),
        Box::new(HostPortFilter),
        Box::new(WorkloadAffinityFilter),
    ]
}
