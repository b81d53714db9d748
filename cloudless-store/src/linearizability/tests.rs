#![allow(clippy::unwrap_used)]

use super::*;

type Op = Operation<RegisterInput, RegisterOutput>;

fn op(client: u64, input: RegisterInput, call: u64, ret: u64, out: RegisterOutput) -> Op {
    Operation {
        client,
        key: 0,
        input,
        call,
        response: Some((ret, out)),
    }
}

fn unknown(client: u64, input: RegisterInput, call: u64) -> Op {
    Operation {
        client,
        key: 0,
        input,
        call,
        response: None,
    }
}

use RegisterInput::{Cas, Read, Write};
use RegisterOutput::{Swapped, Value, Written};

fn verdict(history: &[Op]) -> Verdict {
    check(&Register::default(), history)
}

#[test]
fn an_empty_history_is_linearizable() {
    assert_eq!(verdict(&[]), Verdict::Linearizable);
}

#[test]
fn a_read_after_a_completed_write_sees_it() {
    let ok = [op(1, Write(1), 0, 1, Written), op(2, Read, 2, 3, Value(1))];
    assert_eq!(verdict(&ok), Verdict::Linearizable);
    let stale = [op(1, Write(1), 0, 1, Written), op(2, Read, 2, 3, Value(0))];
    assert!(matches!(
        verdict(&stale),
        Verdict::NotLinearizable {
            key: 0,
            operations: 2,
            ..
        }
    ));
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    for seen in [0, 1] {
        let h = [
            op(1, Write(1), 0, 10, Written),
            op(2, Read, 2, 3, Value(seen)),
        ];
        assert_eq!(verdict(&h), Verdict::Linearizable, "read {seen}");
    }
    let h = [op(1, Write(1), 0, 10, Written), op(2, Read, 2, 3, Value(7))];
    assert!(!verdict(&h).is_linearizable(), "a value never written");
}

/// The classic stale read: once one client saw the new value, a later read elsewhere must
/// not see the old one, even while the write is still in flight.
#[test]
fn a_read_after_another_read_saw_the_new_value_cannot_see_the_old() {
    let h = [
        op(1, Write(1), 0, 100, Written),
        op(2, Read, 10, 20, Value(1)),
        op(3, Read, 30, 40, Value(0)),
    ];
    assert!(!verdict(&h).is_linearizable());
    // Overlapping reads may disagree: the write lands between them.
    let h = [
        op(1, Write(1), 0, 100, Written),
        op(2, Read, 10, 35, Value(1)),
        op(3, Read, 30, 40, Value(0)),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn an_unanswered_write_may_or_may_not_have_taken_effect() {
    for seen in [0, 1] {
        let h = [unknown(1, Write(1), 0), op(2, Read, 5, 6, Value(seen))];
        assert_eq!(verdict(&h), Verdict::Linearizable, "read {seen}");
    }
    // ... but once seen it stays.
    let h = [
        unknown(1, Write(1), 0),
        op(2, Read, 5, 6, Value(1)),
        op(2, Read, 7, 8, Value(0)),
    ];
    assert!(!verdict(&h).is_linearizable());
    // And it cannot take effect before it was called.
    let h = [op(2, Read, 0, 1, Value(1)), unknown(1, Write(1), 5)];
    assert!(!verdict(&h).is_linearizable());
}

#[test]
fn compare_and_set_succeeds_once_per_value() {
    let one_wins = [
        op(
            1,
            Cas {
                expected: 0,
                new: 1,
            },
            0,
            10,
            Swapped(true),
        ),
        op(
            2,
            Cas {
                expected: 0,
                new: 2,
            },
            1,
            11,
            Swapped(false),
        ),
        op(3, Read, 12, 13, Value(1)),
    ];
    assert_eq!(verdict(&one_wins), Verdict::Linearizable);
    let both_win = [
        op(
            1,
            Cas {
                expected: 0,
                new: 1,
            },
            0,
            10,
            Swapped(true),
        ),
        op(
            2,
            Cas {
                expected: 0,
                new: 2,
            },
            1,
            11,
            Swapped(true),
        ),
    ];
    assert!(!verdict(&both_win).is_linearizable());
    let wrong_failure = [op(
        1,
        Cas {
            expected: 0,
            new: 1,
        },
        0,
        1,
        Swapped(false),
    )];
    assert!(!verdict(&wrong_failure).is_linearizable());
    let kind_mismatch = [op(1, Read, 0, 1, Written)];
    assert!(!verdict(&kind_mismatch).is_linearizable());
}

#[test]
fn an_unanswered_compare_and_set_applies_only_if_it_matched() {
    let h = [
        unknown(
            1,
            Cas {
                expected: 0,
                new: 5,
            },
            0,
        ),
        op(2, Read, 3, 4, Value(5)),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    let h = [
        op(1, Write(3), 0, 1, Written),
        unknown(
            1,
            Cas {
                expected: 0,
                new: 5,
            },
            2,
        ),
        op(2, Read, 3, 4, Value(5)),
    ];
    assert!(
        !verdict(&h).is_linearizable(),
        "the CAS cannot have matched"
    );
}

#[test]
fn keys_are_checked_separately_and_the_bad_key_is_named() {
    let mut h = vec![
        op(1, Write(1), 0, 1, Written),
        op(2, Read, 2, 3, Value(1)),
        op(3, Write(2), 0, 1, Written),
        op(4, Read, 2, 3, Value(0)),
    ];
    h[2].key = 9;
    h[3].key = 9;
    assert!(matches!(
        verdict(&h),
        Verdict::NotLinearizable { key: 9, .. }
    ));
    // Without partitioning, key 9's write would make key 0's read look stale.
    h[3].response = Some((3, Value(2)));
    assert_eq!(verdict(&h), Verdict::Linearizable);
}

#[test]
fn a_tiny_budget_is_inconclusive_not_wrong() {
    let h = [
        op(1, Write(1), 0, 10, Written),
        op(2, Write(2), 1, 11, Written),
        op(3, Read, 12, 13, Value(1)),
    ];
    assert_eq!(verdict(&h), Verdict::Linearizable);
    assert_eq!(
        check_with_budget(&Register::default(), &h, 1),
        Verdict::Inconclusive { key: 0 }
    );
}

/// A small deterministic generator (xorshift64*), to avoid a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// Simulates `clients` clients on a real register over `ops` operations: each operation
/// takes effect at one instant between its call and its return, so the history is
/// linearizable by construction. Some answers are dropped (unknown outcome).
fn simulated(seed: u64, clients: usize, ops: usize, keys: u64) -> Vec<Op> {
    #[derive(Clone)]
    enum Slot {
        Idle,
        Called(usize),
        Done(usize, RegisterOutput),
    }
    let mut rng = Rng(seed.max(1));
    let mut registers = vec![0u64; usize::try_from(keys).unwrap()];
    let mut slots = vec![Slot::Idle; clients];
    let mut history: Vec<Op> = Vec::new();
    let mut next_value = 1;
    let mut time = 0;
    while history.len() < ops || slots.iter().any(|s| !matches!(s, Slot::Idle)) {
        time += 1;
        let c = usize::try_from(rng.below(clients as u64)).unwrap();
        match slots[c].clone() {
            Slot::Idle if history.len() < ops => {
                let input = match rng.below(3) {
                    0 => Read,
                    1 => {
                        next_value += 1;
                        Write(next_value)
                    }
                    _ => {
                        next_value += 1;
                        Cas {
                            expected: rng.below(next_value),
                            new: next_value,
                        }
                    }
                };
                history.push(Operation {
                    client: c as u64,
                    key: rng.below(keys),
                    input,
                    call: time,
                    response: None,
                });
                slots[c] = Slot::Called(history.len() - 1);
            }
            Slot::Idle => {}
            Slot::Called(i) => {
                let reg = &mut registers[usize::try_from(history[i].key).unwrap()];
                let out = match history[i].input {
                    Read => Value(*reg),
                    Write(v) => {
                        *reg = v;
                        Written
                    }
                    Cas { expected, new } => {
                        let hit = *reg == expected;
                        if hit {
                            *reg = new;
                        }
                        Swapped(hit)
                    }
                };
                slots[c] = Slot::Done(i, out);
            }
            Slot::Done(i, out) => {
                // One answer in ten is lost; a lost read is simply not recorded.
                if rng.below(10) == 0 {
                    if matches!(history[i].input, Read) {
                        history[i].response = Some((time, out));
                    }
                } else {
                    history[i].response = Some((time, out));
                }
                slots[c] = Slot::Idle;
            }
        }
    }
    history
}

#[test]
fn simulated_linearizable_histories_pass_and_a_corrupted_read_fails() {
    for seed in 1..=50 {
        let mut h = simulated(seed, 5, 300, 3);
        assert_eq!(verdict(&h), Verdict::Linearizable, "seed {seed}");
        // A read answered with a value no write ever produced is caught.
        if let Some(read) = h
            .iter_mut()
            .find(|o| matches!((o.input, o.response), (Read, Some(_))))
        {
            let t = read.response.map(|(t, _)| t).unwrap();
            read.response = Some((t, Value(u64::MAX)));
            assert!(!verdict(&h).is_linearizable(), "seed {seed}");
        }
    }
}

#[test]
fn a_large_concurrent_history_is_checked_quickly() {
    let h = simulated(7, 16, 20_000, 8);
    let started = std::time::Instant::now();
    assert_eq!(verdict(&h), Verdict::Linearizable);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );
}
