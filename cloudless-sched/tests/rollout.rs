//! Exact plans of the rollout planner for focused situations.

use cloudless_core::ids::{Generation, ReplicaId};
use cloudless_sched::rollout::{
    RetireReason, RolloutInput, RolloutReplica, RolloutStatus, RolloutStep, Stuck, plan,
};

const OLD: Generation = Generation(1);
const NEW: Generation = Generation(2);

fn rep(id: u64, generation: Generation, ready: bool) -> RolloutReplica {
    RolloutReplica {
        id: ReplicaId(id),
        generation,
        ready,
        draining: false,
    }
}

fn draining(mut r: RolloutReplica) -> RolloutReplica {
    r.draining = true;
    r
}

fn input(live: &[RolloutReplica], replicas: u32, max_surge: u32, min: u32) -> RolloutInput<'_> {
    RolloutInput {
        generation: NEW,
        replicas,
        max_surge,
        min_available: min,
        paused: false,
        live,
    }
}

fn retire_old(id: u64) -> RolloutStep {
    RolloutStep::Retire {
        replica: ReplicaId(id),
        reason: RetireReason::OldGeneration {
            generation: OLD,
            desired: NEW,
        },
    }
}

fn retire_drained(id: u64) -> RolloutStep {
    RolloutStep::Retire {
        replica: ReplicaId(id),
        reason: RetireReason::Draining,
    }
}

#[test]
fn surge_and_retire_within_min_available() {
    let live = [rep(1, OLD, true), rep(2, OLD, true), rep(3, OLD, true)];
    let p = plan(&input(&live, 3, 1, 2));
    // One old replica may go (3 ready -> 2 = minAvailable); that frees room for two new ones
    // within replicas + maxSurge = 4.
    assert_eq!(
        p.steps,
        vec![retire_old(1), RolloutStep::Surge { count: 2 }]
    );
    assert_eq!(p.status, RolloutStatus::Progressing);
}

#[test]
fn unready_old_replicas_go_first_and_cost_no_availability() {
    let live = [rep(1, OLD, true), rep(2, OLD, false), rep(3, OLD, true)];
    let p = plan(&input(&live, 3, 1, 2));
    assert_eq!(
        p.steps,
        vec![retire_old(2), RolloutStep::Surge { count: 2 }]
    );
}

#[test]
fn waits_for_new_replicas_to_become_ready() {
    let live = [
        rep(2, OLD, true),
        rep(3, OLD, true),
        rep(4, NEW, false),
        rep(5, NEW, false),
    ];
    let p = plan(&input(&live, 3, 1, 2));
    assert_eq!(p.steps, vec![]);
    assert_eq!(p.status, RolloutStatus::Waiting { unready: 2 });
}

#[test]
fn max_surge_zero_retires_before_it_places() {
    let live = [rep(1, OLD, true), rep(2, OLD, true), rep(3, OLD, true)];
    let p = plan(&input(&live, 3, 0, 2));
    assert_eq!(
        p.steps,
        vec![retire_old(1), RolloutStep::Surge { count: 1 }]
    );
}

#[test]
fn max_surge_zero_with_min_available_equal_to_replicas_is_stuck() {
    let live = [rep(1, OLD, true), rep(2, OLD, true), rep(3, OLD, true)];
    let p = plan(&input(&live, 3, 0, 3));
    assert_eq!(p.steps, vec![]);
    let stuck = Stuck {
        ready: 3,
        min_available: 3,
        replicas: 3,
        surge_limit: 0,
    };
    assert_eq!(p.status, RolloutStatus::Stuck(stuck));
    assert_eq!(
        stuck.to_string(),
        "rollout stuck: 3 ready replicas, retiring one would go below minAvailable 3, and \
         replicas 3 + maxSurge 0 leaves no room for a new one; raise maxSurge or lower \
         minAvailable"
    );
}

#[test]
fn pause_keeps_old_replicas_but_still_fills_missing_ones() {
    let live = [rep(1, OLD, true), rep(2, OLD, true), rep(3, NEW, true)];
    let mut i = input(&live, 3, 1, 2);
    i.paused = true;
    let p = plan(&i);
    assert_eq!(p.steps, vec![]);
    assert_eq!(p.status, RolloutStatus::Paused { old_generation: 2 });

    let live = [rep(1, OLD, true), rep(3, NEW, true)];
    let i = RolloutInput { live: &live, ..i };
    assert_eq!(plan(&i).steps, vec![RolloutStep::Surge { count: 1 }]);
}

#[test]
fn drain_places_the_replacement_before_stopping_the_old_copy() {
    // maxSurge 0, yet the drain gets one slot: make-before-break.
    let live = [
        rep(1, NEW, true),
        rep(2, NEW, true),
        draining(rep(3, NEW, true)),
    ];
    let p = plan(&input(&live, 3, 0, 2));
    assert_eq!(p.steps, vec![RolloutStep::Surge { count: 1 }]);

    // The replacement is placed but not ready: wait, even though minAvailable would allow it.
    let live = [
        rep(1, NEW, true),
        rep(2, NEW, true),
        draining(rep(3, NEW, true)),
        rep(4, NEW, false),
    ];
    let p = plan(&input(&live, 3, 0, 2));
    assert_eq!(p.steps, vec![]);
    assert_eq!(p.status, RolloutStatus::Waiting { unready: 1 });

    // Ready: now the drained copy stops.
    let live = [
        rep(1, NEW, true),
        rep(2, NEW, true),
        draining(rep(3, NEW, true)),
        rep(4, NEW, true),
    ];
    let p = plan(&input(&live, 3, 0, 2));
    assert_eq!(p.steps, vec![retire_drained(3)]);
}

#[test]
fn a_crash_looping_older_replica_does_not_block_a_drain() {
    // r2 never becomes ready; r4, placed after r3, is r3's ready replacement.
    let live = [
        rep(1, NEW, true),
        rep(2, NEW, false),
        draining(rep(3, NEW, true)),
        rep(4, NEW, true),
    ];
    let p = plan(&input(&live, 3, 1, 2));
    assert_eq!(p.steps, vec![retire_drained(3)]);
}

#[test]
fn a_drain_never_goes_below_min_available() {
    let live = [
        rep(1, NEW, false),
        draining(rep(2, NEW, true)),
        rep(3, NEW, true),
    ];
    // r3 covers r2, but stopping r2 would leave 1 ready < minAvailable 2.
    let p = plan(&input(&live, 2, 1, 2));
    assert_eq!(p.steps, vec![]);
    assert_eq!(p.status, RolloutStatus::Waiting { unready: 1 });
}

#[test]
fn complete_when_everything_runs_the_new_generation() {
    let live = [rep(4, NEW, true), rep(5, NEW, false), rep(6, NEW, true)];
    let p = plan(&input(&live, 3, 1, 2));
    assert_eq!(p.steps, vec![]);
    assert_eq!(p.status, RolloutStatus::Complete);
}

#[test]
fn a_newer_keeper_standing_in_for_a_lost_replica_is_not_a_drain_replacement() {
    // r2 was lost; r4 replaced it. r3 must wait for its own replacement.
    let live = [
        rep(1, NEW, true),
        draining(rep(3, NEW, true)),
        rep(4, NEW, true),
    ];
    let p = plan(&input(&live, 3, 1, 1));
    assert_eq!(p.steps, vec![RolloutStep::Surge { count: 1 }]);
    let live = [
        rep(1, NEW, true),
        draining(rep(3, NEW, true)),
        rep(4, NEW, true),
        rep(5, NEW, true),
    ];
    let p = plan(&input(&live, 3, 1, 1));
    assert_eq!(p.steps, vec![retire_drained(3)]);
}
