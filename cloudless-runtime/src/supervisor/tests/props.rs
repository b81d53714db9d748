//! Properties of the supervisor over random crashes, probe results, failed starts, time and
//! assignment changes, run against a tiny simulated runtime.

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::*;

#[derive(Debug, Clone)]
enum Ev {
    Crash(u64, i32),
    Probe(bool),
    Advance(u64),
    Toggle(u64),
    Observe,
    FailNextStart(bool),
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        (1u64..4, -1i32..3).prop_map(|(r, c)| Ev::Crash(r, c)),
        any::<bool>().prop_map(Ev::Probe),
        (0u64..20_000).prop_map(Ev::Advance),
        (1u64..4).prop_map(Ev::Toggle),
        Just(Ev::Observe),
        any::<bool>().prop_map(Ev::FailNextStart),
    ]
}

struct Sim {
    containers: BTreeMap<ContainerId, ContainerStatus>,
    probes: Vec<ProbeRequest>,
    /// Consecutive liveness failures fed per container.
    live_failures: BTreeMap<ContainerId, u32>,
}

/// Creates and starts `id`, or (if a failure is armed) leaves it created and reports the
/// failed start.
fn start_in_sim(
    sim: &mut Sim,
    s: &mut Supervisor,
    fail_next: &mut Option<bool>,
    r: ReplicaId,
    id: ContainerId,
    now: u64,
) {
    match fail_next.take() {
        Some(transient) => {
            let mut c = running(id.clone(), now);
            c.state = ContainerState::Created;
            sim.containers.insert(id.clone(), c);
            s.handle_outcome(
                now,
                r,
                Outcome::StartFailed {
                    id,
                    reason: "scripted".into(),
                    transient,
                },
            );
        }
        None => {
            sim.containers.insert(id.clone(), running(id.clone(), now));
            s.handle_outcome(now, r, Outcome::Started(running(id, now)));
        }
    }
}

fn replica_containers(sim: &Sim, r: ReplicaId) -> usize {
    sim.containers
        .keys()
        .filter(|id| parse_container_id(id).map(|(x, _)| x) == Some(r))
        .count()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]
    #[test]
    fn one_container_per_replica_and_healthy_ones_untouched(
        events in proptest::collection::vec(ev(), 1..80)
    ) {
        let mut sp = spec();
        sp.probes.liveness = Some(exec_probe(2));
        let mut s = Supervisor::new(SupervisorConfig::default());
        let mut wanted: BTreeMap<u64, bool> = (1..4).map(|r| (r, true)).collect();
        let set = |s: &mut Supervisor, now: u64, w: &BTreeMap<u64, bool>| {
            let d = w.iter().filter(|(_, on)| **on).map(|(r, _)| desired(*r, &sp)).collect();
            s.set_desired(now, d);
        };
        set(&mut s, 0, &wanted);
        let mut sim = Sim { containers: BTreeMap::new(), probes: Vec::new(), live_failures: BTreeMap::new() };
        let mut now = 0u64;
        let mut phases: BTreeMap<ReplicaId, ReplicaPhase> = BTreeMap::new();
        let mut fail_next: Option<bool> = None;
        for e in events {
            match e {
                Ev::Crash(r, code) => {
                    let live: Vec<ContainerId> = sim.containers.values()
                        .filter(|c| c.state == ContainerState::Running
                            && parse_container_id(&c.id).map(|(x, _)| x) == Some(ReplicaId(r)))
                        .map(|c| c.id.clone()).collect();
                    for id in live {
                        if let Some(c) = sim.containers.get_mut(&id) {
                            c.state = ContainerState::Exited { code };
                            c.finished_at_ms = Some(now);
                        }
                    }
                }
                Ev::Probe(ok) => {
                    if let Some(p) = sim.probes.pop() {
                        let n = sim.live_failures.entry(p.container.clone()).or_default();
                        *n = if ok { 0 } else { *n + 1 };
                        s.handle_probe_result(p.replica, &p.container, p.kind, ok);
                    }
                }
                Ev::Advance(ms) => now += ms,
                Ev::Toggle(r) => {
                    let on = wanted.entry(r).or_insert(true);
                    *on = !*on;
                    phases.remove(&ReplicaId(r));
                    set(&mut s, now, &wanted);
                }
                Ev::FailNextStart(transient) => fail_next = Some(transient),
                Ev::Observe => {
                    let list: Vec<ContainerStatus> = sim.containers.values().cloned().collect();
                    s.observe(now, &list);
                }
            }
            // Run every action to completion, as a driver would.
            for _ in 0..20 {
                let actions = s.poll_actions(now);
                if actions.is_empty() { break; }
                for a in actions {
                    let r = a.replica();
                    let desired_now = wanted.get(&r.get()).copied().unwrap_or(false);
                    match a {
                        Action::Start { spec, .. } => {
                            prop_assert_eq!(replica_containers(&sim, r), 0, "second container for {}", r);
                            start_in_sim(&mut sim, &mut s, &mut fail_next, r, spec.id, now);
                        }
                        Action::Restart { old, spec, .. } => {
                            let old_state = sim.containers.remove(&old).map(|c| c.state);
                            prop_assert!(old_state != Some(ContainerState::Running), "restart of a running container");
                            prop_assert_eq!(replica_containers(&sim, r), 0, "second container for {}", r);
                            start_in_sim(&mut sim, &mut s, &mut fail_next, r, spec.id, now);
                        }
                        Action::Stop { id, reason, .. } => {
                            let healthy = sim.live_failures.get(&id).copied().unwrap_or(0) < 2;
                            if desired_now {
                                prop_assert!(!healthy, "healthy container {} stopped ({:?})", id, reason);
                            }
                            let st = sim.containers.get_mut(&id).map(|c| {
                                c.state = ContainerState::Exited { code: 143 };
                                c.finished_at_ms = Some(now);
                                c.clone()
                            });
                            match st {
                                Some(st) => s.handle_outcome(now, r, Outcome::Stopped(st)),
                                None => s.handle_outcome(now, r, Outcome::Failed { id, reason: "gone".into() }),
                            }
                        }
                        Action::Remove { id, .. } => {
                            let was = sim.containers.remove(&id);
                            if desired_now {
                                let running_healthy = was.as_ref().is_some_and(|c| c.state == ContainerState::Running)
                                    && replica_containers(&sim, r) == 0;
                                prop_assert!(!running_healthy, "removed the only running container of {}", r);
                            }
                            s.handle_outcome(now, r, Outcome::Removed(id));
                        }
                        Action::Probe(p) => sim.probes.push(p),
                        Action::Report(st) => {
                            if let Some(prev) = phases.insert(r, st.phase) {
                                prop_assert!(prev.can_become(st.phase), "{:?} -> {:?} for {}", prev, st.phase, r);
                            }
                            prop_assert!(!st.ready || st.phase == ReplicaPhase::Running);
                        }
                    }
                }
            }
        }
    }
}
