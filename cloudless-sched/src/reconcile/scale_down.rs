//! Which surplus replicas a scale-down stops.

use std::cmp::Reverse;
use std::collections::BTreeMap;

use cloudless_core::ids::ReplicaId;
use cloudless_core::state::ClusterState;

use crate::rollout::{RolloutInput, RolloutReplica, usize_of};

/// The keepers to stop so that at most `replicas` remain, in the order chosen.
///
/// Each pick takes, in order of preference: an unready replica (stopping it costs no
/// availability), one of an old generation (only keepers while a rollout is paused), one in
/// the zone holding the most of this workload's keepers (keeps the spread), the highest id
/// (the newest: after a node returns, the copy that kept running survives untouched and its
/// younger duplicate goes). A ready replica is picked only while the ready count stays at or
/// above `minAvailable`; if that blocks, fewer are stopped this round.
pub(super) fn choose(state: &ClusterState, input: &RolloutInput<'_>) -> Vec<ReplicaId> {
    let keepers: Vec<&RolloutReplica> = input.live.iter().filter(|r| !input.leaves(r)).collect();
    let surplus = keepers.len().saturating_sub(usize_of(input.replicas));
    if surplus == 0 {
        return Vec::new();
    }
    let zone_of = |id: ReplicaId| {
        state
            .replicas
            .get(&id)
            .and_then(|r| state.nodes.get(&r.node))
            .map(|n| (n.report.region.as_str(), n.report.zone.as_str()))
            .unwrap_or(("", ""))
    };
    let mut load: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    let mut candidates: Vec<(&RolloutReplica, (&str, &str))> = Vec::with_capacity(keepers.len());
    for r in keepers {
        let zone = zone_of(r.id);
        *load.entry(zone).or_default() += 1;
        candidates.push((r, zone));
    }
    let min_available = usize_of(input.min_available);
    let mut ready = input.live.iter().filter(|r| r.ready).count();
    let mut victims = Vec::with_capacity(surplus);
    while victims.len() < surplus {
        let pick = candidates
            .iter()
            .enumerate()
            .filter(|(_, (r, _))| !r.ready || ready > min_available)
            .min_by_key(|(_, (r, zone))| {
                (
                    r.ready,
                    r.generation == input.generation,
                    Reverse(load.get(zone).copied().unwrap_or(0)),
                    Reverse(r.id),
                )
            })
            .map(|(i, _)| i);
        let Some(i) = pick else {
            break;
        };
        let (r, zone) = candidates.swap_remove(i);
        if let Some(n) = load.get_mut(&zone) {
            *n = n.saturating_sub(1);
        }
        if r.ready {
            ready -= 1;
        }
        victims.push(r.id);
    }
    victims
}
