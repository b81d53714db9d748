//! Failure-detector tests with explicit times.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn detector(nodes: u64) -> FailureDetector {
    let mut d = FailureDetector::new(&CoordinatorConfig::default());
    d.reset(ms(0), (1..=nodes).map(|i| (NodeId(i), Liveness::Ready)));
    d
}

/// Ticks every 100 ms from `from` to `to` (inclusive), confirming each batch; returns the
/// batches with the time they were produced.
fn run(d: &mut FailureDetector, from: u64, to: u64) -> Vec<(u64, Vec<(NodeId, Liveness)>)> {
    let mut out = Vec::new();
    let mut t = from;
    while t <= to {
        let o = d.tick(ms(t));
        if !o.changes.is_empty() {
            d.confirm(&o.changes);
            out.push((t, o.changes));
        }
        t += 100;
    }
    out
}

#[test]
fn adaptive_interval_keeps_the_budget() {
    let base = ms(500);
    assert_eq!(adaptive_interval(base, 10_000, 0), ms(500));
    assert_eq!(adaptive_interval(base, 10_000, 5_000), ms(500));
    assert_eq!(adaptive_interval(base, 10_000, 5_001), ms(501));
    assert_eq!(adaptive_interval(base, 10_000, 10_000), ms(1000));
    assert_eq!(adaptive_interval(base, 10_000, 20_000), ms(2000));
    assert_eq!(adaptive_interval(base, 0, 3), ms(3000));
    for nodes in [1usize, 100, 4_999, 5_000, 7_777, 50_000] {
        let i = adaptive_interval(base, 10_000, nodes);
        // heartbeats per second at this interval never exceed the budget
        assert!(nodes as f64 / i.as_secs_f64() <= 10_000.0 + 1e-9, "{nodes}");
    }
}

#[test]
fn timeouts_scale_with_the_interval() {
    let mut d = FailureDetector::new(&CoordinatorConfig::default());
    d.reset(ms(0), (1..=10_000).map(|i| (NodeId(i), Liveness::Ready)));
    assert_eq!(d.interval(), ms(1000));
    assert_eq!(d.timeouts(), (ms(2000), ms(3600)));
    assert_eq!(detector(3).timeouts(), (ms(1000), ms(1800)));
}

#[test]
fn silent_node_goes_suspect_then_down_within_two_seconds() {
    let mut d = detector(3);
    // Nodes 1 and 2 heartbeat every 500 ms; node 3 never does.
    let mut batches = Vec::new();
    for t in (0..=2500).step_by(100) {
        if t % 500 == 0 {
            d.observe(NodeId(1), ms(t));
            d.observe(NodeId(2), ms(t));
        }
        let o = d.tick(ms(t));
        assert_eq!(o.throttle_started, None);
        if !o.changes.is_empty() {
            d.confirm(&o.changes);
            batches.push((t, o.changes));
        }
    }
    assert_eq!(
        batches,
        vec![
            (1000, vec![(NodeId(3), Liveness::Suspect)]),
            (1800, vec![(NodeId(3), Liveness::Down)]),
        ]
    );
    assert_eq!(d.view(NodeId(3)), Some(Liveness::Down));
    assert!(d.pending().is_empty());
}

#[test]
fn a_heartbeat_brings_a_suspect_or_down_node_back() {
    let mut d = detector(1);
    run(&mut d, 0, 1000);
    assert_eq!(d.view(NodeId(1)), Some(Liveness::Suspect));
    assert_eq!(d.observe(NodeId(1), ms(1100)), Some(Liveness::Ready));
    assert_eq!(d.pending(), vec![(NodeId(1), Liveness::Ready)]);
    assert_eq!(
        run(&mut d, 1100, 1100),
        vec![(1100, vec![(NodeId(1), Liveness::Ready)])]
    );
    // Down, then back.
    run(&mut d, 1200, 3000);
    assert_eq!(d.view(NodeId(1)), Some(Liveness::Down));
    d.observe(NodeId(1), ms(3100));
    assert_eq!(d.pending(), vec![(NodeId(1), Liveness::Ready)]);
    // Unknown nodes are not tracked.
    assert_eq!(d.observe(NodeId(9), ms(0)), None);
}

#[test]
fn uncommitted_changes_stay_pending_until_confirmed() {
    let mut d = detector(2);
    let o = d.tick(ms(1000));
    assert_eq!(o.changes.len(), 2);
    // Not confirmed (the proposal failed): offered again.
    let o = d.tick(ms(1100));
    assert_eq!(
        o.changes,
        vec![
            (NodeId(1), Liveness::Suspect),
            (NodeId(2), Liveness::Suspect)
        ]
    );
    d.confirm(&o.changes[..1]);
    assert_eq!(d.pending(), vec![(NodeId(2), Liveness::Suspect)]);
}

#[test]
fn a_new_leader_gives_every_node_a_fresh_grace_window() {
    let mut d = detector(2);
    run(&mut d, 0, 900);
    // Leader change at 900 ms: node 1 committed Ready, node 2 committed Suspect, node 3 Down.
    d.reset(
        ms(900),
        [
            (NodeId(1), Liveness::Ready),
            (NodeId(2), Liveness::Suspect),
            (NodeId(3), Liveness::Down),
        ],
    );
    // Nothing happens before the grace window (counted from 900 ms) runs out.
    assert!(run(&mut d, 1000, 1800).is_empty());
    assert_eq!(
        run(&mut d, 1900, 2700),
        vec![
            (1900, vec![(NodeId(1), Liveness::Suspect)]),
            (
                2700,
                vec![(NodeId(1), Liveness::Down), (NodeId(2), Liveness::Down)]
            ),
        ]
    );
    assert_eq!(d.view(NodeId(3)), Some(Liveness::Down));
}

#[test]
fn joining_nodes_have_no_timer_and_sync_follows_the_state() {
    let mut d = detector(1);
    d.sync(
        ms(500),
        [(NodeId(1), Liveness::Ready), (NodeId(2), Liveness::Joining)],
    );
    assert_eq!(d.len(), 2);
    assert!(
        run(&mut d, 600, 5000)
            .iter()
            .all(|(_, c)| c.iter().all(|(n, _)| *n == NodeId(1)))
    );
    assert_eq!(d.view(NodeId(2)), Some(Liveness::Joining));
    // A node that joined later gets its grace window from when it was first seen.
    d.sync(
        ms(5000),
        [
            (NodeId(1), Liveness::Down),
            (NodeId(2), Liveness::Joining),
            (NodeId(3), Liveness::Ready),
        ],
    );
    assert!(run(&mut d, 5100, 5900).is_empty());
    assert_eq!(
        run(&mut d, 6000, 6000),
        vec![(6000, vec![(NodeId(3), Liveness::Suspect)])]
    );
    // Removed nodes are forgotten.
    d.sync(ms(6000), [(NodeId(3), Liveness::Suspect)]);
    assert_eq!(d.len(), 1);
    assert!(!d.is_empty());
}

#[test]
fn mass_silence_throttles_down_transitions() {
    let mut d = detector(6);
    let mut downs: Vec<(u64, NodeId)> = Vec::new();
    let mut started = None;
    let mut ended = false;
    for t in (0..=40_000).step_by(100) {
        // Nodes 1..=3 keep heartbeating; 4..=6 went silent at 0.
        if t % 500 == 0 {
            for n in 1..=3 {
                d.observe(NodeId(n), ms(t));
            }
        }
        let o = d.tick(ms(t));
        if o.throttle_started.is_some() {
            started = Some((t, o.throttle_started));
        }
        ended |= o.throttle_ended;
        d.confirm(&o.changes);
        for (n, l) in o.changes {
            if l == Liveness::Down {
                downs.push((t, n));
            }
        }
    }
    // 3 of 6 silent (> 33 %): throttled from the moment they are suspected.
    assert_eq!(started, Some((1000, Some((3, 6)))));
    assert!(d.throttled() || ended);
    // Not all at 1.8 s: the first one interval (10 s) after the throttle began, longest
    // silent first (all equal: lowest id), then one per interval; the evicted nodes keep
    // counting as silent, so the share never dips below the threshold on its own.
    assert_eq!(
        downs,
        vec![
            (11_000, NodeId(4)),
            (21_000, NodeId(5)),
            (31_000, NodeId(6))
        ]
    );
    // Everything silent is Down: the throttle is over.
    assert!(ended);
    assert!(!d.throttled());
}

#[test]
fn the_throttle_ends_when_the_silent_nodes_come_back() {
    let mut d = detector(6);
    let mut ended_at = None;
    for t in (0..=5_000).step_by(100) {
        for n in 1..=6 {
            // 4..=6 are silent from 0 to 2 s, then heartbeat again.
            if t % 500 == 0 && (n <= 3 || t >= 2_000) {
                d.observe(NodeId(n), ms(t));
            }
        }
        let o = d.tick(ms(t));
        assert!(o.changes.iter().all(|(_, l)| *l != Liveness::Down));
        if o.throttle_ended {
            ended_at = Some(t);
        }
        d.confirm(&o.changes);
    }
    assert_eq!(ended_at, Some(2_000));
    assert!((1..=6).all(|n| d.view(NodeId(n)) == Some(Liveness::Ready)));
}

#[test]
fn one_failure_in_a_small_cluster_is_not_throttled() {
    // 1 of 2 silent is 50 %, but below mass_silence_min_nodes (3).
    let mut d = detector(2);
    for t in (0..=1800).step_by(100) {
        if t % 500 == 0 {
            d.observe(NodeId(1), ms(t));
        }
        let o = d.tick(ms(t));
        assert_eq!(o.throttle_started, None);
        d.confirm(&o.changes);
    }
    assert_eq!(d.view(NodeId(2)), Some(Liveness::Down));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Per 100 ms step, which of up to 8 nodes heartbeat (bit i = node i + 1).
    fn schedule() -> impl Strategy<Value = (u64, Vec<u8>, bool)> {
        (
            1u64..=8,
            proptest::collection::vec(any::<u8>(), 1..150),
            any::<bool>(),
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn liveness_follows_silence((n, steps, throttle) in schedule()) {
            let mut config = CoordinatorConfig::default();
            if !throttle {
                config.mass_silence_min_nodes = u32::MAX;
            }
            let mut d = FailureDetector::new(&config);
            d.reset(ms(0), (1..=n).map(|i| (NodeId(i), Liveness::Ready)));
            let mut last: BTreeMap<NodeId, u64> = (1..=n).map(|i| (NodeId(i), 0)).collect();
            let mut committed: BTreeMap<NodeId, Liveness> =
                (1..=n).map(|i| (NodeId(i), Liveness::Ready)).collect();
            for (step, mask) in steps.iter().enumerate() {
                let t = step as u64 * 100;
                for i in 1..=n {
                    // Sparse heartbeats: a node beats when its bit is set and the step is even.
                    if mask & (1 << (i - 1)) != 0 && step % 2 == 0 {
                        prop_assert_eq!(d.observe(NodeId(i), ms(t)), Some(Liveness::Ready));
                        last.insert(NodeId(i), t);
                    }
                }
                let out = d.tick(ms(t));
                // Changes: sorted, unique, each a real change of the committed value.
                let ids: Vec<NodeId> = out.changes.iter().map(|(id, _)| *id).collect();
                let mut sorted = ids.clone();
                sorted.sort();
                sorted.dedup();
                prop_assert_eq!(&ids, &sorted);
                for (id, l) in &out.changes {
                    prop_assert_ne!(committed.get(id), Some(l));
                }
                if d.throttled() {
                    let downs = out.changes.iter().filter(|(_, l)| *l == Liveness::Down).count();
                    prop_assert!(downs <= 1, "{} Down in one throttled tick", downs);
                }
                d.confirm(&out.changes);
                for (id, l) in out.changes {
                    committed.insert(id, l);
                }
                for (id, heard) in &last {
                    let silence = t - heard;
                    let view = d.view(*id);
                    if silence < 1000 {
                        prop_assert_eq!(view, Some(Liveness::Ready), "{} heard {} ms ago", id, silence);
                    } else if silence >= 1800 && !throttle {
                        prop_assert_eq!(view, Some(Liveness::Down), "{} silent {} ms", id, silence);
                    } else {
                        prop_assert_ne!(view, Some(Liveness::Ready), "{} silent {} ms", id, silence);
                    }
                }
                prop_assert!(d.pending().is_empty());
            }
        }
    }
}
