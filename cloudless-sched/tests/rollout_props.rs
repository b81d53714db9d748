//! Properties of the rollout planner over random configurations and readiness sequences:
//! a step never takes ready replicas below `minAvailable`, never takes the live count past
//! `replicas + surge limit`, and the rollout completes once readiness comes (or, only when the
//! configuration makes it impossible, reports itself stuck).

use cloudless_core::ids::{Generation, ReplicaId};
use cloudless_sched::rollout::{RolloutInput, RolloutReplica, RolloutStatus, RolloutStep, plan};
use proptest::prelude::*;

const OLD: Generation = Generation(1);
const NEW: Generation = Generation(2);

#[derive(Debug, Clone)]
struct Case {
    replicas: u32,
    max_surge: u32,
    min_available: u32,
    start: Vec<(bool, bool, bool)>,
    /// Readiness flips during the chaotic phase: (replica index, becomes ready).
    flips: Vec<Vec<(usize, bool)>>,
    /// Which unready replicas become ready in each calm round (bitmask over positions).
    calm: Vec<u32>,
}

fn case() -> impl Strategy<Value = Case> {
    (0u32..6, 0u32..3)
        .prop_flat_map(|(replicas, max_surge)| {
            (
                Just(replicas),
                Just(max_surge),
                0..=replicas + 1,
                // (new generation, ready, draining)
                prop::collection::vec(any::<(bool, bool, bool)>(), 0..8),
                prop::collection::vec(
                    prop::collection::vec((0usize..16, any::<bool>()), 0..4),
                    0..12,
                ),
                prop::collection::vec(any::<u32>(), 64),
            )
        })
        .prop_map(
            |(replicas, max_surge, min_available, start, flips, calm)| Case {
                replicas,
                max_surge,
                min_available,
                start,
                flips,
                calm,
            },
        )
}

/// One planning round: checks the invariants and applies the plan. Returns the status.
fn step(case: &Case, live: &mut Vec<RolloutReplica>, next_id: &mut u64) -> RolloutStatus {
    let input = RolloutInput {
        generation: NEW,
        replicas: case.replicas,
        max_surge: case.max_surge,
        min_available: case.min_available,
        paused: false,
        live,
    };
    let limit = input.surge_limit() as usize;
    let p = plan(&input);
    let ready_before = live.iter().filter(|r| r.ready).count();
    let keepers = live.iter().filter(|r| !input.leaves(r)).count();
    let mut retired_ready = false;
    let mut surged = 0usize;
    let mut after = live.clone();
    for s in &p.steps {
        match *s {
            RolloutStep::Retire { replica, .. } => {
                let i = after
                    .iter()
                    .position(|r| r.id == replica)
                    .expect("retires a live replica");
                assert!(input.leaves(&after[i]), "retired a keeper");
                retired_ready |= after[i].ready;
                after.remove(i);
            }
            RolloutStep::Surge { count } => {
                assert!(count > 0);
                surged += count as usize;
            }
        }
    }
    let ready_after = after.iter().filter(|r| r.ready).count();
    let min = case.min_available as usize;
    if retired_ready {
        assert!(
            ready_after >= min,
            "ready {ready_before} -> {ready_after} < minAvailable {min}"
        );
    }
    assert!(ready_after >= ready_before.min(min));
    if surged > 0 {
        assert!(
            after.len() + surged <= case.replicas as usize + limit,
            "live {} + surge {surged} exceeds replicas {} + limit {limit}",
            after.len(),
            case.replicas
        );
        assert!(
            keepers + surged <= case.replicas as usize,
            "surged past replicas"
        );
    }
    for _ in 0..surged {
        after.push(RolloutReplica {
            id: ReplicaId(*next_id),
            generation: NEW,
            ready: false,
            draining: false,
        });
        *next_id += 1;
    }
    *live = after;
    p.status
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn rollouts_keep_min_available_respect_surge_and_complete(case in case()) {
        let mut live: Vec<RolloutReplica> = case
            .start
            .iter()
            .enumerate()
            .map(|(i, &(new, ready, draining))| RolloutReplica {
                id: ReplicaId(i as u64 + 1),
                generation: if new { NEW } else { OLD },
                ready,
                draining,
            })
            .collect();
        let mut next_id = live.len() as u64 + 1;

        // Chaos: readiness flips both ways (crashes, flaky probes) between plans.
        for flips in &case.flips {
            step(&case, &mut live, &mut next_id);
            for &(i, ready) in flips {
                let n = live.len().max(1);
                if let Some(r) = live.get_mut(i % n) {
                    r.ready = ready;
                }
            }
        }

        // Calm: readiness only comes, at least one replica per round.
        let completable = case.min_available <= case.replicas
            && case.min_available < case.replicas + case.max_surge;
        let bound = 4 * (live.len() + case.replicas as usize) + 8;
        let mut finished = None;
        for round in 0..bound {
            match step(&case, &mut live, &mut next_id) {
                RolloutStatus::Complete => {
                    finished = Some(RolloutStatus::Complete);
                    break;
                }
                s @ RolloutStatus::Stuck(_) => {
                    finished = Some(s);
                    break;
                }
                _ => {}
            }
            let mask = case.calm[round % case.calm.len()];
            let mut woke = false;
            for (i, r) in live.iter_mut().enumerate() {
                if !r.ready && (mask >> (i % 32)) & 1 == 1 {
                    r.ready = true;
                    woke = true;
                }
            }
            if !woke && let Some(r) = live.iter_mut().find(|r| !r.ready) {
                r.ready = true;
            }
        }
        match finished {
            Some(RolloutStatus::Complete) => {
                prop_assert!(live.iter().all(|r| r.generation == NEW && !r.draining));
                prop_assert!(live.len() >= case.replicas as usize);
            }
            Some(RolloutStatus::Stuck(s)) => {
                prop_assert!(!completable, "stuck although completable: {s}");
            }
            other => prop_assert!(false, "not finished after {bound} calm rounds: {other:?}"),
        }
    }

    #[test]
    fn a_paused_rollout_never_retires_a_healthy_old_replica(
        start in prop::collection::vec(any::<(bool, bool, bool)>(), 0..8),
        replicas in 0u32..6,
        max_surge in 0u32..3,
    ) {
        let live: Vec<RolloutReplica> = start
            .iter()
            .enumerate()
            .map(|(i, &(new, ready, draining))| RolloutReplica {
                id: ReplicaId(i as u64 + 1),
                generation: if new { NEW } else { OLD },
                ready,
                draining,
            })
            .collect();
        let input = RolloutInput {
            generation: NEW,
            replicas,
            max_surge,
            min_available: replicas.saturating_sub(1),
            paused: true,
            live: &live,
        };
        for s in plan(&input).steps {
            if let RolloutStep::Retire { replica, .. } = s {
                let r = live.iter().find(|r| r.id == replica).expect("retires a live replica");
                prop_assert!(r.draining, "paused rollout retired {replica}");
            }
        }
    }
}
